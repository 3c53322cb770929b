"""`make run`: migrate, then run the web server (and, with Redis, the worker) in the foreground.

Ctrl-C (or SIGTERM) stops every process it started, and every process those started
(each part runs in a process group of its own, stopped as a whole); if one of them
dies, the others are stopped too, so nothing is left running half-configured. A
setting or service that stops the start is named in one line, with its fix.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass

from server import configure_logging
from server.cli import upgrade_database
from server.config import Config, ConfigError
from server.runtime.children import die_with_parent, signal_group, wait_for_group
from server.runtime.startup import (
    StartupError,
    announce,
    check_port,
    check_redis,
    explain_database_error,
)

log = logging.getLogger("run")


@dataclass
class Part:
    name: str
    argv: list[str]
    where: str
    process: subprocess.Popen | None = None
    # Said to be started once this answers (the web: its health check), not at its fork:
    # gunicorn takes seconds to import the app, and "started" must mean it answers.
    ready_url: str | None = None


# Web threads per process. A key's requests waiting for its turn at the engine hold a
# thread each (server.lake.fair: at most 1 + ENGINE_KEY_QUEUE), so there are enough for
# a few busy keys and everyone else (bench/fairness.py); fewer than the database pool's
# 15 connections (server.db), which each thread may need at once.
DEFAULT_THREADS = 12


def plan(config: Config, host: str, port: int) -> list[Part]:
    """The processes this configuration needs."""
    python = sys.executable
    workers = os.environ.get("WEB_CONCURRENCY") or ("1" if config.embedded_queue else "3")
    web = [
        python, "-m", "gunicorn", "wsgi:app",
        "--config", "python:server.runtime.gunicorn_config",
        "--bind", f"{host}:{port}",
        "--workers", workers,
        "--threads", os.environ.get("WEB_THREADS", str(DEFAULT_THREADS)),
    ]  # fmt: skip
    where = f"http://{host}:{port} (dashboard at /dashboard, API docs at /api/docs)"
    parts = [Part("web", web, where, ready_url=own_url(host, port) + "/api/health")]
    if not config.embedded_queue:
        parts.append(Part("worker", [python, "-m", "worker"], f"RQ worker on {_redis(config)}"))
        parts.append(
            Part("scheduler", [python, "-m", "worker", "scheduler"], "periodic jobs, on RQ")
        )
    return parts


def _redis(config: Config) -> str:
    return config.REDIS_URL.split("@")[-1]


def stop(parts: list[Part], timeout: float = 15) -> None:
    """SIGTERM every part's whole process group, then wait; SIGKILL what is left.

    A part's group holds what it forked too (gunicorn's workers, RQ's scheduler), even
    a process whose parent already died, so the whole start goes.
    """
    started = [part for part in parts if part.process is not None]
    for part in started:
        signal_group(part.process.pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    for part in started:
        if not wait_for_group(part.process.pid, deadline, reap=part.process.poll):
            log.warning("%s did not stop in time; killing it", part.name)
            signal_group(part.process.pid, signal.SIGKILL)
            wait_for_group(part.process.pid, time.monotonic() + 5, reap=part.process.poll)
        part.process.poll()
        log.info("stopped %s", part.name)


def main() -> int:
    """Start everything and supervise it; 2 when the start itself fails (said in one line)."""
    try:
        config = Config.from_env()
        configure_logging(config.LOG_LEVEL)
        host = os.environ.get("HOST", "127.0.0.1")
        port = int(os.environ.get("PORT", "8000"))
        prepare(config, host, port)
    except (ConfigError, StartupError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except ValueError:
        print(f"error: PORT must be a number, not {os.environ.get('PORT')!r}", file=sys.stderr)
        return 2
    demo = (lambda: seed_demo_data(config, own_url(host, port))) if config.SEED_DEMO else None
    return supervise(plan(config, host, port), demo)


def prepare(config: Config, host: str, port: int) -> None:
    """Everything before the processes start: checks, migrations, the demo data."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import DBAPIError

    mode = "embedded (in-process jobs)" if config.embedded_queue else f"RQ on {_redis(config)}"
    log.info("database: %s", make_url(config.DATABASE_URL).render_as_string(hide_password=True))
    log.info("jobs: %s", mode)
    check_port(host, port)
    if not config.embedded_queue:
        check_redis(config.REDIS_URL)
    log.info("migrating the database ...")
    try:
        upgrade_database(config.DATABASE_URL)
    except DBAPIError as exc:
        raise explain_database_error(exc, config.DATABASE_URL) from None
    # Once for the whole start: the processes below inherit the mark and stay quiet.
    announce(config, for_children=True)


