"""`make run` as a user meets it: gunicorn's access log, the start-up notes, a chunked body,
start-up errors in one line, and every process stopping with it."""

from __future__ import annotations

import http.client
import json
import os
import re
import signal
import socket
import time

import pytest

from bench.services import wait_for
from tests.conftest import drop_pg_database
from tests.live import MakeRun, descendants, get, processes

MAX_BODY = 200_000


@pytest.fixture(scope="module")
def embedded(tmp_path_factory):
    """The embedded `make run` with three gunicorn workers."""
    run = MakeRun(tmp_path_factory.mktemp("run"), WEB_CONCURRENCY=3, MAX_BODY=MAX_BODY)
    run.start()
    try:
        run.wait_serving()
        yield run
    finally:
        run.kill()


def post_chunked(base: str, body: bytes, chunk: int = 16_384) -> tuple[int, dict]:
    """POST with Transfer-Encoding: chunked (no Content-Length), as streaming clients do."""
    host, port = base.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=30)
    conn.putrequest("POST", "/api/log-request")
    conn.putheader("Content-Type", "application/json")
    conn.putheader("Transfer-Encoding", "chunked")
    conn.endheaders()
    try:
        for start in range(0, len(body), chunk):
            piece = body[start : start + chunk]
            conn.send(f"{len(piece):x}\r\n".encode() + piece + b"\r\n")
        conn.send(b"0\r\n\r\n")
    except (BrokenPipeError, ConnectionResetError):
        pass  # the server answered before reading it all, as it may
    response = conn.getresponse()
    answer = response.status, json.loads(response.read() or b"{}")
    conn.close()
    return answer


def call(base: str, method: str, path: str, body: dict | None = None, headers=None):
    """(status, JSON answer or None) of one request."""
    conn = http.client.HTTPConnection(base.removeprefix("http://"), timeout=10)
    data = None if body is None else json.dumps(body)
    conn.request(method, path, data, {"Content-Type": "application/json", **(headers or {})})
    response = conn.getresponse()
    raw = response.read()
    conn.close()
    return response.status, json.loads(raw) if raw else None


def new_key(base: str) -> str:
    return call(base, "POST", "/api/keys")[1]["api_key"]


def batch_body(key: str, rows: int, padding: int = 0) -> bytes:
    row = {"hostname": "h", "ip_address": "8.8.8.8", "path": "/p" + "x" * padding,
           "user_agent": "curl/8", "method": "GET", "status": 200, "response_time": 1,
           "user_id": None, "created_at": "2026-01-01T00:00:00+00:00"}  # fmt: skip
    return json.dumps({"api_key": key, "requests": [row] * rows}).encode()


def test_a_chunked_body_over_the_limit_gets_the_same_413_as_one_with_a_length(embedded):
    key = new_key(embedded.base)
    status, answer = post_chunked(embedded.base, batch_body(key, 5))
    assert (status, answer["accepted"]) == (201, 5)

    oversize = batch_body(key, 1000, padding=200)[: MAX_BODY - 50] + b" " * 5000
    assert len(oversize) > MAX_BODY
    status, answer = post_chunked(embedded.base, oversize)
    assert status == 413, answer
    assert f"over the {MAX_BODY} byte limit" in answer["message"]

    conn = http.client.HTTPConnection(embedded.base.removeprefix("http://"), timeout=30)
    conn.request("POST", "/api/log-request", oversize, {"Content-Type": "application/json"})
    response = conn.getresponse()
    assert response.status == 413
    assert json.loads(response.read())["message"] == answer["message"]


def test_the_access_log_holds_no_key_and_no_page_plumbing(embedded):
    secret = "s3cr3t-" + os.urandom(6).hex()
    base = embedded.base
    get(f"{base}/api/data?api_key={secret}&page=1")
    get(f"{base}/api/data?X-AUTH-TOKEN={secret}-2")
    get(f"{base}/api/health?access_token={secret}-3", {"Referer": f"{base}/?key={secret}-4"})
    page = get(f"{base}/dashboard/")[1].decode()
    assets = re.findall(r'src="(/dashboard/_dash-component-suites/[^"]+)"', page)
    assert assets
    for path in (assets[0], "/dashboard/_dash-layout", "/dashboard/_dash-dependencies"):
        assert get(base + path)[0] == 200
    assert get(f"{base}/dashboard/assets/missing.css")[0] == 404
    time.sleep(0.5)  # gunicorn writes the access line after the answer
    log = embedded.output()
    assert secret not in log
    assert "api_key=[redacted]&page=1" in log
    assert "X-AUTH-TOKEN=[redacted]" in log and "access_token=[redacted]" in log
    access = [line for line in log.splitlines() if '" 200 ' in line or '" 404 ' in line]
    assert any('"GET /dashboard/ HTTP' in line for line in access)
    assert any("/dashboard/assets/missing.css" in line for line in access)  # errors stay
    for plumbing in ("_dash-component-suites", "_dash-layout", "_dash-dependencies"):
        assert not any(plumbing in line for line in access), plumbing


