"""The SLOs, Releases and Ingest pages and the overview's deploy marker in real headless
Chromium, over four weeks of traffic ingested through the real API, with SLOs and a deploy
made through the real API; every number checked is the API's own answer.

SCREENSHOTS=1 also saves docs/slos.png, docs/releases.png and docs/ingest.png.
"""

from __future__ import annotations

import math
import random
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest

from tests.conftest import sqlite_stack
from tests.dash_app.conftest import LiveServer
from tests.dash_app.test_browser import shot, sign_in, wait_for
from tests.dash_app.test_browser_errors import css, idle, text_of
from tests.helpers import CHROME, payload, post_batch, row

pytestmark = pytest.mark.browser

DEPLOYED_AGO = timedelta(minutes=80)
VERSION = "2.4.0"
WORSENED = ("POST", "/v1/checkout")
# (method, path pattern, weight, median ms): the API's endpoints and how fast they answer.
ENDPOINTS = (
    ("GET", "/v1/orders/{n}", 5, 45),
    ("POST", "/v1/checkout", 3, 60),
    ("GET", "/v2/search", 2, 90),
    ("GET", "/v1/users/{n}", 3, 35),
    ("GET", "/health", 1, 4),
)
CLIENT = "api-analytics-middleware/1.2.0"


def traffic(now: datetime, deployed: datetime, seed: int = 11) -> list[dict]:
    """Four weeks of background traffic and a busy last two and a half hours; after the
    deploy, POST /v1/checkout answers 2.5 times slower and 4 % of it fails with a 503."""
    rng = random.Random(seed)
    moments = [now - timedelta(hours=2.5 + 645.5 * rng.random() ** 0.8) for _ in range(2000)]
    # None near the 7-day window's edge: the page and the API count a moment apart.
    week = now - timedelta(days=7)
    moments = [m - timedelta(hours=4) if abs(m - week) < timedelta(hours=2) else m
               for m in moments]  # fmt: skip
    moments += [now - timedelta(seconds=rng.uniform(5, 9000)) for _ in range(1500)]
    rows = []
    for moment in moments:
        method, path, _w, median = rng.choices(ENDPOINTS, [e[2] for e in ENDPOINTS])[0]
        worse = (method, path) == WORSENED and moment >= deployed
        median = median * 2.5 if worse else median
        status = 201 if method == "POST" else 200
        if rng.random() < (0.04 if worse else 0.0006):
            status = 503
        rows.append(
            row(
                method=method,
                path=path.format(n=rng.randint(1, 500)),
                status=status,
                response_time=max(1, round(rng.lognormvariate(math.log(median), 0.35))),
                ip_address=f"8.8.{rng.randint(0, 3)}.{rng.randint(1, 200)}",
                user_agent=CHROME,
                user_id=f"user_{rng.randint(1, 60):03d}",
                created_at=moment.isoformat(),
            )
        )
    # Two earlier incidents on the search: two 503s twelve days ago, a slow spell four days ago.
    for ago, status, ms in [(12, 503, 30)] * 2 + [(4, 200, 650)] * 8:
        moment = now - timedelta(days=ago, minutes=rng.uniform(0, 20))
        rows.append(row(method="GET", path="/v2/search", status=status,
                        response_time=ms + rng.randint(0, 300), user_agent=CHROME,
                        created_at=moment.isoformat()))  # fmt: skip
    return rows


