"""The overview shows its state in real headless Chromium: a view still computing says so
while the numbers already on screen stay visible, and a view that cannot be computed says
why in plain words and leaves those numbers in place.

The key's engine turns (server.lake.fair) are held by the test, in the server's own
process, so the panels' callback really waits (computing) or is really refused (busy).
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest

from server.keys.api_keys import lookup_key
from server.lake import fair
from tests.conftest import sqlite_stack
from tests.dash_app.conftest import LiveServer
from tests.dash_app.test_browser import number, sign_in, stat, wait_for
from tests.dash_app.test_browser_errors import css, text_of
from tests.helpers import post_batch, row

pytestmark = pytest.mark.browser

RECENT, OLDER = 40, 25  # requests in the last hours, and 3-6 days ago


@pytest.fixture(scope="module")
def live(tmp_path_factory):
    stack = sqlite_stack(tmp_path_factory.mktemp("state"), ENGINE_KEY_SLOTS=1, ENGINE_KEY_QUEUE=1)
    now = datetime.now(UTC)
    rows = [row(created_at=(now - timedelta(minutes=5 + i)).isoformat()) for i in range(RECENT)]
    rows += [row(created_at=(now - timedelta(days=3 + i / 10)).isoformat()) for i in range(OLDER)]
    key = stack.new_key()
    assert post_batch(stack.client, key, rows).status_code == 201
    stack.process_jobs()
    with stack.engine.connect() as conn:
        key_id = lookup_key(conn, key)
    server = LiveServer(stack)
    server.thread.start()
    server.key, server.key_id = key, key_id
    yield server
    server.server.shutdown()


def choose_period(driver, label: str) -> None:
    for option in css(driver, "#ov-period label"):
        if option.text.strip() == label:
            option.click()
            return
    raise AssertionError(f"no period {label!r}")


def test_a_view_computing_says_so_and_keeps_the_numbers_on_screen(live, browser):
    gate = fair.gate(live.stack.config)
    sign_in(browser, live, live.key)
    assert number(stat(browser, "ov-requests")) == RECENT + OLDER  # 30 days
    assert not text_of(browser, "#ov-computing")

    with gate.turn(live.key_id):  # the engine busy with this key's other work
        choose_period(browser, "24 hours")
        wait_for(
            browser, lambda d: "Computing" in text_of(d, "#ov-computing"), "the computing line"
        )
        # Each panel says it too, over what it showed, and the numbers stay readable.
        wait_for(browser, lambda d: css(d, ".computing"), "panels")
        assert number(stat(browser, "ov-requests")) == RECENT + OLDER
        assert css(browser, "#ov-requests")[0].is_displayed()
    wait_for(browser, lambda d: number(stat(d, "ov-requests")) == RECENT, "the 24-hour view")
    wait_for(browser, lambda d: not text_of(d, "#ov-computing"), "the computing line gone")
    assert not css(browser, ".computing")
    assert not text_of(browser, "#ov-problem")


def test_a_view_that_fails_says_why_and_keeps_the_numbers(live, browser):
    gate = fair.gate(live.stack.config)
    sign_in(browser, live, live.key)
    choose_period(browser, "7 days")
    wait_for(browser, lambda d: number(stat(d, "ov-requests")) == RECENT + OLDER, "7 days")
    queued, release = threading.Event(), threading.Event()

    def wait_in_line():
        queued.set()
        with gate.turn(live.key_id):
            release.wait(30)

    with gate.turn(live.key_id):  # one running, one waiting: the key's share is taken
        waiter = threading.Thread(target=wait_in_line)
        waiter.start()
        queued.wait(5)
        wait_for(browser, lambda _d: gate.load().get(live.key_id) == (1, 1), "a full queue")
        choose_period(browser, "1 year")  # a view not computed before (none cached)
        problem = wait_for(browser, lambda d: text_of(d, "#ov-problem-text"), "the failure")
    release.set()
    waiter.join(10)
    assert "already has 1 query running" in problem and "try again" in problem, problem
    assert "still those of the view before" in problem
    assert number(stat(browser, "ov-requests")) == RECENT + OLDER  # the 7 days' number
    assert not text_of(browser, "#ov-computing")

    choose_period(browser, "6 months")  # the next view computes and clears the message
    wait_for(browser, lambda d: not text_of(d, "#ov-problem"), "the failure gone")
    assert number(stat(browser, "ov-requests")) == RECENT + OLDER
