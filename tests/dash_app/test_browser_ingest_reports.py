"""The Ingest page in real headless Chromium: what clients reported of themselves (their
clocks' skew, the records a process dropped) in its tables and its warnings, every figure
the API's own answer."""

from __future__ import annotations

import time

import pytest

from tests.conftest import sqlite_stack
from tests.dash_app.conftest import LiveServer
from tests.dash_app.test_browser import sign_in, wait_for
from tests.dash_app.test_browser_errors import css, idle, text_of
from tests.helpers import payload, row

pytestmark = pytest.mark.browser

CLIENT = "api-analytics-middleware/1.2.0"


@pytest.fixture(scope="module")
def live(tmp_path_factory):
    stack = sqlite_stack(tmp_path_factory.mktemp("ingest-reports"))
    server = LiveServer(stack)
    server.thread.start()
    yield server
    server.server.shutdown()


def test_clock_skew_and_drops_on_the_ingest_page(live, browser):
    stack = live.stack
    key = stack.new_key()
    for _ in range(3):  # a client whose clock runs 45 s behind
        headers = {"User-Agent": CLIENT, "X-Client-Time": f"{time.time() - 45:.3f}"}
        answer = stack.client.post("/api/log-request", json=payload(key, [row()], 0, "Flask"),
                                   headers=headers)  # fmt: skip
        assert answer.status_code == 201
    headers = {
        "User-Agent": CLIENT,
        "X-Client-Time": f"{time.time():.3f}",
        "X-Client-Drops": f"instance={'e' * 32}; buffer_full=1500; refused=2; failed=9",
    }
    answer = stack.client.post("/api/log-request", json=payload(key, [row()], 0, "FastAPI"),
                               headers=headers)  # fmt: skip
    assert answer.status_code == 201
    health = stack.client.get("/api/ingest/health", headers={"X-AUTH-TOKEN": key}).get_json()
    assert len(health["warnings"]) == 2

    sign_in(browser, live, key)
    browser.get(live.url("/dashboard/ingest"))
    wait_for(browser, lambda d: css(d, "#ih-drops tbody tr"), "the drops table")
    wait_for(browser, idle, "the ingest page")
    warnings = [li.text for li in css(browser, "#ih-warnings li")]
    assert warnings == health["warnings"]
    assert any("runs 45" in w and "behind this server's" in w for w in warnings)
    assert any("dropped 1,500 records because its buffer was full" in w for w in warnings)
    clients = {
        tuple(td.text for td in tr.find_elements("css selector", "td"))[:2]: [
            td.text for td in tr.find_elements("css selector", "td")
        ]
        for tr in css(browser, "#ih-clients tbody tr")
    }
    flask = clients[("Flask", CLIENT)]
    skew = next(c for c in health["clients"] if c["framework"] == "Flask")["skew"]
    assert flask[4:] == [f"{skew['median_s']:+,.3f} s", f"{skew['largest_s']:+,.3f} s", "3"]
    cells = [td.text for td in css(browser, "#ih-drops tbody tr")[0].find_elements(
        "css selector", "td")]  # fmt: skip
    assert cells[:5] == [f"FastAPI · {CLIENT}", "eeeeeeee", "1,500", "2", "9"]
    assert "Dropped by clients" in text_of(browser, ".ingest-health")
