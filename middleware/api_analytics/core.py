"""The bounded buffer and the background thread that delivers it to the server.

The request path only appends a tuple to a deque. A daemon thread wakes every
`flush_interval` seconds, or as soon as `max_batch` records wait, encodes them in
batches, gzips them and posts them, retrying with backoff until the server takes them.

Over 400 lines on purpose: it is one class whose buffer, thread, backoff and shutdown
share their state under one lock; split, that state would have to cross modules.
"""

from __future__ import annotations

import atexit
import logging
import os
import random
import threading
import uuid
import weakref
import zlib
from collections import deque
from dataclasses import dataclass
from time import monotonic

from .deploys import Announcer
from .records import Record, RowFormatter, encode_batches, payload_frame
from .transport import Outcome, Transport

logger = logging.getLogger(__name__)

# Each POST stays far below the server's limits (10,000 rows, 10 MiB).
MAX_BATCH_LIMIT = 5000
MAX_BODY_BYTES = 2 * 1024 * 1024
GZIP_LEVEL = 1  # level 1 compresses request logs ~10x at a fraction of level 6's CPU
GZIP_MEMLEVEL = 4  # half zlib's default hash table: a smaller cache footprint, same ratio
LOG_EVERY = 60.0  # seconds between repeated warnings of the same kind
ENCODE_CHUNK = 1000  # records formatted and compressed in one stretch (see _encode)
EXTRAS_CHUNK = 50  # the same, of records with optional fields (a captured body or two)

_clients: weakref.WeakSet[Client] = weakref.WeakSet()


@dataclass
class Batch:
    """An encoded batch, kept with its records so a 413 can split it."""

    records: list[Record]
    body: bytes
    batch_id: str
    attempts: int = 0