@pytest.fixture(scope="module")
def live(tmp_path_factory):
    """A key with traffic, two SLOs on it and a deploy that slowed the checkout down."""
    stack = sqlite_stack(tmp_path_factory.mktemp("slos"))
    now = datetime.now(UTC)
    deployed = now - DEPLOYED_AGO
    rows = traffic(now, deployed)
    key = stack.new_key()
    for start in range(0, len(rows), 250):
        answer = post_batch(stack.client, key, rows[start : start + 250])
        assert answer.status_code == 201, answer.get_json()
        assert not answer.get_json()["rejected"], answer.get_json()
    stack.process_jobs()
    auth = {"X-AUTH-TOKEN": key}
    slos = (
        {"name": "API availability", "objective": "availability", "target": 99.9,
         "window_days": 30},
        {"name": "API latency", "objective": "latency", "threshold_ms": 300, "target": 99,
         "window_days": 7},
    )  # fmt: skip
    for body in slos:
        made = stack.client.post("/api/slos", json=body, headers=auth)
        assert made.status_code == 201, made.get_json()
    body = {"version": VERSION, "time": deployed.isoformat(), "description": "checkout rework"}
    made = stack.client.post("/api/deploys", json=body, headers=auth)
    assert made.status_code == 201, made.get_json()
    server = LiveServer(stack)
    server.thread.start()
    server.key, server.auth, server.deploy = key, auth, made.get_json()
    yield server
    server.server.shutdown()


def api(live, path: str):
    answer = live.stack.client.get(path, headers=live.auth)
    assert answer.status_code == 200, answer.get_json()
    return answer.get_json()


def stat_values(section) -> dict[str, str]:
    """{label: value} of the stats in a page section."""

    def text(stat, part: str) -> str:  # as written, whatever case the style shows it in
        return stat.find_element("css selector", part).get_attribute("textContent")

    return {
        text(s, ".stat-label"): text(s, ".stat-value")
        for s in section.find_elements("css selector", ".stat")
    }


def plotted(driver, selector: str):
    """The first trace's y values of a drawn graph, None until Plotly has drawn it."""
    return driver.execute_script(
        "const g = document.querySelector(arguments[0] + ' .js-plotly-plot');"
        "return g && g.data && g.querySelector('.scatterlayer path.js-line')"
        " ? g.data[0].y : null;",
        selector,
    )


def test_the_slos_page_shows_each_slos_numbers_as_the_api_does(live, browser):
    sign_in(browser, live, live.key)
    browser.get(live.url("/dashboard/slos"))
    slos = api(live, "/api/slos")
    assert len(slos) == 2
    wait_for(browser, lambda d: len(css(d, "section.slo")) == 2, "both SLO cards")
    for slo in slos:
        wait_for(browser, lambda d, s=slo: plotted(d, f"#slo-burn-{s['id']}"), "a burn-down")
    wait_for(browser, idle, "the SLOs page")
    for slo in slos:
        found = slo["status"]
        section = browser.find_element("css selector", f"#slo-{slo['id']}")
        assert section.find_element("css selector", "h3").text == slo["name"]
        values = stat_values(section)
        assert values["SLI"] == f"{found['sli']:.3f}%"
        assert values["Budget left"] == f"{found['budget_remaining']:.1f}%"
        assert f"{found['requests']:,} requests, {found['bad']:,} bad" in section.text
        # The burn-down drawn is the API's, hour by hour, ending at the budget left now.
        detail = api(live, f"/api/slos/{slo['id']}")
        drawn = plotted(browser, f"#slo-burn-{slo['id']}")
        assert drawn == pytest.approx([left for _at, left in detail["burn_down"]])
        assert drawn[0] == 100.0 and drawn[-1] == pytest.approx(found["budget_remaining"])
    # The deploy spent the availability budget; the latency budget still has some left.
    left = {s["objective"]: s["status"]["budget_remaining"] for s in slos}
    assert left["availability"] < 0 < left["latency"] < 100
    shot(browser, "slos")


def test_the_releases_page_compares_the_deploy_as_the_api_does(live, browser):
    sign_in(browser, live, live.key)
    browser.get(live.url("/dashboard/releases"))
    deploy = live.deploy
    found = api(live, f"/api/deploys/{deploy['id']}/comparison?window_minutes=60")
    endpoints = found["endpoints"]
    wait_for(browser, lambda d: len(css(d, "[id^='rel-row-']")) == len(endpoints), "the table")
    wait_for(browser, idle, "the releases page")
    assert VERSION in text_of(browser, "#rel-deploy")
    shown = [
        [td.text for td in tr.find_elements("css selector", "td")]
        for tr in css(browser, "[id^='rel-row-']")
    ]
    assert [r[0] for r in shown] == [e["endpoint"] for e in endpoints]
    assert [r[1] for r in shown] == [e["verdict"] for e in endpoints]
    first = endpoints[0]
    assert first["endpoint"] == " ".join(WORSENED) and first["verdict"] == "worse"
    assert shown[0][6] == f"+{100 * first['worse_by']:.0f}%"
    requests = f"{first['before']['requests']:,} → {first['after']['requests']:,}"
    assert shown[0][2] == requests
    assert shown[0][4].startswith(f"{first['before']['p50']:,.0f} → {first['after']['p50']:,.0f}")
    assert "▲" in shown[0][4]
    assert all(e["verdict"] != "worse" for e in endpoints[1:])
    shot(browser, "releases")


