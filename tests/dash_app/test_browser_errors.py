"""The errors, error group and consumers pages and the overview's User ID panel in real
headless Chromium, over realistic traffic ingested through the real API.

SCREENSHOTS=1 also saves docs/errors.png, docs/error-group.png and docs/consumers.png.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from dash_app.errors_data import group_list, set_state
from server.keys.api_keys import lookup_key
from server.stats.filters import Filters
from tests.conftest import sqlite_stack, write_mmdb
from tests.dash_app.conftest import LiveServer
from tests.dash_app.error_traffic import (
    FAILURES,
    SECRET,
    error_rows,
    ingest_errors,
    requests_by,
)
from tests.dash_app.test_browser import number, overview_ready, query, shot, sign_in, stat, wait_for

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def live(tmp_path_factory):
    """A key with a week of traffic: five error groups, one resolved and one that came back
    after it was resolved (a regression)."""
    tmp = tmp_path_factory.mktemp("errors")
    stack = sqlite_stack(tmp, GEOIP_DB=str(write_mmdb(tmp / "country.mmdb", flavour="cc0")))
    now = datetime.now(UTC)
    rows = error_rows(now, count=2000)
    key = stack.new_key()
    ingest_errors(stack, key, rows)
    with stack.engine.connect() as conn:
        key_id = lookup_key(conn, key)
    groups = {g["type"]: g["id"] for g in group_list(key_id, Filters(period="7d"), "all").rows}
    set_state(key_id, groups["app.inventory.OutOfStock"], "resolved")
    set_state(key_id, groups["ZeroDivisionError"], "resolved")
    again = [r for r in rows if (r.get("exception") or {}).get("type") == "ZeroDivisionError"][0]
    # After it was resolved: an occurrence before that would be old news, not a regression.
    back = {**again, "created_at": datetime.now(UTC).isoformat()}
    ingest_errors(stack, key, [back])
    server = LiveServer(stack)
    server.thread.start()
    server.key, server.rows = key, [*rows, back]
    yield server
    server.server.shutdown()


def css(driver, selector: str) -> list:
    return driver.find_elements("css selector", selector)


def text_of(driver, selector: str) -> str:
    found = css(driver, selector)
    return found[0].text if found else ""


def idle(driver) -> bool:
    return driver.execute_script(
        "return !document.querySelector('[data-dash-is-loading=\"true\"]')"
        " && document.readyState === 'complete'"
    )


def test_errors_page_then_a_groups_stack_and_masked_request(live, browser):
    sign_in(browser, live, live.key)
    browser.get(live.url("/dashboard/errors?period=7d&state=all"))
    wait_for(browser, lambda d: len(css(d, "#er-groups tbody tr")) == len(FAILURES), "groups")
    wait_for(browser, lambda d: css(d, "#er-validation-table"), "validation errors")
    sparklines = "#er-groups .spark .js-plotly-plot"
    wait_for(browser, lambda d: len(css(d, sparklines)) == len(FAILURES), "sparklines")
    wait_for(browser, idle, "the errors page")
    table = text_of(browser, "#er-groups")
    assert "Regressed" in table and "Resolved" in table and "app.payments.CardDeclined" in table
    assert "int_parsing" in text_of(browser, "#er-validation-table")
    shot(browser, "errors")

    # The busiest group's page: its stack with the app's frames marked, and the request.
    css(browser, "#er-groups tbody tr a.group-type")[0].click()
    wait_for(browser, lambda d: "/dashboard/errors/" in d.current_url, "the group page")
    wait_for(browser, lambda d: css(d, "#eg-frames .frame"), "the stack trace")
    wait_for(browser, lambda d: "[masked]" in text_of(d, "#eg-request"), "the masked request")
    wait_for(browser, idle, "the group page")
    assert query(browser)["period"] == ["7d"]
    assert text_of(browser, "#eg-type") == "app.payments.CardDeclined"
    in_app = [f.text for f in css(browser, "#eg-frames .frame.in-app")]
    assert [line.removesuffix("APP").strip() for line in in_app] == [
        "app/main.py:31 in pay",
        "app/payments/service.py:88 in charge",
    ]
    assert len(css(browser, "#eg-frames .frame")) == 5
    request = text_of(browser, "#eg-request")
    assert "authorization" in request and "card_number" in request
    assert SECRET not in browser.page_source and "4242424242424242" not in request
    shot(browser, "error-group")

    # Resolve it: the badge says so, and the open errors no longer list it.
    css(browser, "button[id*='resolved']")[0].click()
    wait_for(browser, lambda d: "Marked resolved." in text_of(d, "#eg-msg"), "the change")
    wait_for(browser, lambda d: "Resolved" in text_of(d, ".group-head .state"), "the badge")
    css(browser, ".group-head a")[0].click()
    wait_for(browser, lambda d: len(css(d, "#er-groups tbody tr")) == 3, "three open groups")
    assert "CardDeclined" not in text_of(browser, "#er-groups")
    browser.find_element("css selector", "#er-state input[value='resolved']").click()
    wait_for(browser, lambda d: query(d).get("state") == ["resolved"], "the state in the URL")
    wait_for(browser, lambda d: len(css(d, "#er-groups tbody tr")) == 2, "two resolved groups")
    assert "CardDeclined" in text_of(browser, "#er-groups")


def test_consumers_page_leads_to_the_overview_filtered_by_one(live, browser):
    sign_in(browser, live, live.key)
    browser.get(live.url("/dashboard/consumers?period=7d"))
    wait_for(browser, lambda d: css(d, "#co-table-consumer tbody tr"), "the consumers")
    wait_for(browser, lambda d: css(d, "#co-table-consumer_group tbody tr"), "the groups")
    wait_for(browser, idle, "the consumers page")
    assert len(css(browser, "#co-table-consumer tbody tr")) == 6
    shot(browser, "consumers")
    link = next(a for a in css(browser, "#co-table-consumer a") if a.text == "cus_acme")
    link.click()
    wait_for(browser, lambda d: query(d).get("consumer") == ["cus_acme"], "the consumer filter")
    overview_ready(browser)
    expected = requests_by(live.rows, "consumer")["cus_acme"]
    wait_for(browser, lambda d: number(stat(d, "ov-requests")) == expected, "acme's requests")
    assert [c.text for c in css(browser, ".chip")] == ["Consumer: cus_acme ×"]


def test_a_user_id_row_filters_the_overview(live, browser):
    sign_in(browser, live, live.key)
    browser.get(live.url("/dashboard/?period=7d"))
    overview_ready(browser)
    total = number(stat(browser, "ov-requests"))
    assert total == len(live.rows)
    cell = wait_for(
        browser, lambda d: css(d, "#ov-user-ids td[data-dash-column='user_id']"), "user ids"
    )[0]
    user = cell.text
    browser.execute_script("arguments[0].scrollIntoView({block: 'center'})", cell)
    cell.click()
    wait_for(browser, lambda d: query(d).get("user_id") == [user], "the user id filter")
    expected = requests_by(live.rows, "user_id")[user]
    wait_for(browser, lambda d: number(stat(d, "ov-requests")) == expected, f"{user}'s requests")
    assert 0 < expected < total
    assert [c.text for c in css(browser, ".chip")] == [f"User id: {user} ×"]
    # The status codes panel leads to this user's errors, and its 422s to the validation
    # errors, scrolled into view.
    link = browser.find_element("css selector", "#ov-to-errors")
    assert "user_id=" in link.get_attribute("href")
    invalid = browser.find_element("css selector", "#ov-to-validation")
    # A short window: the section is below the fold unless the page scrolls to it.
    browser.set_window_size(1440, 480)
    browser.execute_script("arguments[0].scrollIntoView({block: 'center'})", invalid)
    invalid.click()
    wait_for(browser, lambda d: css(d, "#er-validation-table"), "the validation errors")
    assert query(browser)["user_id"] == [user]
    assert browser.execute_script("return window.location.hash") == "#validation"
    wait_for(
        browser,
        lambda d: d.execute_script(
            "const top = document.getElementById('validation').getBoundingClientRect().top;"
            "return top >= 0 && top < window.innerHeight / 2"
        ),
        "the validation section in view",
    )
    assert browser.execute_script("return window.scrollY") > 0
    browser.set_window_size(1440, 900)
