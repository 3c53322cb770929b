"""The alerts page in real headless Chromium: add a signed webhook channel, create a rule,
see it fire on real traffic with its notification, send a test, delete the rule.

SCREENSHOTS=1 also saves docs/alerts.png for the README.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from datetime import UTC, datetime, timedelta

import pytest

from server.alerts.evaluation import evaluate
from tests.conftest import sqlite_stack
from tests.dash_app.conftest import LiveServer
from tests.dash_app.test_browser import shot, wait_for
from tests.helpers import post_batch, row
from tests.server.alerts.test_alerts import Receiver

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def live(tmp_path_factory):
    # Alerts may reach this machine's own receiver (MONITOR_ALLOW_PRIVATE).
    stack = sqlite_stack(tmp_path_factory.mktemp("alerts"), MONITOR_ALLOW_PRIVATE=True)
    server = LiveServer(stack)
    server.thread.start()
    yield server
    server.server.shutdown()


def css(driver, selector):
    return driver.find_elements("css selector", selector)


def text_of(driver, selector) -> str:
    found = css(driver, selector)
    return found[0].text if found else ""


def test_alerts_page_creates_fires_tests_and_deletes(live, browser):
    receiver = Receiver()
    try:
        run(live, browser, receiver)
    finally:
        receiver.close()


def run(live, browser, receiver):
    stack = live.stack
    key = stack.new_key()
    browser.get(live.url("/dashboard/"))
    css(browser, "#signin-key") or wait_for(browser, lambda d: css(d, "#signin-key"), "sign-in")
    css(browser, "#signin-key")[0].send_keys(key)
    css(browser, "#signin-submit")[0].click()
    link = wait_for(
        browser, lambda d: [a for a in css(d, "#nav a") if a.text == "Alerts"], "the Alerts link"
    )
    link[0].click()
    wait_for(browser, lambda d: "No rules yet" in text_of(d, "#al-rules"), "the rules list")

    # A webhook channel: its secret is shown once.
    css(browser, "#al-ch-name")[0].send_keys("ops")
    css(browser, "#al-ch-target")[0].send_keys(receiver.url)
    css(browser, "#al-ch-create")[0].click()
    secret = wait_for(browser, lambda d: css(d, "#al-ch-secret"), "the secret")[0].text
    assert len(secret) == 64
    wait_for(browser, lambda d: "ops (webhook)" in text_of(d, "#al-channels"), "the channel")

    # A rule notifying it: more than 10 % 5xx of at least 10 requests in 5 minutes.
    css(browser, "#al-rule-name")[0].send_keys("Checkout errors")
    css(browser, "#al-rule-threshold")[0].send_keys("10")
    box = wait_for(browser, lambda d: css(d, "#al-rule-channels input"), "the channel box")
    box[0].click()
    css(browser, "#al-rule-create")[0].click()
    wait_for(browser, lambda d: "created" in text_of(d, "#al-rule-msg"), "the rule")
    wait_for(browser, lambda d: "Checkout errors" in text_of(d, "#al-rules"), "the rule row")
    assert "ok" in text_of(browser, "#al-rules") and "ops" in text_of(browser, "#al-rules")

    # Real traffic crosses the threshold; the evaluation opens an incident and notifies.
    moment = (datetime.now(UTC) - timedelta(seconds=20)).isoformat()
    rows = [row(status=500 if i % 3 == 0 else 200, created_at=moment) for i in range(30)]
    assert post_batch(stack.client, key, rows).status_code == 201
    stack.process_jobs()
    assert evaluate(int(time.time()))["opened"] >= 1
    (headers, body) = receiver.received[0]
    expected = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    assert headers["X-Signature"] == expected and json.loads(body)["event"] == "open"

    browser.refresh()
    wait_for(browser, lambda d: "firing" in text_of(d, "#al-rules"), "the firing state")
    incidents = wait_for(
        browser, lambda d: "open → ops: sent" in text_of(d, "#al-incidents"), "the incident"
    )
    assert incidents
    assert "33.3%" in text_of(browser, "#al-incidents")

    # Send test: the receiver gets a test notification.
    wait_for(browser, lambda d: css(d, "#al-channels button"), "the test button")[0].click()
    wait_for(browser, lambda d: "queued" in text_of(d, "#al-ch-msg"), "the test message")
    stack.process_jobs()
    wait_for(browser, lambda _d: len(receiver.received) == 2, "the test notification")
    assert json.loads(receiver.received[1][1])["event"] == "test"
    shot(browser, "alerts")

    # Delete the rule.
    delete = [b for b in css(browser, "#al-rules button") if b.text == "Delete"]
    delete[0].click()
    wait_for(browser, lambda d: "No rules yet" in text_of(d, "#al-rules"), "the rule gone")
