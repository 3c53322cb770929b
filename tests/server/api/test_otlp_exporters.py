"""Real instrumented services, sending through real OTLP exporters to a real server of ours.

Our server is the stack's Flask app behind werkzeug's HTTP server (SQLite, and PostgreSQL
with Redis); the services are separate processes configured by the standard OTEL_* variables
only, as README.md (OpenTelemetry) tells a user to: a Flask app and a FastAPI app (under
uvicorn) with OpenTelemetry's instrumentations and the OTLP/HTTP protobuf exporter
(tests/otlp/python_app.py), and an Express app with the Node SDK, its HTTP and Express
instrumentations and the OTLP/HTTP exporter in JSON and in protobuf (tests/otlp/node/).
Every request they served is in /api/data exactly once, and on the dashboard, with its
route template, status and duration.
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from werkzeug.serving import make_server

from bench.services import free_port, wait_port
from server.keys.api_keys import lookup_key
from server.stats import Filters, answer, window_for
from tests.conftest import ROOT, first_line, unavailable
from tests.test_readme import code_blocks

NODE_SOURCE = ROOT / "tests" / "otlp" / "node"
# (method, path, status) of each request sent to a service, in order.
REQUESTS = [
    ("GET", "/users/1", 200),
    ("GET", "/users/2", 200),
    ("GET", "/users/3", 200),
    ("GET", "/slow", 200),
    ("POST", "/items", 201),
    ("GET", "/boom", 500),
    ("GET", "/nothing/here", 404),
]
README = ROOT / "README.md"
RELEASE = "1.4.2"  # README.md's OTEL_RESOURCE_ATTRIBUTES
SLOW_MS = 200
# The exporters' timer (ms) set past the test's end: every span goes out in the flush at
# shutdown, in one export, so nothing depends on when the timer fires on a loaded machine.
FLUSH_AT_EXIT = "60000"
# Node ends a span when the response closes, after the client has its answer; on a loaded
# two-core machine that gap reached 25+ ms (the /boom case failed once at load 10). A wrong
# unit would be 1000x off, so a quarter second still catches what this check is for.
CLOSE_SLACK_MS = 250


@pytest.fixture
def live_server(stack):
    """The stack's app over real HTTP on 127.0.0.1."""
    server = make_server("127.0.0.1", 0, stack.app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield stack, f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()


@pytest.fixture(scope="session")
def node_app_dir() -> Path:
    """tests/otlp/node with its locked packages installed (`npm ci`), in a cache directory
    named by the lock file's digest, so a second run installs nothing."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if not (node and npm):
        unavailable("Node.js", "no node and npm on PATH; apt-get install nodejs npm")
    lock = (NODE_SOURCE / "package-lock.json").read_bytes()
    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "apia-tests"
    target = cache / f"otlp-node-{hashlib.sha256(lock).hexdigest()[:16]}"
    if not (target / "node_modules").is_dir():
        staging = cache / f"{target.name}.{os.getpid()}"
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
        for name in ("package.json", "package-lock.json"):
            shutil.copy(NODE_SOURCE / name, staging / name)
        try:
            subprocess.run(
                [npm, "ci", "--no-audit", "--no-fund", "--ignore-scripts"],
                cwd=staging, check=True, capture_output=True, text=True, timeout=600,
            )  # fmt: skip
        except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as exc:
            shutil.rmtree(staging, ignore_errors=True)
            output = getattr(exc, "stderr", "") or str(exc)
            unavailable("Node.js packages", f"npm ci failed: {first_line(Exception(output))}")
        with contextlib.suppress(OSError):  # another run may have got there first
            staging.rename(target)
        shutil.rmtree(staging, ignore_errors=True)
    shutil.copy(NODE_SOURCE / "app.js", target / "app.js")
    return target


@contextlib.contextmanager
def service(command: list[str], env: dict, cwd: Path, port: int):
    """A service process on `port`; stopped with SIGTERM, which flushes its spans."""
    log = cwd / f"service-{port}.log" if cwd.is_dir() else None
    with open(log or os.devnull, "w") as out:
        process = subprocess.Popen(command, cwd=cwd, env=env, stdout=out, stderr=out)
    try:
        wait_port(port, timeout=60)
        yield f"127.0.0.1:{port}"
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
            raise
        finally:
            if log is not None and log.exists():
                sys.stderr.write(log.read_text()[-4000:])
                log.unlink()


def exercise(netloc: str) -> list[float]:
    """Send REQUESTS, each on a connection of its own; each one's time seen by the client (ms)."""
    elapsed = []
    for method, path, status in REQUESTS:
        conn = http.client.HTTPConnection(netloc, timeout=30)
        started = time.perf_counter()
        conn.request(method, path, headers={"User-Agent": "otlp-test/1.0"})
        response = conn.getresponse()
        response.read()
        elapsed.append((time.perf_counter() - started) * 1000)
        conn.close()
        assert response.status == status, (method, path, response.status)
    return elapsed


def readme_env(key: str) -> dict:
    """The variables README.md's OpenTelemetry section has a user export, with `key`."""
    block = code_blocks(README.read_text(), "OpenTelemetry (any language)", "sh")[0]
    shown = subprocess.run(
        ["bash", "-e", "-c", block + "\nenv -0"], env={"KEY": key, "PATH": os.defpath},
        capture_output=True, text=True, check=True, timeout=10,
    ).stdout  # fmt: skip
    found = dict(item.split("=", 1) for item in shown.split("\0") if item.startswith("OTEL_"))
    assert found["OTEL_EXPORTER_OTLP_ENDPOINT"] == "http://localhost:8000", found  # no PORT
    return found


def otel_env(server: str, key: str, service_name: str, **extra) -> dict:
    """The standard variables README.md (OpenTelemetry) has a user set, our server's address
    for its localhost:8000, and nothing of ours."""
    keep = {k: v for k, v in os.environ.items() if k in {"HOME", "LANG", "PATH", "TMPDIR"}}
    return {
        **keep,
        **readme_env(key),
        "OTEL_EXPORTER_OTLP_ENDPOINT": server,
        "OTEL_SERVICE_NAME": service_name,
        **extra,
    }


def check_stored(stack, key: str, elapsed: list[float], routes: dict, service_name: str,
                 error_type: str) -> None:  # fmt: skip
    """Every request exactly once in /api/data and on the dashboard, as it was served."""
    response = stack.client.get("/api/data", headers={"X-AUTH-TOKEN": key})
    rows = response.get_json()
    assert sorted((r["method"], r["path"], r["status"]) for r in rows) == sorted(REQUESTS)
    for (method, path, _status), took in zip(REQUESTS, elapsed, strict=True):
        (row,) = [r for r in rows if (r["method"], r["path"]) == (method, path)]
        assert row["endpoint"] == routes.get(path, path), row
        # Within what the client saw: Node ends its server span when the response closes,
        # which may come a few milliseconds after the client had the answer.
        assert row["response_time"] <= took + CLOSE_SLACK_MS, (row, took)
        if path == "/slow":
            assert row["response_time"] >= SLOW_MS, row
        assert (row["service"], row["release"]) == (service_name, RELEASE)
        assert row["framework"] == "OpenTelemetry"
        assert row["user_agent"] == "otlp-test/1.0"
        assert row["ip_address"] == "127.0.0.1"
        assert row["user_id"] == (f"user-{path[-1]}" if path.startswith("/users/") else None)
    with stack.engine.connect() as conn:
        key_id = lookup_key(conn, key)
    for clicks in ((), (("service", service_name),)):
        found = answer(key_id, Filters(period="24h", clicks=clicks), window_for("24h"))
        endpoints = found.parts.endpoints
        shown = {(m, e): int(n) for m, e, n in endpoints[["method", "endpoint", "n"]].values}
        expected = {}
        for method, path, _status in REQUESTS:
            label = (method, routes.get(path, path))
            expected[label] = expected.get(label, 0) + 1
        assert shown == expected
    errors = stack.client.get("/api/errors?period=24h", headers={"X-AUTH-TOKEN": key})
    (group,) = errors.get_json()
    assert (group["type"], group["route"], group["count"]) == (error_type, "GET /boom", 1)


PYTHON_ROUTES = {
    "flask": {"/users/1": "/users/<int:user_id>", "/users/2": "/users/<int:user_id>",
              "/users/3": "/users/<int:user_id>"},
    "fastapi": {"/users/1": "/users/{user_id}", "/users/2": "/users/{user_id}",
                "/users/3": "/users/{user_id}"},
}  # fmt: skip


@pytest.mark.timeout(180)
@pytest.mark.parametrize(
    ("framework", "conventions", "zero_code"),
    # OTEL_SEMCONV_STABILITY_OPT_IN: "" the older HTTP conventions (the default), "http"
    # the current ones, "http/dup" both on every span. `zero code`: under
    # opentelemetry-instrument, as README.md tells Python users.
    [
        ("flask", "", False),
        ("fastapi", "http", False),
        ("flask", "http/dup", False),
        ("fastapi", "", True),
    ],  # fmt: skip
    ids=["flask-old", "fastapi-new", "flask-both", "fastapi-zero-code"],
)
def test_python_services_export_every_request(live_server, tmp_path, framework, conventions,
                                              zero_code):  # fmt: skip
    stack, base = live_server
    key = stack.new_key()
    port = free_port()
    env = otel_env(base, key, f"{framework}-shop", OTEL_SEMCONV_STABILITY_OPT_IN=conventions,
                   OTEL_BSP_SCHEDULE_DELAY=FLUSH_AT_EXIT)  # fmt: skip
    command = [sys.executable, str(ROOT / "tests" / "otlp" / "python_app.py"), framework, str(port)]
    if zero_code:
        command = [str(Path(sys.executable).parent / "opentelemetry-instrument"), *command]
    with service(command, env, tmp_path, port) as netloc:
        elapsed = exercise(netloc)
    routes = {**PYTHON_ROUTES[framework], "/slow": "/slow", "/items": "/items", "/boom": "/boom"}
    check_stored(stack, key, elapsed, routes, f"{framework}-shop", "ZeroDivisionError")


@pytest.mark.timeout(300)
@pytest.mark.parametrize("protocol", ["http/json", "http/protobuf"])
def test_express_exports_every_request(live_server, node_app_dir, protocol):
    stack, base = live_server
    key = stack.new_key()
    port = free_port()
    # The Bearer form, as OTEL_EXPORTER_OTLP_HEADERS writes a space.
    env = otel_env(base, key, "express-shop", OTEL_EXPORTER_OTLP_PROTOCOL=protocol,
                   OTEL_EXPORTER_OTLP_HEADERS=f"Authorization=Bearer%20{key}",
                   OTEL_BSP_SCHEDULE_DELAY=FLUSH_AT_EXIT)  # fmt: skip
    with service(["node", "app.js", str(port)], env, node_app_dir, port) as netloc:
        elapsed = exercise(netloc)
    routes = {"/users/1": "/users/:id", "/users/2": "/users/:id", "/users/3": "/users/:id",
              "/slow": "/slow", "/items": "/items", "/boom": "/boom"}  # fmt: skip
    check_stored(stack, key, elapsed, routes, "express-shop", "TypeError")
