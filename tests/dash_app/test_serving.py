"""The page's scripts from a fresh web process: every thread of it serves them at once."""

from __future__ import annotations

import re
import threading

from tests.conftest import sqlite_stack


def test_a_fresh_process_serves_every_script_to_concurrent_requests(tmp_path):
    # gunicorn's workers each start their own app; a browser asks for the page from one
    # and for its scripts, several at once, possibly from another that has served nothing
    # yet. Dash prepared the scripts it may serve on a process's first request, after
    # marking it done: the threads answering at the same time found nothing registered and
    # answered 500, and the page stayed blank (bench/browser.py, 2026-12-07).
    for name in ("one", "two"):
        (tmp_path / name).mkdir()
    page = sqlite_stack(tmp_path / "one").app.test_client().get("/dashboard/")
    scripts = re.findall(r'src="(/dashboard/_dash-component-suites/[^"]+)"', page.text)
    scripts.append("/dashboard/_dash-component-suites/dash/dcc/async-graph.js")
    assert len(scripts) > 5
    fresh = sqlite_stack(tmp_path / "two").app
    start = threading.Barrier(len(scripts))
    answers = {}

    def fetch(path: str) -> None:
        client = fresh.test_client()
        start.wait()
        answers[path] = client.get(path).status_code

    threads = [threading.Thread(target=fetch, args=(path,)) for path in scripts]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert answers == dict.fromkeys(scripts, 200)
