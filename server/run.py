"""`make run`: migrate, then run the web server (and, with Redis, the worker) in the foreground.

Ctrl-C (or SIGTERM) stops every process it started; if one of them dies, the
others are stopped too, so nothing is left running half-configured.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass

from server import configure_logging
from server.cli import upgrade_database
from server.config import Config
from server.demo import seed_on_start

log = logging.getLogger("run")


@dataclass
class Part:
    name: str
    argv: list[str]
    where: str
    process: subprocess.Popen | None = None


def plan(config: Config, host: str, port: int) -> list[Part]:
    """The processes this configuration needs."""
    python = sys.executable
    workers = os.environ.get("WEB_CONCURRENCY") or ("1" if config.embedded_queue else "3")
    web = [
        python, "-m", "gunicorn", "wsgi:app",
        "--bind", f"{host}:{port}",
        "--workers", workers,
        "--threads", os.environ.get("WEB_THREADS", "4"),
        "--access-logfile", "-",
        "--graceful-timeout", "10",
    ]  # fmt: skip
    parts = [
        Part("web", web, f"http://{host}:{port} (dashboard at /dashboard, API docs at /api/docs)")
    ]
    if not config.embedded_queue:
        parts.append(Part("worker", [python, "-m", "worker"], f"RQ worker on {_redis(config)}"))
        parts.append(
            Part("scheduler", [python, "-m", "worker", "scheduler"], "periodic jobs, on RQ")
        )
    return parts


def _redis(config: Config) -> str:
    return config.REDIS_URL.split("@")[-1]


def stop(parts: list[Part], timeout: float = 15) -> None:
    for part in parts:
        if part.process and part.process.poll() is None:
            part.process.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + timeout
    for part in parts:
        if part.process is None:
            continue
        try:
            part.process.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            log.warning("%s did not stop in time; killing it", part.name)
            part.process.kill()
            part.process.wait()
        log.info("stopped %s", part.name)


def main() -> int:
    config = Config.from_env()
    configure_logging(config.LOG_LEVEL)
    host = os.environ.get("HOST", "127.0.0.1")
    port = int(os.environ.get("PORT", "8000"))
    mode = "embedded (in-process jobs)" if config.embedded_queue else f"RQ on {_redis(config)}"
    from sqlalchemy.engine import make_url

    log.info("database: %s", make_url(config.DATABASE_URL).render_as_string(hide_password=True))
    log.info("jobs: %s", mode)
    log.info("migrating the database ...")
    upgrade_database(config.DATABASE_URL)
    seed_on_start(config.DATABASE_URL)

    parts = plan(config, host, port)
    stopping = False

    def on_signal(signum, _frame):
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    for part in parts:
        # Children ignore the terminal's Ctrl-C; we stop them ourselves, in order.
        part.process = subprocess.Popen(part.argv, start_new_session=True)
        log.info("started %s (pid %s): %s", part.name, part.process.pid, part.where)
    log.info("press Ctrl-C to stop everything")
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


if __name__ == "__main__":
    sys.exit(main())
