"""The dashboard in real headless Chromium, served by a real HTTP server on 127.0.0.1.

Skipped on a bare machine without Chromium/chromedriver (a failure when CI=true).
SCREENSHOTS=1 also saves 1440x900 screenshots of the demo to docs/ for the README.
"""

from __future__ import annotations

import csv
import json
import os
import time
from datetime import UTC, datetime
from urllib.parse import parse_qs, urlparse

import pytest

from server.stats.filters import Filters, window_for
from tests.conftest import ROOT
from tests.dash_app.conftest import LiveServer
from tests.dash_app.helpers import Expected, ingest, known_rows

pytestmark = pytest.mark.browser

WAIT = 60  # seconds; a ceiling for slow machines, never an assertion
PANELS = (
    "ov-activity",
    "ov-histogram",
    "ov-status",
    "ov-versions",
    "ov-map",
    "ov-countries",
    "ov-browsers",
    "ov-os",
    "ov-devices",
    "ov-hours",
    "ov-weekdays",
)


# --- helpers -------------------------------------------------------------------------------


def wait_for(driver, condition, what: str):
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.support.ui import WebDriverWait

    # Dash replaces elements as callbacks land; a stale reference just means "look again".
    return WebDriverWait(
        driver, WAIT, poll_frequency=0.2, ignored_exceptions=(StaleElementReferenceException,)
    ).until(lambda d: condition(d), message=f"waiting for {what}")


def settled(driver) -> bool:
    """Dash is idle: no pending callbacks and no loading component."""
    return driver.execute_script(
        "return !document.querySelector('[data-dash-is-loading=\"true\"]')"
        " && document.readyState === 'complete'"
        " && !!document.querySelector("
        "'#ov-requests .stat-value, #ex-rows, #mon-list, #signin-key, #settings-name')"
    )


def overview_ready(driver) -> None:
    wait_for(driver, lambda d: d.find_elements("css selector", "#ov-requests"), "the overview")
    wait_for(driver, settled, "the panels to load")


def stat(driver, stat_id: str) -> str:
    return driver.find_element("css selector", f"#{stat_id} .stat-value").text


def number(text: str) -> int | None:
    """The integer a stat shows; None while its panel is still loading."""
    digits = text.replace(",", "")
    return int(digits) if digits.isdigit() else None


def graph_data(driver, graph_id: str):
    return driver.execute_script(
        "const g = document.querySelector(arguments[0] + ' .js-plotly-plot');"
        "return g && g.data ? JSON.stringify(g.data.map(t => [t.x, t.y, t.z, t.values])) : null;",
        f"#{graph_id}",
    )


def panels(driver) -> dict:
    return {p: graph_data(driver, p) for p in PANELS}


def query(driver) -> dict:
    return parse_qs(urlparse(driver.current_url).query)


def click_first_bar(driver, graph_id: str) -> None:
    """Plotly's drag layer takes the click at the bar's position, as it does for a person."""
    from selenium.webdriver.common.action_chains import ActionChains

    bar = driver.find_element("css selector", f"#{graph_id} .point path")
    driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", bar)
    ActionChains(driver).move_to_element(bar).click().perform()


def shot(driver, name: str) -> None:
    if os.environ.get("SCREENSHOTS") != "1":
        return
    driver.set_window_size(1440, 900)
    driver.execute_script("window.scrollTo(0, 0)")
    time.sleep(0.5)  # let the scroll paint; the screenshot is not a test
    driver.save_screenshot(str(ROOT / "docs" / f"{name}.png"))


def sign_in(driver, live: LiveServer, key: str) -> None:
    driver.get(live.url("/dashboard/"))
    field = wait_for(driver, lambda d: d.find_elements("css selector", "#signin-key"), "sign-in")
    field[0].send_keys(key)
    driver.find_element("css selector", "#signin-submit").click()
    overview_ready(driver)


# --- tests ---------------------------------------------------------------------------------