def test_the_access_log_holds_no_share_link_token(embedded):
    base = embedded.base
    key = new_key(base)
    status, share = call(base, "POST", "/api/shares", {"label": "t"}, {"X-AUTH-TOKEN": key})
    assert status == 201
    token, path = share["token"], share["path"]
    assert get(base + path)[0] == 200
    assert get(f"{base}{path}/explorer?period=7d", {"Referer": base + path})[0] == 200
    assert get(f"{base}{path}/export.csv?period=7d")[0] == 200
    assert call(base, "DELETE", f"/api/shares/{share['id']}", None, {"X-AUTH-TOKEN": key})[0] == 204
    assert get(base + path)[0] == 404  # errors are always logged
    time.sleep(0.5)  # gunicorn writes the access line after the answer
    log = embedded.output()
    assert token not in log and key not in log
    lines = [line for line in log.splitlines() if "/dashboard/s/" in line]
    assert any('"GET /dashboard/s/[redacted]/explorer?period=7d HTTP' in line for line in lines)
    assert any(f'"{base}/dashboard/s/[redacted]"' in line for line in lines)  # the referer
    assert any('"GET /dashboard/s/[redacted] HTTP/1.1" 404' in line for line in lines)


def test_each_warning_once_per_start_not_once_per_worker(tmp_path):
    run = MakeRun(tmp_path, WEB_CONCURRENCY=3).start()
    try:
        run.wait_serving()
        deadline = time.monotonic() + 30
        while run.output().count("Booting worker") < 3 and time.monotonic() < deadline:
            time.sleep(0.2)
        for _ in range(30):  # let every worker load the app and answer
            get(run.base + "/api/health")
        assert run.ctrl_c() == 0
    finally:
        run.kill()
    log = run.output()
    assert log.count("Booting worker") == 3
    assert log.count("no GEOIP_DB") == 1
    assert log.count("no REDIS_URL: background jobs run in-process") == 1


def busy_port() -> socket.socket:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    return listener


@pytest.mark.parametrize(
    ("settings", "expected"),
    [
        ({"APP_ENV": "production"}, "DATABASE_URL and SECRET_KEY are required"),
        (
            {"APP_ENV": "production", "DATABASE_URL": "postgresql://u@127.0.0.1:1/x"},
            "SECRET_KEY is required when APP_ENV=production: set SECRET_KEY=",
        ),
        ({"DATABASE_URL": "postgresql://postgres@127.0.0.1:1/x"}, "is unreachable"),
        ({"REDIS_URL": "redis://127.0.0.1:1/0"}, "Redis at 127.0.0.1:1 is unreachable"),
        ({"PORT": "busy"}, "stop what uses the port"),
        ({"MAX_BODY": "ten"}, "MAX_BODY must be a whole number, not 'ten'"),
    ],
)
def test_a_start_up_error_is_one_line_naming_the_problem_and_the_fix(tmp_path, settings, expected):
    listener = busy_port()
    if settings.get("PORT") == "busy":
        settings = {**settings, "PORT": listener.getsockname()[1]}
    with listener:
        result = MakeRun(tmp_path, **settings).run_to_exit()
    assert result.returncode == 2
    assert "Traceback" not in result.stdout + result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, result.stderr
    assert expected in errors[0]


def test_a_missing_database_is_named_with_the_command_that_creates_it(tmp_path, pg_database):
    url = pg_database
    drop_pg_database(url)
    result = MakeRun(tmp_path, DATABASE_URL=url).run_to_exit()
    assert result.returncode == 2 and "Traceback" not in result.stderr
    name = url.rsplit("/", 1)[1]
    assert f'error: database "{name}" does not exist' in result.stderr
    assert f"createdb -h 127.0.0.1 -U postgres {name}" in result.stderr


