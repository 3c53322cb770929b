"""The middleware under the other servers its README names: gunicorn with uvicorn workers
(forked worker processes) and hypercorn. Each serves a real app with our middleware;
a graceful stop (SIGTERM) must deliver every record exactly once, by the flush at
lifespan shutdown (the timer is set far beyond the test)."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
import time

import httpx

from bench.services import free_port

from .conftest import MIDDLEWARE_DIR, ROOT
from .support import wait_until_serving

APP_MODULE = """
    import os
    from tests.middleware.support import demo_app

    app = demo_app(os.environ["COLLECTOR_URL"], flush_interval=300)
"""


def serve(command: list[str], tmp_path, collector) -> subprocess.Popen:
    (tmp_path / "served_app.py").write_text(textwrap.dedent(APP_MODULE))
    env = {
        "PATH": "/usr/bin:/bin",
        "COLLECTOR_URL": collector.url,
        "PYTHONPATH": ":".join([str(tmp_path), MIDDLEWARE_DIR, str(ROOT)]),
    }
    process = subprocess.Popen(
        command, env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        text=True,
    )  # fmt: skip
    return process


def stop_and_check(process: subprocess.Popen, url: str, collector, requests: int) -> None:
    try:
        wait_until_serving(url, process)
        with httpx.Client() as client:
            for number in range(requests):
                assert client.get(f"{url}/items/{number}").status_code == 200
        time.sleep(0.5)
        early = [row for row in collector.rows() if row["path"] != "/openapi.json"]
        assert early == [], "delivered before the stop: the shutdown flush went untested"
        process.send_signal(signal.SIGTERM)
        output = process.communicate(timeout=30)[0]
    finally:
        if process.poll() is None:
            process.kill()
    paths = sorted(
        (row["path"] for row in collector.rows() if row["path"].startswith("/items/")),
        key=lambda path: int(path.rsplit("/", 1)[1]),
    )
    assert paths == [f"/items/{n}" for n in range(requests)], output


def test_gunicorn_with_uvicorn_workers(collector, tmp_path):
    port = free_port()
    process = serve(
        [sys.executable, "-m", "gunicorn", "served_app:app", "--workers", "2",
         "--worker-class", "uvicorn.workers.UvicornWorker", "--graceful-timeout", "10",
         "--bind", f"127.0.0.1:{port}"],
        tmp_path, collector,
    )  # fmt: skip
    stop_and_check(process, f"http://127.0.0.1:{port}", collector, requests=40)


def test_hypercorn(collector, tmp_path):
    port = free_port()
    process = serve(
        [sys.executable, "-m", "hypercorn", "served_app:app", "--bind", f"127.0.0.1:{port}"],
        tmp_path, collector,
    )  # fmt: skip
    stop_and_check(process, f"http://127.0.0.1:{port}", collector, requests=20)
