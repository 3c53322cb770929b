"""Keys and share links in real headless Chromium: create a key on the sign-in page, the
settings page (name, rotate, share links), and a share link as its viewer sees it.

SCREENSHOTS=1 also saves docs/settings.png and docs/shared.png for the README.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest

from server.keys.api_keys import lookup_key
from server.stats.filters import Filters, window_for
from tests.dash_app.helpers import Expected, ingest, known_rows
from tests.dash_app.test_browser import (
    number,
    overview_ready,
    settled,
    shot,
    sign_in,
    stat,
    wait_for,
)

pytestmark = pytest.mark.browser


def element(driver, selector: str, what: str):
    return wait_for(driver, lambda d: d.find_elements("css selector", selector), what)[0]


def secret_page(driver) -> str:
    """The secret a reveal page shows once."""
    return element(driver, "#new-secret", "the page with the new secret").text


def settings_form(driver, live, action_button: str) -> None:
    driver.get(live.url("/dashboard/settings"))
    element(driver, action_button, "the settings page").click()


def expected_requests(rows, filters: Filters) -> int:
    window = window_for(filters.period)
    return Expected(rows, filters, window.since, window.until).requests


def forget_console(driver) -> None:
    """A 404 or 410 page is what a test wants here: Chromium logs its status as an error."""
    driver.get_log("browser")


def test_create_a_key_on_the_sign_in_page(live, browser):
    browser.get(live.url("/dashboard/"))
    element(browser, "#create-key", "the Create a key button").click()
    key = secret_page(browser)
    with live.stack.engine.connect() as conn:
        assert lookup_key(conn, key) is not None
    snippet = browser.find_element("css selector", "#snippet").text
    assert "from api_analytics.fastapi import Analytics" in snippet
    assert f'app.add_middleware(Analytics, api_key="{key}")' in snippet
    assert key not in browser.current_url
    copy = browser.find_element("css selector", "#copy-secret")
    copy.click()
    wait_for(browser, lambda d: copy.text == "Copied", "the copy button to say so")
    browser.find_element("css selector", "#reveal-continue").click()
    # Signed in with the new key: its (empty) overview, and the key shown nowhere.
    overview_ready(browser)
    assert number(stat(browser, "ov-requests")) == 0
    assert browser.find_elements("css selector", "#sign-out")
    assert key not in browser.page_source and key not in browser.current_url


def test_settings_rename_rotate_and_share_links(live, browser):
    rows = known_rows(datetime.now(UTC))
    key = live.stack.new_key()
    ingest(live.stack, key, rows)
    sign_in(browser, live, key)

    browser.get(live.url("/dashboard/settings"))
    name = element(browser, "#settings-name", "the name field")
    name.clear()
    name.send_keys("Shop API")
    browser.find_element("css selector", "#settings-save").click()
    element(browser, "#settings-done", "the saved message")
    wait_for(browser, lambda d: d.find_element("css selector", "#api-name").text, "the name")
    assert browser.find_element("css selector", "#api-name").text == "Shop API"

    settings_form(browser, live, "#settings-rotate")
    new = secret_page(browser)
    assert new != key
    assert "ingest only" in browser.find_element("css selector", ".reveal").text
    browser.find_element("css selector", "#reveal-continue").click()
    rotation = element(browser, "#settings-rotation", "the rotation state")
    assert "ingest only until" in rotation.text
    # Still signed in: the session moved to the new key.
    assert browser.find_elements("css selector", "#sign-out")

    browser.find_element("css selector", "#share-label").send_keys("Support team")
    browser.find_element("css selector", "#share-hostname").send_keys("api.example.com")
    browser.find_element("css selector", "#share-status_class").send_keys("2xx")
    browser.find_element("css selector", "#share-expires_days").send_keys("30")
    browser.find_element("css selector", "#share-create").click()
    url = secret_page(browser)
    assert re.fullmatch(re.escape(live.url("/dashboard/s/")) + r"[\w-]{43}", url), url
    browser.find_element("css selector", "#reveal-continue").click()
    row = element(browser, "#share-list tbody tr", "the link in the list")
    assert "Support team" in row.text and "Hostname: api.example.com, Status class: 2xx" in row.text
    wait_for(browser, settled, "the settings page")
    shot(browser, "settings")

    browser.get(url)
    overview_ready(browser)
    fixed = Filters(hostname="api.example.com").with_click("status_class", "2xx")
    assert number(stat(browser, "ov-requests")) == expected_requests(rows, fixed)

    browser.get(live.url("/dashboard/settings"))
    element(browser, "#share-list button", "the revoke button").click()
    element(browser, "#settings-done", "the revoked message")
    assert "revoked" in browser.find_element("css selector", "#share-list").text
    browser.get(url)
    problem = element(browser, "#share-problem", "the revoked link's page")
    assert "revoked or never existed" in problem.text
    forget_console(browser)


def test_a_share_link_shows_its_keys_dashboard_and_stops_when_revoked(live, browser):
    rows = known_rows(datetime.now(UTC))
    key = live.stack.new_key()
    ingest(live.stack, key, rows)
    client = live.stack.client
    client.patch("/api/keys/current", headers={"X-AUTH-TOKEN": key}, json={"name": "Shop API"})
    made = client.post(
        "/api/shares",
        headers={"X-AUTH-TOKEN": key},
        json={"label": "Status page", "filters": {"location": "US"}},
    ).get_json()

    browser.get(live.url(made["path"] + "?period=7d"))
    overview_ready(browser)
    fixed = Filters(period="7d").with_click("location", "US")
    expected = expected_requests(rows, fixed)
    assert 0 < expected < expected_requests(rows, Filters(period="7d"))
    assert number(stat(browser, "ov-requests")) == expected
    assert "Country: United States" in browser.find_element("css selector", "#ov-fixed").text
    assert browser.find_element("css selector", "#api-name").text == "Shop API · Status page"
    nav = browser.find_element("css selector", "#nav").text
    assert "Settings" not in nav and "Uptime" not in nav and "Sign out" not in nav
    assert key not in browser.page_source
    shot(browser, "shared")

    browser.find_element("css selector", "#nav a[href$='/explorer']").click()
    element(browser, "#ex-rows tbody tr", "the explorer's rows")
    wait_for(browser, settled, "the explorer")
    countries = browser.find_elements("css selector", "#ex-rows td[data-dash-column='location']")
    assert countries and {c.text for c in countries} == {"US"}

    # Revoked while the page is open: its next callback answers with the message.
    browser.find_element("css selector", "#nav a[href$='/s/" + made["token"] + "']").click()
    overview_ready(browser)
    revoked = client.delete(f"/api/shares/{made['id']}", headers={"X-AUTH-TOKEN": key})
    assert revoked.status_code == 204
    browser.find_element("css selector", "#ov-period input[value='24h']").click()
    notice = element(browser, "#ov-gone", "the revoked notice")
    assert "revoked or never existed" in notice.text
    assert not browser.find_elements("css selector", "#ov-requests")