class Client:
    """Buffers records for one API key and delivers them from a background thread."""

    def __init__(
        self,
        api_key: str,
        server_url: str,
        privacy_level: int,
        *,
        framework: str = "FastAPI",
        flush_interval: float = 5.0,
        max_batch: int = 1000,
        max_buffer: int = 100_000,
        shutdown_timeout: float = 5.0,
        request_timeout: float = 10.0,
        retry_backoff: float = 1.0,
        retry_backoff_max: float = 60.0,
    ) -> None:
        _check_number("flush_interval", flush_interval, minimum=0.001)
        _check_number("shutdown_timeout", shutdown_timeout, minimum=0.0)
        _check_number("request_timeout", request_timeout, minimum=0.001)
        _check_number("retry_backoff", retry_backoff, minimum=0.0)
        _check_number("retry_backoff_max", retry_backoff_max, minimum=0.0)
        _check_int("max_batch", max_batch, 1, MAX_BATCH_LIMIT)
        _check_int("max_buffer", max_buffer, 1, None)
        self._transport = Transport(server_url)
        self.flush_interval = float(flush_interval)
        self.shutdown_timeout = float(shutdown_timeout)
        self._request_timeout = float(request_timeout)
        self._backoff = float(retry_backoff)
        self._backoff_max = float(retry_backoff_max)
        self._max_batch = max_batch
        self._max_buffer = max_buffer
        self._buffer: deque[Record] = deque(maxlen=max_buffer)
        self._pending: deque[Batch] = deque()
        self._formatter = RowFormatter()
        self._frame = payload_frame(api_key, framework, privacy_level)
        self._deploys = Announcer(api_key, framework)
        self._thread: threading.Thread | None = None
        self._slow_at = 0  # see add()
        self._closed = False
        # Counters: `dropped` is bumped on the request path, the rest by the flusher.
        self.dropped = 0
        self.delivered = 0
        self.refused = 0
        # Sent to the server with each batch (X-Client-Drops), with `dropped`, per process.
        self.instance = uuid.uuid4().hex
        self.refused_records = 0  # records of batches the server refused outright
        self.failed_sends = 0  # sends that failed and were retried
        self._reported_drops = 0
        self._last_drop_log: float | None = None
        self._last_reject_log: float | None = None
        self._refusals_logged: dict[tuple[int | None, str], float] = {}
        self._outage = False
        self._init_sync()
        _clients.add(self)

    def _init_sync(self) -> None:
        """Fresh locks and events (also after a fork, where the old ones may be held)."""
        self._lock = threading.Lock()
        self._flushed = threading.Condition(self._lock)
        self._wake = threading.Event()
        self._urgent = threading.Event()
        self._flush_requested = 0
        self._flush_done = 0
        self._flush_deadline = 0.0

    # ----------------------------------------------------------------- request path

    def add(self, record: Record) -> None:
        """Buffer one record; called on the request path, so it only appends.
        (`api_analytics.fastapi` inlines this: keep the two alike.)

        One comparison guards everything else: `_slow_at` is 0 until the flusher runs,
        then the size at which a batch is full or the buffer overflows, so the slow path
        runs only to start the thread, to wake it for a full batch, or to count a drop.
        """
        buffer = self._buffer
        if len(buffer) >= self._slow_at:
            self._add_slowly(buffer)
        buffer.append(record)

    def _add_slowly(self, buffer: deque[Record]) -> None:
        if self._thread is None:
            self._start()
        size = len(buffer)
        if size >= self._max_buffer:
            self.dropped += 1  # the deque drops the oldest record itself on append
        if size + 1 >= self._max_batch and not self._wake.is_set():
            self._wake.set()

    # ----------------------------------------------------------------- lifecycle

    @property
    def unsent(self) -> int:
        """Records buffered or waiting in a batch that has not been delivered yet."""
        return len(self._buffer) + sum(len(batch.records) for batch in list(self._pending))

    def _start(self) -> None:
        with self._lock:
            if self._thread is not None:
                return
            self._closed = False
            thread = threading.Thread(target=self._run, name="api-analytics-flusher", daemon=True)
            try:
                thread.start()
            except RuntimeError:  # the interpreter is shutting down
                return
            self._thread = thread
            self._slow_at = min(self._max_batch - 1, self._max_buffer)

    def flush(self, timeout: float) -> bool:
        """Deliver everything buffered now, waiting at most `timeout` seconds.

        Returns True when all of it reached the server (or was refused by it).
        """
        if not self._buffer and not self._pending:
            return True
        deadline = monotonic() + timeout
        if self._thread is None:
            self._start()
        with self._lock:
            self._flush_requested += 1
            generation = self._flush_requested
            self._flush_deadline = deadline
            inline = self._thread is None
            if not inline:
                self._urgent.set()
                self._wake.set()
                done = self._flushed.wait_for(lambda: self._flush_done >= generation, timeout)
        if inline:
            # No thread can start while the interpreter exits: deliver from this one.
            self._flush_pass(give_up_at=deadline)
            done = self._flush_done >= generation
        if not done:
            logger.warning(
                "API Analytics: %d records not delivered within the %.1f s shutdown wait",
                self.unsent,
                timeout,
            )
        return done

    def close(self, timeout: float | None = None) -> bool:
        """Final flush; the thread then stops once idle (a later record restarts it)."""
        done = self.flush(self.shutdown_timeout if timeout is None else timeout)
        self._closed = True
        self._wake.set()
        return done

    def _reset_after_fork(self) -> None:
        """In a forked child: the parent delivers what was buffered, the child starts clean."""
        self._init_sync()
        self._transport.close()  # the parent's kept-alive connection: closes our copy only
        self._buffer.clear()
        self._pending.clear()
        self._thread = None
        self._slow_at = 0
        self.dropped = self._reported_drops = 0
        self.instance = uuid.uuid4().hex  # a process of its own to the server
        self.refused_records = self.failed_sends = 0

    def follow_version(self, config: object) -> None:
        """Report `config.app_version` as a deploy, at the first send and when it changes."""
        self._deploys.follow(config)

    # ----------------------------------------------------------------- flusher thread

    def _run(self) -> None:
        due = monotonic() + self.flush_interval
        while True:
            wait = due - monotonic()
            if wait > 0:
                self._wake.wait(wait)
            self._wake.clear()
            timer = monotonic() >= due
            if timer:
                due = monotonic() + self.flush_interval
            try:
                # Woken early by a full batch: send only full batches, and leave the
                # rest for the next one or for the timer (each POST has a fixed cost).
                self._flush_pass(full_only=not timer)
            except Exception as exc:  # the flusher must outlive any bug in a batch
                logger.error("API Analytics flusher error (%s); will retry", type(exc).__name__)
            if self._closed:
                with self._lock:
                    if self._closed and not self._buffer and not self._pending:
                        self._thread = None
                        self._slow_at = 0
                        self._transport.close()
                        return

    def _flush_pass(self, give_up_at: float | None = None, full_only: bool = False) -> None:
        """Send what is buffered now (`full_only`: as many full batches as that makes);
        on a flush request send everything.

        The thread never gives up on a batch; an inline flush stops at `give_up_at`.
        """
        generation = self._flush_requested
        final = generation > self._flush_done
        remaining = len(self._buffer)
        if full_only:
            remaining -= remaining % self._max_batch
        while True:
            if not self._deliver_pending(give_up_at):
                return
            take = len(self._buffer) if final else remaining
            if take <= 0:
                break
            records = self._take(min(take, self._max_batch))
            if not records:
                break
            remaining -= len(records)
            self._pending.extend(self._encode(records))
            # The hostnames the formatter has met (a few, cached), not every record's.
            self._deploys.see(self._formatter._hosts)
        self._report_drops()
        if final:
            with self._lock:
                self._flush_done = max(self._flush_done, generation)
                self._flushed.notify_all()

    def _take(self, count: int) -> list[Record]:
        popleft = self._buffer.popleft
        records = []
        try:
            for _ in range(count):
                records.append(popleft())
        except IndexError:
            pass
        return records

    def _encode(self, records: list[Record]) -> list[Batch]:
        """Format records as JSON and gzip them (`records.encode_batches`): one batch, or
        several when the body would grow beyond MAX_BODY_BYTES."""
        found = encode_batches(
            self._formatter, self._frame, records, MAX_BODY_BYTES, ENCODE_CHUNK, EXTRAS_CHUNK,
            (GZIP_LEVEL, zlib.DEFLATED, 31, GZIP_MEMLEVEL),  # gzip
        )  # fmt: skip
        return [Batch(part, body, uuid.uuid4().hex) for part, body in found]

    def _deliver_pending(self, give_up_at: float | None = None) -> bool:
        """Send pending batches in order, waiting out failures until each is settled.

        Returns False only when `give_up_at` passed with a batch still undelivered.
        """
        if self._pending:
            self._deploys.announce(self._transport, self._post_timeout())
        while self._pending:
            batch = self._pending[0]
            outcome = self._transport.post(
                batch.body, batch.batch_id, self._post_timeout(), self._drops_header()
            )
            if outcome.kind == "retry":
                batch.attempts += 1
                self._note_failure(batch, outcome)
                if give_up_at is not None and monotonic() >= give_up_at:
                    return False
                self._wait_before_retry(self._retry_delay(batch.attempts, outcome.retry_after))
                continue
            self._pending.popleft()
            if outcome.kind == "sent":
                self._note_delivered(batch, outcome)
            elif outcome.kind == "too_large" and len(batch.records) > 1:
                half = len(batch.records) // 2
                parts = self._encode(batch.records[:half]) + self._encode(batch.records[half:])
                self._pending.extendleft(reversed(parts))
            else:
                self._note_refused(batch, outcome)
        return True

    def _urgent_deadline(self) -> float | None:
        """The deadline of a shutdown flush someone is waiting for, if any."""
        if self._flush_requested > self._flush_done and monotonic() < self._flush_deadline:
            return self._flush_deadline
        return None

    def _post_timeout(self) -> float:
        deadline = self._urgent_deadline()
        if deadline is None:
            return self._request_timeout
        return max(0.1, min(self._request_timeout, deadline - monotonic()))

    def _retry_delay(self, attempts: int, retry_after: float | None) -> float:
        if retry_after is not None:
            # Never before the server's time, and spread over a quarter more: clients a
            # busy server refused in the same second do not all come back in one.
            return retry_after * random.uniform(1.0, 1.25)
        ceiling = min(self._backoff_max, self._backoff * 2 ** min(attempts - 1, 30))
        return ceiling * random.uniform(0.5, 1.0)

    def _wait_before_retry(self, delay: float) -> None:
        end = monotonic() + delay
        while True:
            self._report_drops()
            deadline = self._urgent_deadline()
            now = monotonic()
            until = end if deadline is None else min(end, deadline)
            if now >= until:
                return
            if self._urgent.wait(min(until - now, LOG_EVERY)):
                # A shutdown flush began: retry at once rather than sleep through it.
                self._urgent.clear()
                return

    # ----------------------------------------------------------------- reporting

    def _drops_header(self) -> str:
        """The process's drop counters as a header line, once one is above zero."""
        if not (self.dropped or self.refused_records or self.failed_sends):
            return ""
        return (
            f"X-Client-Drops: instance={self.instance}; buffer_full={self.dropped}; "
            f"refused={self.refused_records}; failed={self.failed_sends}\r\n"
        )

    def _note_failure(self, batch: Batch, outcome: Outcome) -> None:
        self.failed_sends += 1
        reason = f"HTTP {outcome.status}" if outcome.status else outcome.detail
        if not self._outage:
            self._outage = True
            logger.warning(
                "API Analytics server unavailable (%s); keeping records and retrying", reason
            )
        else:
            logger.debug("API Analytics retry %d failed (%s)", batch.attempts, reason)

    def _note_delivered(self, batch: Batch, outcome: Outcome) -> None:
        self.delivered += len(batch.records) - outcome.rejected
        if self._outage:
            self._outage = False
            logger.info("API Analytics server reachable again; delivering buffered records")
        if outcome.rejected:
            self.refused += outcome.rejected
            now = monotonic()
            if self._last_reject_log is None or now - self._last_reject_log >= LOG_EVERY:
                self._last_reject_log = now
                logger.warning(
                    "API Analytics server rejected %d of %d rows in a batch",
                    outcome.rejected,
                    len(batch.records),
                )

    def _note_refused(self, batch: Batch, outcome: Outcome) -> None:
        self.refused += len(batch.records)
        self.refused_records += len(batch.records)
        key = (outcome.status, outcome.detail)
        now = monotonic()
        last = self._refusals_logged.get(key)
        if last is None or now - last >= LOG_EVERY:
            self._refusals_logged[key] = now
            logger.error(
                "API Analytics server refused a batch of %d records (HTTP %s: %s); dropping it",
                len(batch.records),
                outcome.status,
                outcome.detail,
            )

    def _report_drops(self) -> None:
        dropped = self.dropped
        if dropped == self._reported_drops:
            return
        now = monotonic()
        if self._last_drop_log is not None and now - self._last_drop_log < LOG_EVERY:
            return
        logger.warning(
            "API Analytics buffer full (max_buffer=%d): dropped the %d oldest records (%d in all)",
            self._max_buffer,
            dropped - self._reported_drops,
            dropped,
        )
        self._reported_drops = dropped
        self._last_drop_log = now


def _check_number(name: str, value: object, minimum: float) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= minimum:
        raise ValueError(f"{name} must be a number >= {minimum}")


def _check_int(name: str, value: object, minimum: int, maximum: int | None) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}")
    if maximum is not None and value > maximum:
        raise ValueError(f"{name} must be at most {maximum}")


def _flush_all_at_exit() -> None:
    for client in list(_clients):
        if client.unsent:
            client.close()


def _reset_all_after_fork() -> None:
    for client in list(_clients):
        client._reset_after_fork()


atexit.register(_flush_all_at_exit)
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reset_all_after_fork)