def test_the_ingest_page_shows_the_last_batch_and_a_refused_rows_reason(live, browser):
    rows = [row(path="/v1/orders/7", created_at=datetime.now(UTC).isoformat()),
            row(path="/v1/orders/8", status="oops")]  # fmt: skip
    answer = live.stack.client.post(
        "/api/log-request",
        json=payload(live.key, rows, 0, "FastAPI"),
        headers={"User-Agent": CLIENT},
    )
    assert answer.status_code == 201, answer.get_json()
    assert [r["index"] for r in answer.get_json()["rejected"]] == [1]
    live.stack.process_jobs()
    health = api(live, "/api/ingest/health")
    last = health["last_batch"]
    assert (last["accepted"], last["refused"]) == (1, 1)
    refused = health["refused_rows"][0]

    sign_in(browser, live, live.key)
    browser.get(live.url("/dashboard/ingest"))
    wait_for(browser, lambda d: css(d, "#ih-refused tbody tr"), "the refused rows")
    wait_for(browser, idle, "the ingest page")
    at = datetime.fromisoformat(last["at"])
    assert text_of(browser, "#ih-last .stat-value") == f"{at:%Y-%m-%d %H:%M:%S} UTC"
    assert text_of(browser, "#ih-last .stat-note") == f"FastAPI · {CLIENT}"
    page = stat_values(browser.find_element("css selector", ".ingest-health"))
    days = health["days"]
    assert page["Accepted, 14 days"] == f"{sum(d['accepted'] for d in days):,}"
    assert page["Refused, 14 days"] == f"{sum(d['refused'] for d in days):,}"
    cells = [td.text for td in css(browser, "#ih-refused tbody tr")[0].find_elements(
        "css selector", "td")]  # fmt: skip
    assert cells[2:4] == [str(refused["index"]), refused["reason"]]
    assert refused["reason"].startswith("status")
    assert '"oops"' in cells[4]
    reasons = text_of(browser, "#ih-reasons")
    totals = Counter()
    for day in days:
        totals.update(day["reasons"])
    assert totals and all(f"{reason} {n:,}" in reasons for reason, n in totals.items())
    shot(browser, "ingest")


def test_the_overviews_activity_chart_marks_the_deploy(live, browser):
    sign_in(browser, live, live.key)
    deploys = api(live, "/api/deploys")
    assert [d["id"] for d in deploys] == [live.deploy["id"]]

    def markers(driver):
        return driver.execute_script(
            "const g = document.querySelector('#ov-activity .js-plotly-plot');"
            "if (!g || !g.layout) return null;"
            "return [(g.layout.annotations || []).map(a => a.text),"
            " (g.layout.shapes || []).map(s => [s.x0, s.yref]),"
            " [...g.querySelectorAll('.annotation-text')].map(t => t.textContent)];"
        )

    texts, starts, drawn = wait_for(browser, markers, "the activity chart")
    assert texts == [d["version"] for d in deploys]
    assert drawn == texts
    deployed = datetime.fromisoformat(deploys[0]["time"])
    # A line on each of its panels: requests and users, response times, success rate.
    at = deployed.strftime("%Y-%m-%dT%H:%M")
    assert sorted((x[:16], ref) for x, ref in starts) == [
        (at, "y domain"), (at, "y2 domain"), (at, "y3 domain")]  # fmt: skip
