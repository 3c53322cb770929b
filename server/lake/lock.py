"""Single flight: at most one run of a job at a time, across processes and machines.

On PostgreSQL a session advisory lock (every process of every machine shares the
database); on SQLite, where one machine runs everything, a thread lock and a file lock
under DATA_DIR (a CLI command such as seed-demo or retention may run beside the server).
The export, the compaction, the alert evaluation and the embedded scheduler all take
theirs here.
"""

from __future__ import annotations

import contextlib
import fcntl
import threading
from collections.abc import Iterator
from pathlib import Path

from server.db import is_postgres

# name -> (PostgreSQL advisory lock id, lock file under DATA_DIR). The ids are the ones
# earlier releases took, so old and new processes exclude each other during an upgrade.
LOCKS = {
    "lake-export": (72_045_813, "lake.lock"),
    "lake-compaction": (72_045_814, "lake-compact.lock"),
    "alert-evaluation": (0x616C65727473, "alerts.lock"),  # "alerts" in ASCII
}
_threads = {name: threading.Lock() for name in LOCKS}


@contextlib.contextmanager
def single_flight(name: str, db, settings, *, wait: bool = False) -> Iterator[bool]:
    """Yields True when this process holds the lock `name` (LOCKS), else False (another
    run holds it; with `wait`, waits for it instead). Whoever takes several takes them in
    the order of LOCKS."""
    lock_id, file_name = LOCKS[name]
    if is_postgres(db):
        with db.connect() as conn:
            take = "pg_advisory_lock" if wait else "pg_try_advisory_lock"
            got = conn.exec_driver_sql(f"SELECT {take}({lock_id})").scalar()
            conn.commit()
            try:
                yield got is not False
            finally:
                if got is not False:
                    conn.exec_driver_sql(f"SELECT pg_advisory_unlock({lock_id})")
                    conn.commit()
        return
    local = _threads[name]
    if not local.acquire(blocking=wait):
        yield False
        return
    try:
        with file_lock(Path(settings.DATA_DIR) / file_name, wait=wait) as held:
            yield held
    finally:
        local.release()


@contextlib.contextmanager
def file_lock(path: Path, *, wait: bool = False) -> Iterator[bool]:
    """An exclusive lock on `path` (made if missing) for this process: True when held."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
