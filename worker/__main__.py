"""Worker entry: `python -m worker` runs an RQ worker; `python -m worker scheduler` the schedule."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import time

import server.jobs  # noqa: F401  (declares every job to the queue)
from server import configure_logging
from server.config import Config, use_config
from server.db import get_engine, init_engine
from server.ingest import geo
from server.ingest.sweep import sweep
from server.lake import agents
from server.queue import ALL_QUEUES, init_queue
from server.runtime.children import forked_children_die_with_this_process

log = logging.getLogger("worker")


def run_worker(config: Config, *, burst: bool = False) -> None:
    """Process jobs until stopped; survives Redis restarts and re-sweeps after them."""
    from redis.exceptions import ConnectionError as RedisConnectionError
    from redis.exceptions import TimeoutError as RedisTimeoutError
    from rq import Queue

    from worker.rq_worker import Worker

    queue = init_queue(config.REDIS_URL)
    while True:
        try:
            sweep(min_age_seconds=0)
            queues = [Queue(name, connection=queue.redis) for name in ALL_QUEUES]
            # A SimpleWorker runs jobs in this process, so the user-agent cache,
            # the GeoIP reader and the connection pool live across jobs.
            # with_scheduler forks RQ's scheduler (it moves the periodic runs from
            # `python -m worker scheduler` onto the queues). Close pooled database
            # connections first: a forked child holding one would keep a killed
            # worker's batch transaction, and its row lock, alive.
            get_engine().dispose()
            worker = Worker(queues, connection=queue.redis)
            worker.work(burst=burst, with_scheduler=True, logging_level=config.LOG_LEVEL)
            if burst or worker._shutdown_requested_date is not None:  # SIGTERM or Ctrl-C
                return
            # RQ gave up (e.g. Redis vanished mid-job): start again rather than exit.
            # Its signal handlers now point at the dead worker; until the next one
            # installs its own, SIGTERM/Ctrl-C must simply end the process.
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            signal.signal(signal.SIGINT, signal.default_int_handler)
            log.warning("the RQ worker stopped on its own; restarting it in 2 s")
        except (RedisConnectionError, RedisTimeoutError) as exc:
            log.warning("lost Redis (%s); retrying in 2 s", exc)
        time.sleep(2)


def run_scheduler_role(config: Config) -> int:
    """`python -m worker scheduler`: keep the periodic jobs scheduled until SIGTERM or Ctrl-C."""
    import signal
    import threading

    from worker.scheduler import run_scheduler

    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    run_scheduler(config, stop)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m worker", description=__doc__)
    parser.add_argument("role", nargs="?", default="worker", choices=["worker", "scheduler"])
    parser.add_argument("--burst", action="store_true", help="exit when the queues are empty")
    args = parser.parse_args(argv)

    config = use_config(Config.from_env())
    configure_logging(config.LOG_LEVEL)
    if not config.REDIS_URL:
        log.error("REDIS_URL is not set: without Redis, jobs run inside the web process")
        return 2
    if args.role == "scheduler":
        return run_scheduler_role(config)
    init_engine(config.DATABASE_URL)
    geo.init_geo(config.GEOIP_DB)
    agents.warm()
    # RQ forks its scheduler from this process: a scheduler outliving a killed worker
    # kept the scheduler lock, and the next worker then ran none.
    forked_children_die_with_this_process()
    log.info("worker listening on queues %s", ", ".join(ALL_QUEUES))
    run_worker(config, burst=args.burst)
    return 0


if __name__ == "__main__":
    sys.exit(main())