def started_pid(run: MakeRun, part: str, timeout: float = 30) -> int:
    """The part's pid, from make run's "started" line: said once the web answers, which
    the supervisor sees on its next look (up to 0.2 s after a test's own request did)."""
    deadline = time.monotonic() + timeout
    while not (found := re.search(rf"started {part} \(pid (\d+)\)", run.output())):
        assert time.monotonic() < deadline, run.output()
        time.sleep(0.1)
    return int(found.group(1))


def alive(pids: set[int]) -> set[int]:
    left = set()
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as handle:
                if handle.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X"):
                    left.add(pid)
        except OSError:
            pass
    return left


def named(pids: set[int]) -> str:
    """The command lines of the live ones among `pids`, for a failure's message."""
    table = processes()
    return "; ".join(f"{pid}: {table[pid][2]}" for pid in sorted(pids) if pid in table)


def test_every_process_stops_with_make_run_even_after_a_killed_worker(
    tmp_path, pg_database, redis_url
):
    run = MakeRun(tmp_path, DATABASE_URL=pg_database, REDIS_URL=redis_url,
                  WEB_CONCURRENCY=2).start()  # fmt: skip
    try:
        run.wait_serving()
        worker = started_pid(run, "worker")
        # RQ forks its scheduler from the worker once the worker is up.
        scheduler = wait_for(lambda: descendants(worker), "the worker's RQ scheduler")
        everything = descendants(run.process.pid)
        assert scheduler <= everything and len(everything) >= 6  # 3 parts, 2 web workers, ...
        os.kill(worker, signal.SIGKILL)
        assert run.process.wait(60) == 1  # a part died: the rest were stopped
        assert "worker exited with code -9; stopping the rest" in run.output()
        wait_for(
            lambda: not alive(everything),
            lambda: f"every process to stop ({named(everything)})",
            30,
        )
    finally:
        run.kill()

    # make run itself killed (no chance to stop anything): the kernel stops its parts.
    second = MakeRun(tmp_path, DATABASE_URL=pg_database, REDIS_URL=redis_url,
                     PORT=run.env["PORT"]).start()  # fmt: skip
    everything = set()
    try:
        second.wait_serving()
        worker = started_pid(second, "worker")
        wait_for(lambda: descendants(worker), "the worker's RQ scheduler")
        everything = descendants(second.process.pid)
        os.kill(second.process.pid, signal.SIGKILL)
        second.process.wait()
        wait_for(
            lambda: not alive(everything),
            lambda: (
                f"every orphan to stop ({named(everything)}); its log:\n{second.output()[-4000:]}"
            ),
            30,
        )
    finally:
        second.kill()
        for pid in alive(everything):  # what this test started and failed to see stop
            os.kill(pid, signal.SIGKILL)


def test_the_demo_is_made_while_serving_and_a_quick_restart_keeps_it(tmp_path):
    """The first start makes the demo's data after the server answers; a restart minutes
    later tops it up without failing (an empty top-up used to stop the start)."""
    for _start in (1, 2):
        run = MakeRun(tmp_path, SEED_DEMO=1).start()
        try:
            run.wait_serving()
            wait_for(lambda r=run: "demo data ready" in r.output(), "the demo data", 120)
            assert run.ctrl_c() == 0
        finally:
            run.kill()
        assert "could not be made" not in run.output()
        demo = get(f"{run.base}/api/health")  # stopped: nothing answers any more
        assert demo[0] is None
    assert "demo data ready: 0 requests and " in run.output()


def test_a_gunicorn_worker_freezes_its_loaded_objects_and_collects_young_ones_less_often():
    """server.runtime.gunicorn_config.post_worker_init, in a process of its own (it changes the
    interpreter's garbage collection for good)."""
    import subprocess
    import sys

    code = (
        "import gc; from server.runtime import gunicorn_config as config; "
        "before = gc.get_threshold(); config.post_worker_init(None); "
        "print(before, gc.get_threshold(), gc.get_freeze_count() > 1000)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    ).stdout.strip()
    assert out == "(700, 10, 10) (50000, 20, 10) True"
