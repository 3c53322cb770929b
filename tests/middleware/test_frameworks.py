"""Every framework's adapter in its own real server, stopped by that server's normal signal.

Each run serves an app of `tests/middleware/apps` (written as the published README shows
for its framework) with a timer far beyond the test, so only the shutdown flush can
deliver: every request must then arrive exactly once, with the right status (500 for an
exception, 404 for an unknown path), the fields the defaults and the user's mappers
give, and a streamed response timed to its end where the framework lets us see it.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from bench.services import free_port

from .conftest import MIDDLEWARE_DIR, ROOT

APPS = "tests.middleware.apps"
PROBE = "/ready-probe"
AGENT = "test-agent/1.0"
FILE_BODY = (ROOT / "tests/middleware/apps/flask_app.py").read_bytes()


@dataclass
class Server:
    """How to serve one app, how that server is normally stopped, and what it can show."""

    framework: str
    command: list[str]  # "{port}" is replaced by a free port
    stop: int = signal.SIGTERM
    env: dict[str, str] = field(default_factory=dict)
    streams_timed: bool = True  # /stream is timed to its last chunk
    logs_404: bool = True
    file: bool = False  # serves /file (Flask's send_file)
    instances: int = 1  # middleware objects the app builds, in all its processes (each
    # logs its own configuration error)


def gunicorn(target: str, *options: str) -> list[str]:
    return [sys.executable, "-m", "gunicorn", target, "--bind", "127.0.0.1:{port}",
            "--graceful-timeout", "15", *options]  # fmt: skip


def uvicorn(target: str) -> list[str]:
    return [sys.executable, "-m", "uvicorn", target, "--host", "127.0.0.1", "--port", "{port}",
            "--log-level", "warning"]  # fmt: skip


FLASK = f"{APPS}.flask_app:app"
DJANGO = f"{APPS}.django_wsgi:application"
SERVERS = {
    "flask-gunicorn-sync": Server("Flask", gunicorn(FLASK, "-w", "2"), file=True, instances=2),
    "flask-gunicorn-gthread": Server(
        "Flask", gunicorn(FLASK, "-w", "1", "-k", "gthread", "--threads", "4"), file=True
    ),
    "flask-gunicorn-preload": Server("Flask", gunicorn(FLASK, "-w", "2", "--preload"), file=True),
    "flask-gunicorn-propagate": Server(
        "Flask", gunicorn(FLASK, "-w", "1"), env={"PROPAGATE": "1"}, file=True
    ),
    "flask-run": Server(
        "Flask",
        [sys.executable, "-m", "flask", "--app", FLASK, "run", "--port", "{port}"],
        stop=signal.SIGINT,
        file=True,
    ),  # fmt: skip
    "django-gunicorn-sync": Server("Django", gunicorn(DJANGO, "-w", "2"), instances=2),
    "django-gunicorn-gthread": Server(
        "Django", gunicorn(DJANGO, "-w", "1", "-k", "gthread", "--threads", "4")
    ),
    "django-runserver": Server(
        "Django",
        [
            sys.executable,
            "-m",
            "django",
            "runserver",
            "--noreload",
            f"--settings={APPS}.django_site",
            "127.0.0.1:{port}",
        ],
        stop=signal.SIGINT,
    ),  # fmt: skip
    "tornado": Server(
        "Tornado", [sys.executable, "-m", f"{APPS}.tornado_app", "{port}"], stop=signal.SIGINT
    ),
    "aiohttp": Server("aiohttp", [sys.executable, "-m", f"{APPS}.aiohttp_app", "{port}"]),
    "sanic": Server(
        "Sanic",
        [
            sys.executable,
            "-m",
            "sanic",
            f"{APPS}.sanic_app:app",
            "--host",
            "127.0.0.1",
            "--port",
            "{port}",
            "--workers",
            "2",
            "--no-motd",
        ],
        streams_timed=False,
        instances=3,
    ),  # fmt: skip
    "falcon-gunicorn": Server(
        "Falcon", gunicorn(f"{APPS}.falcon_app:app", "-w", "1"), streams_timed=False
    ),
    # falcon_app and litestar_app each build two apps, so two middleware objects.
    "falcon-uvicorn": Server(
        "Falcon", uvicorn(f"{APPS}.falcon_app:asgi_app"), streams_timed=False, instances=2
    ),
    "starlette-uvicorn": Server("Starlette", uvicorn(f"{APPS}.starlette_app:app")),
    "litestar-uvicorn": Server(
        "Litestar", uvicorn(f"{APPS}.litestar_app:app"), logs_404=False, instances=2
    ),
    "litestar-middleware-ctrl-c": Server(
        "Litestar",
        uvicorn(f"{APPS}.litestar_app:app_middleware"),
        stop=signal.SIGINT,
        logs_404=False,
        instances=2,
    ),  # fmt: skip
}


def start(server: Server, port: int, **env: str) -> subprocess.Popen:
    command = [part.replace("{port}", str(port)) for part in server.command]
    environment = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "PYTHONPATH": os.pathsep.join([MIDDLEWARE_DIR, str(ROOT)]),
        "DJANGO_SETTINGS_MODULE": f"{APPS}.django_site",
        **server.env,
        **env,
    }
    return subprocess.Popen(
        command, cwd=ROOT, env=environment, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        text=True, start_new_session=True,
    )  # fmt: skip


def wait_until_serving(url: str, process: subprocess.Popen) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"the server exited:\n{process.communicate()[0]}")
        try:
            httpx.get(url + PROBE, timeout=2)
            return
        except httpx.TransportError:
            time.sleep(0.1)
    raise AssertionError("the server did not start")


def stop(process: subprocess.Popen, signum: int) -> str:
    if process.poll() is None:
        os.kill(process.pid, signum)
    try:
        return process.communicate(timeout=40)[0]
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def exercise(url: str, server: Server) -> dict[str, httpx.Response]:
    """The requests every run makes; their answers by path."""
    answers = {}
    headers = {"User-Agent": AGENT, "X-User": "user-7"}
    with httpx.Client(base_url=url, timeout=10) as client:
        for number in range(10):
            answers[f"/items/{number}"] = client.get(f"/items/{number}", headers=headers)
        # A mapper that raises: its field is null, the request is unaffected.
        answers["/items/10"] = client.get("/items/10", headers={**headers, "X-Fail": "1"})
        answers["/stream"] = client.get("/stream", headers=headers)
        answers["/missing"] = client.get("/missing", headers=headers)
        if server.file:
            answers["/file"] = client.get("/file", headers=headers)
    # On a connection of its own: an ASGI server may close the one an exception went
    # through while the client is already sending its next request on it.
    answers["/boom"] = httpx.get(url + "/boom", headers=headers, timeout=10)
    return answers


@pytest.mark.parametrize("name", list(SERVERS))
def test_every_request_arrives_once_after_the_servers_normal_stop(collector, name):
    server = SERVERS[name]
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    process = start(server, port, COLLECTOR_URL=collector.url, MAPPERS="1")
    try:
        wait_until_serving(url, process)
        answers = exercise(url, server)
        time.sleep(0.3)
        assert collector.rows() == [], "delivered before the stop: the shutdown flush untested"
    finally:
        output = stop(process, server.stop)

    for number in range(11):
        answer = answers[f"/items/{number}"]
        assert (answer.status_code, answer.json()) == (200, {"item": number}), output
    assert answers["/stream"].status_code == 200
    assert answers["/stream"].content == b"first\nsecond\n"  # streamed intact
    assert answers["/boom"].status_code == 500
    assert answers["/missing"].status_code == 404

    rows = [row for row in collector.rows() if row["path"] != PROBE]
    by_path: dict[str, list[dict]] = {}
    for row in rows:
        by_path.setdefault(row["path"], []).append(row)
    expected = {f"/items/{n}" for n in range(11)} | {"/stream", "/boom"}
    if server.logs_404:
        expected.add("/missing")
    if server.file:
        expected.add("/file")
    assert set(by_path) == expected, output
    assert all(len(same) == 1 for same in by_path.values()), "a request was delivered twice"
    assert {d.payload["framework"] for d in collector.accepted()} == {server.framework}

    first = by_path["/items/0"][0]
    assert (first["method"], first["status"], first["hostname"]) == ("GET", 200, "127.0.0.1")
    assert (first["ip_address"], first["user_agent"], first["user_id"]) == (
        "127.0.0.1", AGENT, "user-7",
    )  # fmt: skip
    assert first["created_at"].endswith("+00:00") and first["response_time"] >= 0
    failed_mapper = by_path["/items/10"][0]
    assert (failed_mapper["user_agent"], failed_mapper["user_id"]) == (None, "user-7")
    assert by_path["/boom"][0]["status"] == 500
    if server.logs_404:
        assert by_path["/missing"][0]["status"] == 404
    stream_time = by_path["/stream"][0]["response_time"]
    assert by_path["/stream"][0]["status"] == 200
    if server.streams_timed:
        assert stream_time >= 290, f"/stream took {stream_time} ms: not timed to its end"
    if server.file:
        assert answers["/file"].content == FILE_BODY
        assert by_path["/file"][0]["status"] == 200
    if name == "flask-gunicorn-propagate":
        assert "RuntimeError: boom" in output  # re-raised to gunicorn, which logged it


MISCONFIGURED = [
    "flask-run", "django-runserver", "tornado", "aiohttp", "sanic", "falcon-uvicorn",
    "starlette-uvicorn", "litestar-uvicorn",
]  # fmt: skip


@pytest.mark.parametrize("name", MISCONFIGURED)
def test_a_missing_key_logs_one_error_and_the_app_serves_as_before(collector, name):
    server = SERVERS[name]
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    process = start(server, port, COLLECTOR_URL=collector.url, API_KEY="", FLUSH_INTERVAL="0.1")
    try:
        wait_until_serving(url, process)
        answers = exercise(url, server)
        time.sleep(0.5)
    finally:
        output = stop(process, server.stop)
    assert [answers[f"/items/{n}"].json() for n in range(11)] == [{"item": n} for n in range(11)]
    assert answers["/stream"].content == b"first\nsecond\n"
    assert collector.deliveries == []
    # Once per process that imported the app, however many requests it served.
    assert 1 <= output.count("API Analytics disabled") <= server.instances, output


def test_the_readme_code_of_every_framework_imports(tmp_path):
    """The published README's import lines, in a fresh interpreter with our package."""
    code = "\n".join(
        [
            "from api_analytics.fastapi import Analytics, Config",
            "from api_analytics.flask import add_middleware, Config",
            "from api_analytics.django import Analytics, Config",
            "from api_analytics.tornado import Analytics, Config",
            "from api_analytics.starlette import Analytics, Config",
            "from api_analytics.aiohttp import add_middleware, Config",
            "from api_analytics.sanic import add_middleware, Config",
            "from api_analytics.falcon import Analytics, Config",
            "from api_analytics.litestar import Analytics, Config",
            "import api_analytics; print(api_analytics.__file__)",
        ]
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": MIDDLEWARE_DIR},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert Path(result.stdout.strip()).parent == Path(MIDDLEWARE_DIR) / "api_analytics"