def own_url(host: str, port: int) -> str:
    """How the worker reaches this server (the demo's monitors check it)."""
    if host in ("", "0.0.0.0"):  # noqa: S104 (a comparison: where we listen, not a bind)
        host = "127.0.0.1"
    elif host == "::":
        host = "::1"
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def seed_demo_data(config: Config, base_url: str) -> None:
    """The demo's traffic and monitors: made on the first start (~100,000 rows, a dozen
    seconds here), topped up on later ones, while the server already answers."""
    import server.jobs  # noqa: F401  (declares the jobs the seeding asks for)
    from server.db import init_engine
    from server.demo.seed import seed_demo, seed_demo_monitors

    engine = init_engine(config.DATABASE_URL)
    log.info("demo data: made or topped up in the background (/dashboard/demo fills in)")
    try:
        added = seed_demo(engine)[1] if _demo_is_stale(engine) else 0
        checks = seed_demo_monitors(engine, base_url)
    except Exception as exc:  # the demo is a nicety: never a reason to stop the server
        log.warning("the demo data could not be made (%s); /dashboard/demo may be empty", exc)
        return
    log.info("demo data ready: %s requests and %s checks added", f"{added:,}", f"{checks:,}")


def _demo_is_stale(engine) -> bool:
    """No demo yet, or its newest request over an hour old. A restart minutes after the
    last one has nothing worth adding, and a top-up that generates no row at all fails
    (server.demo.seed writes every chunk, even an empty one)."""
    from datetime import timedelta

    from server.db import utcnow
    from server.demo.seed import demo_key, latest_row

    with engine.connect() as conn:
        key_id = demo_key(conn)
        latest = latest_row(conn, key_id) if key_id is not None else None
    return latest is None or utcnow() - latest > timedelta(hours=1)


def supervise(parts: list[Part], background=None) -> int:
    """Start the parts (then run `background` on a thread) and watch them until told to
    stop or until one of them dies."""
    stopping = False

    def on_signal(signum, _frame):
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    for part in parts:
        # Children ignore the terminal's Ctrl-C (a group of their own); we stop them
        # ourselves, in order, and the kernel stops them if we are killed.
        part.process = subprocess.Popen(
            part.argv, start_new_session=True, preexec_fn=die_with_parent
        )
    for part in parts:
        if part.ready_url and not answers(part, lambda: stopping):
            continue  # it died (said below) or we are stopping
        log.info("started %s (pid %s): %s", part.name, part.process.pid, part.where)
    if not stopping and all(p.process.poll() is None for p in parts):
        log.info("press Ctrl-C to stop everything")
    if background is not None:
        threading.Thread(target=background, name="demo", daemon=True).start()
    exit_code = 0
    while not stopping:
        for part in parts:
            if part.process.poll() is not None:
                log.error(
                    "%s exited with code %s; stopping the rest", part.name, part.process.returncode
                )
                exit_code = 1
                stopping = True
                break
        time.sleep(0.5)
    log.info("stopping ...")
    stop(parts)
    return exit_code


def answers(part: Part, stopping, timeout: float = 600) -> bool:
    """Wait until the part's ready_url answers at all (any HTTP status); False if the part
    exits or we are told to stop first."""
    import urllib.error
    import urllib.request

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not stopping():
        if part.process.poll() is not None:
            return False
        try:
            with urllib.request.urlopen(part.ready_url, timeout=2):  # noqa: S310 (our own URL)
                return True
        except urllib.error.HTTPError:
            return True  # it answers, if not with 200 (a 503 names what is down)
        except OSError:
            time.sleep(0.2)
    return False


if __name__ == "__main__":
    sys.exit(main())