def test_demo_loads_with_no_key_and_every_panel_has_data(live, browser):
    browser.get(live.url("/dashboard/demo?period=7d"))
    overview_ready(browser)
    assert number(stat(browser, "ov-requests")) > 1000
    assert number(stat(browser, "ov-users-count")) > 100
    for panel, data in panels(browser).items():
        assert data and data != "[]", panel
    assert "No requests" not in browser.find_element("css selector", "#page").text
    rows = browser.find_elements("css selector", "#ov-endpoints tr td")
    assert rows, "endpoint table rows"
    assert browser.find_elements("css selector", "#ov-users tr td"), "top users rows"
    shot(browser, "overview")


def test_the_page_draws_with_the_browsers_own_number_parsing(live, browser):
    """Dash's Babel polyfill replaces parseFloat, parseInt and the String trims with
    slower script of its own; the page puts the browser's own back before anything draws,
    and keeps the rest of the polyfill (dash_core_components needs its regeneratorRuntime).
    A function is the browser's own when a fresh frame's Function.prototype.toString,
    which no script of ours touched, prints it as native code."""
    browser.get(live.url("/dashboard/demo?period=7d"))
    overview_ready(browser)
    found = browser.execute_script(
        """
        const frame = document.createElement('iframe');
        document.body.appendChild(frame);
        const show = frame.contentWindow.Function.prototype.toString;
        const S = String.prototype;
        const checked = {parseFloat, parseInt, 'Number.parseFloat': Number.parseFloat,
          'Number.parseInt': Number.parseInt, trim: S.trim, trimStart: S.trimStart,
          trimEnd: S.trimEnd, sinh: Math.sinh, toString: Function.prototype.toString};
        const scripted = Object.keys(checked).filter(
          (name) => !show.call(checked[name]).includes('[native code]'));
        frame.remove();
        return {scripted, polyfill: typeof regeneratorRuntime,
                left: typeof window.__natives, parsed: parseFloat(' 1.5 ')};
        """
    )
    assert found == {"scripted": [], "polyfill": "object", "left": "undefined", "parsed": 1.5}
    assert number(stat(browser, "ov-requests")) > 1000  # and the page drew its numbers


def test_every_chart_is_drawn_once_with_room_for_its_labels(live, browser):
    """The overview's axes do without Plotly's automargin (which draws a chart, measures
    its labels and draws it again: 1.5x the drawing, bench/figures.py --draw --ref), so
    their room is set by dash_app.figures: every tick label and axis title must still lie
    inside its chart's drawing, in a wide window and a narrow one."""
    before = browser.get_window_size()
    try:
        for width in (1440, 900):
            labels_fit(browser, live, width)
    finally:
        browser.set_window_size(before["width"], before["height"])


def labels_fit(browser, live: LiveServer, width: int) -> None:
    """Every overview chart at `width`: axes without automargin, labels inside."""
    browser.set_window_size(width, 1000)
    browser.get(live.url("/dashboard/demo?period=all"))
    overview_ready(browser)
    # Settled can be seen before a graph's Plotly bundle has drawn it: wait for every
    # chart to hold its answer's traces (the blank figure before the answer has none).
    wait_for(
        browser,
        lambda d: d.execute_script(
            "return arguments[0].every((id) => {"
            " const g = document.querySelector('#' + id + ' .js-plotly-plot');"
            " return g && g._fullLayout && g.data && g.data.length > 0; });",
            list(PANELS),
        ),
        "every chart drawn with its answer",
    )
    found = browser.execute_script(
        """
        const out = {auto: [], outside: [], labels: 0};
        for (const id of arguments[0]) {
          const g = document.querySelector('#' + id + ' .js-plotly-plot');
          const axes = Object.keys(g._fullLayout).filter((k) => /^[xy]axis\\d*$/.test(k));
          for (const k of axes) if (g._fullLayout[k].automargin) out.auto.push(id + ' ' + k);
          const box = g.querySelector('.main-svg').getBoundingClientRect();
          const texts = g.querySelectorAll(
            '.xtick text, .ytick text, .g-xtitle text, .g-ytitle text, .g-y2title text,'
            + ' .g-y3title text');
          for (const t of texts) {
            const r = t.getBoundingClientRect();
            if (!t.textContent || r.width === 0) continue;
            out.labels += 1;
            if (r.left < box.left - 1 || r.right > box.right + 1
                || r.top < box.top - 1 || r.bottom > box.bottom + 1)
              out.outside.push(id + ': ' + t.textContent);
          }
        }
        return out;
        """,
        list(PANELS),
    )
    assert found["auto"] == [], width
    assert found["labels"] > 100, width  # the charts were drawn, with their labels
    assert found["outside"] == [], width


