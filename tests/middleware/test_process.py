"""Process edges: the flush at interpreter exit, and a flusher that survives a fork."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap

import httpx

from bench.services import free_port

from .conftest import MIDDLEWARE_DIR, ROOT
from .support import wait_until_serving


def python(script: str, *args: str, **kwargs) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([MIDDLEWARE_DIR, str(ROOT)])}
    return subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(script), *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        **kwargs,
    )


def test_exit_flushes_when_the_server_runs_without_lifespan(collector):
    # No lifespan events (uvicorn --lifespan off): only the atexit hook can flush. Ctrl-C
    # (SIGINT) ends the process through Python; uvicorn re-raises a SIGTERM with its
    # default action, which kills the process before any atexit hook (see the README).
    port = free_port()
    process = python(
        """
        import sys
        import uvicorn
        from tests.middleware.support import demo_app

        app = demo_app(sys.argv[1], flush_interval=60)
        uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[2]), lifespan="off",
                    log_level="warning")
        """,
        collector.url,
        str(port),
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_serving(url, process)
        for number in range(3):
            assert httpx.get(f"{url}/items/{number}").status_code == 200
        assert collector.deliveries == []
        process.send_signal(signal.SIGINT)
        output = process.communicate(timeout=30)[0]
    finally:
        if process.poll() is None:
            process.kill()
    paths = sorted(row["path"] for row in collector.rows() if row["path"] != "/openapi.json")
    assert paths == ["/items/0", "/items/1", "/items/2"], output


def test_a_flusher_started_before_fork_runs_again_in_the_child(collector):
    process = python(
        """
        import os, sys, time
        from api_analytics.core import Client

        def record(path):
            return (time.time(), 1.0, "GET", path, 200, b"h", b"ua", None, None, None)

        client = Client("fork-key", sys.argv[1], 0, flush_interval=0.3)
        client.add(record("/before-fork"))  # starts the flusher thread
        assert client._thread is not None and client._thread.is_alive()
        pid = os.fork()
        if pid == 0:
            # The child: no thread survived the fork, and the parent owns /before-fork.
            client.add(record("/child"))
            deadline = time.monotonic() + 10
            while client.delivered < 1 and time.monotonic() < deadline:
                time.sleep(0.02)
            os._exit(0 if client.delivered == 1 and client.unsent == 0 else 1)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0, "the child's flusher did not deliver"
        client.add(record("/parent-after-fork"))
        deadline = time.monotonic() + 10
        while client.delivered < 2 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert client.delivered == 2, client.delivered
        print("ok")
        """,
        collector.url,
    )
    output = process.communicate(timeout=60)[0]
    assert process.returncode == 0, output
    # Each record exactly once; the child's batch holds only the child's record.
    paths = sorted(row["path"] for row in collector.rows())
    assert paths == ["/before-fork", "/child", "/parent-after-fork"]
    assert ["/child"] in [[row["path"] for row in d.rows] for d in collector.deliveries]
