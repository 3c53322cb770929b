"""Throwaway services for benchmarks and tests: a fresh database, a private Redis, our
processes, a free port, and waiting for a condition."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from pathlib import Path

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parent.parent
PG_ADMIN_URL = os.environ.get(
    "BENCH_PG_ADMIN_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(condition, what="the condition", timeout: float = 60.0, interval: float = 0.05):
    """`condition()`'s first true value; `what` (or what it returns) names it on timeout."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what() if callable(what) else what}")
        time.sleep(interval)


def progress(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


@contextlib.contextmanager
def fresh_database(prefix: str = "apia_bench", keep: str | None = None):
    """A new database, migrated; dropped afterwards. With `keep`, the database of that
    name, created if missing and kept (for repeated runs over the same loaded rows)."""
    from server.cli import upgrade_database

    name = keep or f"{prefix}_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        exists = conn.execute(
            text("SELECT 1 FROM pg_database WHERE datname = :name"), {"name": name}
        ).scalar()
        if not exists:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = make_url(PG_ADMIN_URL).set(database=name).render_as_string(hide_password=False)
    try:
        upgrade_database(url)
        yield url
    finally:
        from server.db import get_engine

        with contextlib.suppress(Exception):
            get_engine().dispose()
        if not keep:
            with admin.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@contextlib.contextmanager
def private_redis():
    workdir = tempfile.mkdtemp(prefix="bench-redis-")
    port = free_port()
    proc = subprocess.Popen(
        [shutil.which("redis-server"), "--port", str(port), "--bind", "127.0.0.1",
         "--save", "", "--appendonly", "no", "--dir", workdir],
        stdout=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        wait_port(port)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        proc.terminate()
        proc.wait(10)
        shutil.rmtree(workdir, ignore_errors=True)


def wait_port(port: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listens on {port}")


def wait_http(url: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), urllib.request.urlopen(url, timeout=2) as response:
            if response.status == 200:
                return
        time.sleep(0.1)
    raise RuntimeError(f"{url} did not answer 200")


def geoip_db() -> str | None:
    """The country database the benchmark's stack uses: GEOIP_DB, else `make geoip`'s file."""
    if os.environ.get("GEOIP_DB"):
        return os.environ["GEOIP_DB"]
    fetched = ROOT / "data" / "geo-whois-asn-country.mmdb"
    return str(fetched) if fetched.is_file() else None


@contextlib.contextmanager
def running_stack(
    database_url: str,
    redis_url: str,
    *,
    web_workers: int = 2,
    threads: int = 4,
    workers: int = 1,
    scheduler: bool = False,
    data_dir: str | None = None,
):
    """gunicorn (the same command `make run` uses), `workers` x `python -m worker` and,
    with `scheduler`, `python -m worker scheduler`; the columnar store under data_dir/lake."""
    port = free_port()
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
        "LOG_LEVEL": os.environ.get("BENCH_LOG_LEVEL", "WARNING"),
        "DATA_DIR": data_dir or tempfile.mkdtemp(prefix="bench-data-"),
    }
    if geoip_db():  # the private DATA_DIR holds none: countries are looked up as in production
        env["GEOIP_DB"] = geoip_db()
    web = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "wsgi:app",
         "--config", "python:server.runtime.gunicorn_config", "--bind", f"127.0.0.1:{port}",
         "--workers", str(web_workers), "--threads", str(threads), "--log-level", "warning"],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL,  # the access log: a line a request
    )  # fmt: skip
    others = [
        subprocess.Popen([sys.executable, "-m", "worker"], cwd=ROOT, env=env)
        for _ in range(workers)
    ]
    if scheduler:
        others.append(
            subprocess.Popen([sys.executable, "-m", "worker", "scheduler"], cwd=ROOT, env=env)
        )
    try:
        wait_http(f"http://127.0.0.1:{port}/api/health")
        STACK_PIDS.update(web=web.pid, worker=others[0].pid)
        for index, proc in enumerate(others[1:workers], start=2):
            STACK_PIDS[f"worker{index}"] = proc.pid
        yield f"http://127.0.0.1:{port}"
    finally:
        for proc in (web, *others):
            proc.terminate()
        for proc in (web, *others):
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()


# The running stack's process ids, for cpu_seconds().
STACK_PIDS: dict[str, int] = {}


def _proc_stat(pid: int) -> tuple[int, float]:
    """(parent pid, user + system CPU seconds) of a live process."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[1]), (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def cpu_seconds() -> dict[str, float]:
    """CPU seconds used so far by each part: the web and the worker (each with its child
    processes) and every PostgreSQL process. Diff two readings to see where a run's CPU went;
    a process that exits between them takes its share with it."""
    parents, used, names = {}, {}, {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        with contextlib.suppress(OSError, ValueError, IndexError):
            parents[int(entry)], used[int(entry)] = _proc_stat(int(entry))
            with open(f"/proc/{entry}/comm") as f:
                names[int(entry)] = f.read().strip()
    out = dict.fromkeys([*STACK_PIDS, "postgres"], 0.0)
    for pid, seconds in used.items():
        if names.get(pid) == "postgres":
            out["postgres"] += seconds
            continue
        ancestor = pid
        while ancestor > 1:
            part = next((n for n, p in STACK_PIDS.items() if p == ancestor), None)
            if part:
                out[part] += seconds
                break
            ancestor = parents.get(ancestor, 1)
    return out


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]