def test_the_maps_shapes_come_with_the_page_and_then_from_the_cache(live, browser):
    """dash_app/assets/geo.js fetches the world map's topojson as the page starts, not
    after the map's answer (Plotly's own fetch, an XHR), and a later page load takes it
    from the browser's cache without asking the server again."""
    shapes = (
        "return performance.getEntriesByType('resource')"
        ".filter((e) => e.name.includes('world_110m.json'))"
        ".map((e) => [e.initiatorType, e.transferSize]);"
    )
    countries = "#ov-map .choroplethlocation"
    for visit in ("first", "again"):
        browser.get(live.url("/dashboard/demo?period=all"))
        overview_ready(browser)
        wait_for(browser, lambda d: d.find_elements("css selector", countries), "the map")
        fetched = browser.execute_script(shapes)
        assert [kind for kind, _size in fetched] == ["fetch"], (visit, fetched)
        if visit == "again":
            assert fetched[0][1] == 0, fetched  # from the cache: no request at all


# Notes, for each graph, when Plotly was asked to draw it (with how many traces) and
# when a drawing ended (plotly_afterplot), from before the page's own scripts run.
DRAWS_JS = """
window.__draws = [];
let plotly = window.Plotly;
const note = (what, gd) => window.__draws.push(
  [what, ((gd && gd.closest && gd.closest('[id]')) || {}).id, performance.now()]);
const watch = (p) => {
  if (!p || p.react.__watched) return;
  const react = p.react;
  p.react = function (gd, ...rest) {
    note('react ' + (((rest[0] && rest[0].data) || []).length), gd);
    const result = react.call(this, gd, ...rest);
    if (gd && gd.on && !gd.__watched) {
      gd.__watched = true;
      gd.on('plotly_afterplot', () => note('drawn', gd));
      gd.on('plotly_relayout', () => note('relayout', gd));
    }
    return result;
  };
  p.react.__watched = true;
};
Object.defineProperty(window, 'Plotly', {configurable: true, enumerable: true,
  get: () => plotly, set: (p) => { plotly = p; watch(p); }});
"""


WIDTHS_JS = """
const out = {};
for (const id of arguments[0]) {
  const g = document.querySelector('#' + id + ' .js-plotly-plot');
  out[id] = [g._fullLayout.width, g.getBoundingClientRect().width];
}
return out;
"""


def test_each_chart_is_drawn_once_and_still_follows_the_window(live, browser):
    """dcc.Graph resizes every graph after its first drawing, and Plotly's resize drew
    the whole chart again 100 ms later at the same size: dash_app/assets/resize.js makes
    a resize to the size a chart has a no-op. Each chart is drawn once with its answer;
    a narrower window still redraws them to their new widths (one column: the narrow
    cards grow, the wide ones shrink; plotly_afterplot is not emitted
    for every chart's drawing by Plotly.react, the relayout of that resize is)."""
    script = browser.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument", {"source": DRAWS_JS})[
        "identifier"
    ]
    before = browser.get_window_size()
    try:
        browser.set_window_size(1440, 1000)
        browser.get(live.url("/dashboard/demo?period=30d"))
        overview_ready(browser)
        time.sleep(1.5)  # past Plotly's 100 ms resize debounce and a second drawing
        draws = browser.execute_script("return window.__draws")
        for graph in PANELS:
            mine = [what for what, owner, _at in draws if owner == graph]
            assert any(what.startswith("react ") and what != "react 0" for what in mine), graph
            # The resize's second drawing is a relayout (autosize): none on a page load.
            assert "relayout" not in mine, (graph, mine)
        assert sum(what == "drawn" for what, owner, _at in draws if owner in PANELS) >= 9
        widths = browser.execute_script(WIDTHS_JS, list(PANELS))
        browser.set_window_size(900, 1000)
        wait_for(
            browser,
            lambda d: all(
                abs(drawn - box) < 1 and abs(drawn - widths[graph][0]) > 50
                for graph, (drawn, box) in d.execute_script(WIDTHS_JS, list(PANELS)).items()
            ),
            "the charts redrawn to the narrower window",
        )
    finally:
        browser.execute_cdp_cmd("Page.removeScriptToEvaluateOnNewDocument", {"identifier": script})
        browser.set_window_size(before["width"], before["height"])


