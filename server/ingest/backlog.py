"""The backlog: staged batches an operator may need to see, waiting, retrying or given up on,
and the backpressure ingest applies when accepted rows pile up faster than they are written.

Shared by the staging job (which records why a batch failed), `/api/health` (which
reports the batches given up on) and `flask --app wsgi batches` (list, show, retry,
discard).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, func, select, update

from server.db import as_utc, relax_commit, utcnow
from server.ingest.fields import decode_rows
from server.models import ingest_batches

log = logging.getLogger(__name__)

# Tries a batch gets (the first, then one a sweep, about a minute apart) before it is
# left for an operator; /api/health reports it from then on.
MAX_ATTEMPTS = 10
ERROR_LENGTH = 4000

WAITING, RETRYING, FAILED = "waiting", "retrying", "failed"


@dataclass(frozen=True)
class BatchInfo:
    id: int
    key_id: int
    created_at: datetime
    row_count: int
    attempts: int
    last_error: str | None
    last_error_at: datetime | None

    @property
    def state(self) -> str:
        if self.attempts >= MAX_ATTEMPTS:
            return FAILED
        return RETRYING if self.last_error else WAITING


INFO_COLUMNS = (
    ingest_batches.c.id,
    ingest_batches.c.key_id,
    ingest_batches.c.created_at,
    ingest_batches.c.row_count,
    ingest_batches.c.attempts,
    ingest_batches.c.last_error,
    ingest_batches.c.last_error_at,
)


def _info(row) -> BatchInfo:
    return BatchInfo(
        id=row.id,
        key_id=row.key_id,
        created_at=as_utc(row.created_at),
        row_count=row.row_count,
        attempts=row.attempts,
        last_error=row.last_error,
        last_error_at=as_utc(row.last_error_at),
    )


def describe_error(exc: BaseException) -> str:
    """The error as an operator needs it: the database's own message, not SQLAlchemy's
    wrapper (which repeats the statement and every parameter of the batch)."""
    cause = getattr(exc, "orig", None) or exc
    text = f"{type(cause).__name__}: {cause}".strip()
    return text[:ERROR_LENGTH]


def record_error(engine, batch_id: int, exc: BaseException) -> None:
    """Keep why the batch failed on its staged row; logged loudly once it is given up on."""
    message = describe_error(exc)
    try:
        with engine.begin() as conn:
            relax_commit(conn)
            attempts = conn.execute(
                update(ingest_batches)
                .where(ingest_batches.c.id == batch_id)
                .values(last_error=message, last_error_at=utcnow())
                .returning(ingest_batches.c.attempts)
            ).scalar()
    except Exception as db_exc:  # the database is what failed: the log has to do
        log.error("batch %s failed (%s) and the error could not be recorded: %s",
                  batch_id, message, describe_error(db_exc))  # fmt: skip
        return
    if attempts is None:
        return  # gone meanwhile (its key deleted)
    if attempts >= MAX_ATTEMPTS:
        log.error(
            "batch %s could not be stored after %s attempts and is left for an operator "
            "(`flask --app wsgi batches show %s`): %s",
            batch_id, attempts, batch_id, message,
        )  # fmt: skip
    else:
        log.warning("batch %s failed (attempt %s of %s): %s", batch_id, attempts, MAX_ATTEMPTS,
                    message)  # fmt: skip


def count_failed(conn) -> int:
    """Batches given up on: they stay staged until retried or discarded."""
    return conn.execute(
        select(func.count())
        .select_from(ingest_batches)
        .where(ingest_batches.c.attempts >= MAX_ATTEMPTS)
    ).scalar_one()


def list_batches(conn, *, only_failed: bool = False, limit: int = 50) -> list[BatchInfo]:
    """Staged batches, those given up on and retrying first, then the oldest."""
    query = select(*INFO_COLUMNS)
    if only_failed:
        query = query.where(ingest_batches.c.attempts >= MAX_ATTEMPTS)
    query = query.order_by(ingest_batches.c.attempts.desc(), ingest_batches.c.id).limit(limit)
    return [_info(row) for row in conn.execute(query)]


def get_batch(conn, batch_id: int) -> BatchInfo | None:
    row = conn.execute(select(*INFO_COLUMNS).where(ingest_batches.c.id == batch_id)).first()
    return None if row is None else _info(row)


def failed_ids(conn) -> list[int]:
    query = select(ingest_batches.c.id).where(ingest_batches.c.attempts >= MAX_ATTEMPTS)
    return list(conn.execute(query.order_by(ingest_batches.c.id)).scalars())


def staged_rows(conn, batch_id: int) -> list | None:
    """The rows a batch holds, as staged (server.ingest.fields.ROW_FIELDS)."""
    payload = conn.execute(
        select(ingest_batches.c.payload).where(ingest_batches.c.id == batch_id)
    ).scalar()
    return None if payload is None else decode_rows(payload)


def reset_for_retry(conn, batch_id: int) -> bool:
    """Give a batch its tries back (the error stays until a try succeeds or fails anew)."""
    result = conn.execute(
        update(ingest_batches).where(ingest_batches.c.id == batch_id).values(attempts=0)
    )
    return result.rowcount == 1


def discard(conn, batch_id: int) -> int | None:
    """Delete a staged batch for good; returns its row count, None if there was none."""
    rows = conn.execute(
        delete(ingest_batches)
        .where(ingest_batches.c.id == batch_id)
        .returning(ingest_batches.c.row_count)
    ).scalar()
    if rows is not None:
        log.warning("batch %s (%s rows) discarded by an operator", batch_id, rows)
    return rows


def age_text(moment: datetime | None, now: datetime | None = None) -> str:
    """ "42s", "7min", "3h", "2d": how long ago."""
    if moment is None:
        return "-"
    seconds = max(0, int(((now or utcnow()) - moment).total_seconds()))
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


# --- backpressure ---------------------------------------------------------------------------
# Past what the machine can take, ingest says so (429 with Retry-After) instead of taking
# rows it cannot make visible in time: the lag then stops growing and the clients, which
# keep a refused batch and send it again, hold the rest. Checked at most once a second
# per process, from three small queries (the hot table's newest id, the boundary, the
# staged batches' sums), so the check costs a batch almost nothing.

RETRY_SECONDS = 5
CHECK_SECONDS = 1.0


@dataclass(frozen=True)
class Backlog:
    """Accepted rows not yet where a read finds them cheaply, and how late the oldest is."""

    unexported: int  # hot rows past the boundary (ids, read from the index: an upper bound)
    staged: int  # rows of staged batches a worker has still to write (not given up on)
    oldest_staged: datetime | None

    @property
    def rows(self) -> int:
        return self.unexported + self.staged

    def lag_seconds(self, now: datetime | None = None) -> float:
        """How long the oldest staged batch has waited: rows nobody can see yet."""
        if self.oldest_staged is None:
            return 0.0
        return max(0.0, ((now or utcnow()) - self.oldest_staged).total_seconds())


def measure(conn) -> Backlog:
    from server.lake import catalog
    from server.lake.models import requests

    newest = conn.execute(select(func.max(requests.c.id))).scalar()
    unexported = max(0, int(newest or 0) - catalog.exported_id(conn))
    staged, oldest = conn.execute(
        select(func.coalesce(func.sum(ingest_batches.c.row_count), 0),
               func.min(ingest_batches.c.created_at))
        .where(ingest_batches.c.attempts < MAX_ATTEMPTS)
    ).one()  # fmt: skip
    return Backlog(unexported, int(staged), as_utc(oldest))


def overload(backlog: Backlog, settings, now: datetime | None = None) -> str | None:
    """Why ingest should refuse for now (a sentence for the client), or None."""
    bound, lag_bound = settings.INGEST_BACKLOG_ROWS, settings.INGEST_LAG_SECONDS
    if bound and backlog.rows > bound:
        return (
            f"The server is behind: {backlog.rows:,} accepted rows wait to be written or "
            f"exported (INGEST_BACKLOG_ROWS is {bound:,}). Nothing of this batch was stored; "
            f"send it again in {RETRY_SECONDS} s."
        )
    lag = backlog.lag_seconds(now)
    if lag_bound and lag > lag_bound:
        return (
            f"The server is behind: accepted rows have waited {lag:.0f} s to be written "
            f"(INGEST_LAG_SECONDS is {lag_bound}). Nothing of this batch was stored; send it "
            f"again in {RETRY_SECONDS} s."
        )
    return None


_checked: dict = {"at": float("-inf"), "reason": None, "pid": None}
_check_lock = threading.Lock()


def refusal(engine, settings) -> str | None:
    """`overload` of the backlog now, measured at most every CHECK_SECONDS in this process
    (the other requests of that second get the same answer); None with both bounds off."""
    if not settings.INGEST_BACKLOG_ROWS and not settings.INGEST_LAG_SECONDS:
        return None
    with _check_lock:
        now = time.monotonic()
        if _checked["pid"] == os.getpid() and now - _checked["at"] < CHECK_SECONDS:
            return _checked["reason"]
        with engine.connect() as conn:
            reason = overload(measure(conn), settings)
        _checked.update(at=now, reason=reason, pid=os.getpid())
        if reason:
            log.warning("ingest refused for now: %s", reason)
        return reason


def forget_check() -> None:
    """Measure again at the next batch (tests switching settings)."""
    with _check_lock:
        _checked.update(at=float("-inf"), reason=None, pid=None)
