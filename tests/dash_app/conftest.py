"""The dashboard's browser fixtures: a real HTTP server on 127.0.0.1 and headless Chromium.

Skipped on a bare machine without Chromium/chromedriver (a failure when CI=true).
"""

from __future__ import annotations

import os
import threading
from datetime import UTC, datetime
from pathlib import Path

import pytest

from bench.services import free_port
from server.demo.seed import seed_demo, seed_demo_monitors
from tests.conftest import first_line, sqlite_stack, unavailable

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("CHROMEDRIVER", "/usr/bin/chromedriver")


# --- fixtures ------------------------------------------------------------------------------


class LiveServer:
    def __init__(self, stack):
        from werkzeug.serving import make_server

        self.stack = stack
        self.port = free_port()
        self.server = make_server("127.0.0.1", self.port, stack.app, threaded=True)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"


@pytest.fixture(scope="module")
def live(tmp_path_factory):
    from tests.conftest import write_mmdb

    tmp = tmp_path_factory.mktemp("browser")
    geo = write_mmdb(tmp / "country.mmdb", flavour="cc0")
    stack = sqlite_stack(tmp, GEOIP_DB=str(geo))
    now = datetime.now(UTC)
    seed_demo(stack.engine, days=8, now=now)
    server = LiveServer(stack)
    # The demo's own monitors, as `make run` seeds them: this server's endpoints.
    seed_demo_monitors(stack.engine, server.url(""), now=now)
    server.thread.start()
    yield server
    server.server.shutdown()


@pytest.fixture(scope="module")
def chrome(tmp_path_factory):
    if not Path(CHROMIUM).exists():
        unavailable("Chromium", f"no {CHROMIUM}; apt-get install chromium, or set CHROMIUM")
    if not Path(CHROMEDRIVER).exists():
        unavailable(
            "chromedriver",
            f"no {CHROMEDRIVER}; apt-get install chromium-driver, or set CHROMEDRIVER",
        )
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    downloads = tmp_path_factory.mktemp("downloads")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--window-size=1440,900",
        # Nothing but this machine resolves: a page that needs the internet shows it.
        "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
    ):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    try:
        driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    except Exception as exc:  # a driver/browser mismatch is an environment problem
        unavailable("Chromium", f"chromedriver could not start it: {first_line(exc)}")
    driver.execute_cdp_cmd(
        "Page.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(downloads)}
    )
    driver.downloads = downloads
    yield driver
    driver.quit()


@pytest.fixture
def browser(chrome):
    """The shared browser, signed out, with its console checked after each test."""
    chrome.delete_all_cookies()
    chrome.get_log("browser")  # drop earlier entries
    yield chrome
    errors = [e for e in chrome.get_log("browser") if e["level"] == "SEVERE"]
    assert not errors, errors