def test_the_pages_scripts_leave_with_the_page_and_its_assets_stay_cached(live, browser):
    """The components' lazily loaded scripts (Plotly among them) are preloaded by the page
    (dash_app.INDEX), so they are asked for beside the layout's request instead of after
    it, and used from there; our assets, linked with their file's time, are kept by the
    browser: a second page load asks the server nothing for them."""
    lazy = (
        "dash/dcc/async-graph.js",
        "plotly/package_data/plotly.min.js",
        "dash/dcc/async-dropdown.js",
        "dash/dash_table/async-table.js",
    )
    entries = (
        "return performance.getEntriesByType('resource').map("
        "(e) => [e.name, e.initiatorType, e.startTime, e.responseEnd, e.transferSize]);"
    )
    for visit in ("first", "again"):
        browser.get(live.url("/dashboard/demo?period=30d"))
        overview_ready(browser)
        found = browser.execute_script(entries)
        layout_in = next(end for name, _k, _s, end, _t in found if name.endswith("_dash-layout"))
        for path in lazy:
            mine = [(kind, start) for name, kind, start, _e, _t in found if name.endswith(path)]
            assert [kind for kind, _start in mine] == ["link"], (visit, path, mine)
            assert mine[0][1] < layout_in, (visit, path)  # asked for before the layout came
        assets = [(name, size) for name, _k, _s, _e, size in found if "/assets/" in name]
        assert len(assets) >= 3, assets  # style.css, geo.js, resize.js (and the map's shapes)
        if visit == "again":
            assert all(size == 0 for _name, size in assets), assets  # from the cache


def test_wrong_key_gets_a_clear_message(live, browser):
    browser.get(live.url("/dashboard/"))
    field = wait_for(browser, lambda d: d.find_elements("css selector", "#signin-key"), "form")
    field[0].send_keys("definitely-not-a-key")
    browser.find_element("css selector", "#signin-submit").click()
    error = wait_for(browser, lambda d: d.find_elements("css selector", "#signin-error"), "error")
    assert "not valid" in error[0].text
    assert "definitely-not-a-key" not in browser.current_url


def test_signed_in_numbers_equal_the_rows_ingested_and_csv_holds_them(live, browser):
    now = datetime.now(UTC)
    rows = known_rows(now)
    key = live.stack.new_key()
    ingest(live.stack, key, rows)
    sign_in(browser, live, key)
    assert key not in browser.current_url
    filters = Filters()
    window = window_for(filters.period)
    expected = Expected(rows, filters, window.since, window.until)
    assert number(stat(browser, "ov-requests")) == expected.requests
    assert number(stat(browser, "ov-users-count")) == expected.users
    assert stat(browser, "ov-success") == f"{expected.success / expected.requests * 100:.1f}%"

    # Filter by a click, then export: the CSV holds exactly the filtered rows.
    click_first_bar(browser, "ov-countries")
    wait_for(browser, lambda d: "location" in query(d), "the click filter in the URL")
    country = query(browser)["location"][0]
    filtered = Expected(rows, filters.with_click("location", country), window.since, window.until)
    assert 0 < filtered.requests < expected.requests
    wait_for(
        browser,
        lambda d: number(stat(d, "ov-requests")) == filtered.requests,
        f"{filtered.requests} requests from {country}",
    )
    for old in browser.downloads.glob("*.csv"):
        old.unlink()
    browser.find_element("css selector", "#ov-export").click()
    files = wait_for(browser, lambda d: list(d.downloads.glob("*.csv")), "the CSV download")
    with open(files[0], newline="") as handle:
        exported = list(csv.DictReader(handle))
    assert len(exported) == filtered.requests
    assert {r["location"] for r in exported} == {country}


def test_click_to_filter_changes_every_panel_and_chips_remove_it(live, browser):
    browser.get(live.url("/dashboard/demo?period=7d"))
    overview_ready(browser)
    before = panels(browser)
    total = number(stat(browser, "ov-requests"))
    click_first_bar(browser, "ov-browsers")
    wait_for(browser, lambda d: "browser" in query(d), "the click filter in the URL")
    wait_for(browser, lambda d: panels(d) != before, "the panels to change")
    wait_for(browser, settled, "the panels to reload")
    after = panels(browser)
    for panel in PANELS:
        assert after[panel] != before[panel], panel
    assert number(stat(browser, "ov-requests")) < total
    chip = browser.find_element("css selector", ".chip")
    assert chip.text.startswith("Client:")
    chip.click()
    wait_for(browser, lambda d: "browser" not in query(d), "the chip to go")
    wait_for(browser, lambda d: number(stat(d, "ov-requests")) == total, "the totals again")


def endpoint_rows(driver) -> list[list[str]]:
    rows = driver.find_elements("css selector", "#ov-endpoints tr")
    return [[c.text for c in r.find_elements("css selector", "td")] for r in rows if r.text][1:]


def test_endpoint_tabs_keep_their_class_across_a_refresh(live, browser):
    # The table's rows come with every refresh, shaped for the open tab (one callback);
    # a tab shows only its status class, and stays open when the period changes.
    browser.get(live.url("/dashboard/demo?period=7d"))
    overview_ready(browser)
    everything = endpoint_rows(browser)
    assert {row[2] for row in everything} - {"0", "100"}, "mixed error rates in All"
    browser.find_element("xpath", "//*[@id='ov-endpoint-tab']//*[text()='4xx']").click()
    wait_for(browser, lambda d: endpoint_rows(d) != everything, "the 4xx tab")
    assert endpoint_rows(browser) and {row[2] for row in endpoint_rows(browser)} == {"100"}
    week = endpoint_rows(browser)
    browser.find_element("css selector", "#ov-period input[value='24h']").click()
    wait_for(browser, lambda d: endpoint_rows(d) != week, "the 24-hour rows")
    wait_for(browser, settled, "the panels")
    assert endpoint_rows(browser) and {row[2] for row in endpoint_rows(browser)} == {"100"}


def test_period_switch_and_reload_restore_the_url_filters(live, browser):
    browser.get(live.url("/dashboard/demo"))
    overview_ready(browser)
    month = number(stat(browser, "ov-requests"))
    browser.find_element("css selector", "#ov-period input[value='24h']").click()
    wait_for(browser, lambda d: query(d).get("period") == ["24h"], "the period in the URL")
    wait_for(browser, lambda d: (number(stat(d, "ov-requests")) or month) < month, "24 hours")
    day = number(stat(browser, "ov-requests"))
    assert 0 < day < month

    browser.get(live.url("/dashboard/demo?period=7d&no404=1&location=US&hide=%2Fhealth"))
    overview_ready(browser)
    checked = browser.find_element("css selector", "#ov-period input[value='7d']")
    assert checked.is_selected()
    assert browser.find_element("css selector", "#ov-toggles input[value='no404']").is_selected()
    assert browser.find_element("css selector", "#ov-hidden").get_attribute("value") == "/health"
    chips = [c.text for c in browser.find_elements("css selector", ".chip")]
    assert chips == ["Country: United States ×"]
    browser.refresh()
    overview_ready(browser)
    assert query(browser)["location"] == ["US"]
    assert [c.text for c in browser.find_elements("css selector", ".chip")] == chips
    endpoints = browser.find_element("css selector", "#ov-endpoints").text
    assert "/health" not in endpoints


def test_explorer_pages_and_filters(live, browser):
    from selenium.webdriver.common.keys import Keys

    browser.get(live.url("/dashboard/demo/explorer"))
    wait_for(
        browser, lambda d: len(d.find_elements("css selector", "#ex-rows tbody tr")) > 50, "rows"
    )
    wait_for(browser, settled, "the explorer")
    first_page = browser.find_element("css selector", "#ex-rows").text
    assert browser.find_element("css selector", "#ex-page-label").text == "Rows 1–50"
    shot(browser, "explorer")
    browser.find_element("css selector", "#ex-next").click()
    wait_for(
        browser,
        lambda d: d.find_element("css selector", "#ex-page-label").text == "Rows 51–100",
        "page 2",
    )
    assert browser.find_element("css selector", "#ex-rows").text != first_page

    path = browser.find_element("css selector", "#ex-path")
    path.send_keys("/v2/", Keys.ENTER)
    wait_for(
        browser,
        lambda d: d.find_element("css selector", "#ex-page-label").text == "Rows 1–50",
        "page 1 again",
    )
    wait_for(browser, settled, "the filtered rows")
    cells = _column(browser, "path")
    assert cells and all("/v2/" in c for c in cells)

    low = browser.find_element("css selector", "#ex-rt-min")
    low.send_keys("200", Keys.ENTER)
    wait_for(browser, lambda d: _all_at_least(_column(d, "response_time"), 200), "min ms")
    wait_for(browser, settled, "the filtered rows")
    assert _all_at_least(_column(browser, "response_time"), 200)
    assert all("/v2/" in c for c in _column(browser, "path"))


def _all_at_least(cells: list[str], low: int) -> bool:
    """Every cell a number >= low (a cell mid-render is empty: not yet)."""
    return bool(cells) and all(c.strip().isdigit() and int(c) >= low for c in cells)


def _column(driver, column_id: str) -> list[str]:
    cells = driver.find_elements("css selector", f"#ex-rows td[data-dash-column='{column_id}']")
    return [c.text for c in cells]


def test_uptime_page_shows_monitors(live, browser):
    browser.get(live.url("/dashboard/demo/monitors"))
    wait_for(browser, lambda d: d.find_elements("css selector", ".monitor"), "monitor cards")
    wait_for(browser, settled, "the uptime page")

    def first_card(driver):
        """(cards, first card's text, its check strip's id), read from one render: the
        page refreshes itself, and a reference into the previous render goes stale."""
        cards = driver.find_elements("css selector", ".monitor")
        strips = cards[0].find_elements("css selector", "[id^=mon-strip-]") if cards else []
        return strips and (len(cards), cards[0].text, strips[0].get_attribute("id"))

    count, text, strip_id = wait_for(browser, first_card, "the monitor cards")
    assert count == 2
    assert f"GET {live.url('/api/health')}" in text
    assert "uptime 24h" in text.lower() and "%" in text
    strip = json.loads(wait_for(browser, lambda d: graph_data(d, strip_id), "the check strip"))
    assert len(strip[0][0]) == 60  # the last 60 checks
    shot(browser, "uptime")


def test_api_docs_render_offline_from_our_own_files(live, browser):
    """Swagger UI came from a CDN: without internet /api/docs was a blank page."""
    browser.get(live.url("/api/docs"))
    operations = wait_for(
        browser, lambda d: d.find_elements("css selector", ".opblock"), "the API operations"
    )
    assert len(operations) >= 8
    assert "/api/log-request" in browser.find_element("css selector", ".swagger-ui").text
    fetched = browser.execute_script(
        "return performance.getEntriesByType('resource').map(e => e.name)"
    )
    assert fetched and all(url.startswith(live.url("/")) for url in fetched), fetched
