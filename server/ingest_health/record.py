"""Counting each answered batch (server.api.ingest calls `note`): in memory, a few dict
updates on the request path; written about once a second (`flush`, by a thread of the
process, and by every reader first), one transaction of upserts for all batches since,
with the refused rows, masked, of which a key keeps the newest RECENT.

Written per batch, the counts cost a transaction of their own on every ingest request (6
ms against 28 ms for the batch itself on PostgreSQL). A crash forgets the last second's
counts: these are diagnostics, not data. A failure here is logged and forgotten: the batch
was answered already, and health figures are never worth refusing data for.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import case, delete, insert, select

from server.db import dialect_insert, get_engine, relax_commit, utcnow
from server.ingest.masking import MASKED, key_masks_of, mask_body, mask_headers, mask_query
from server.ingest_health.models import (
    ingest_clients,
    ingest_days,
    ingest_reasons,
    ingest_refusals,
)
from server.ingest_health.reports import Report, write_drops, write_skews
from server.models import api_keys

log = logging.getLogger(__name__)

RECENT = 100
ROW_CHARS = 4000
VALUE_CHARS = 200
DAY_SECONDS = 86_400
FLUSH_SECONDS = 1.0


def day_of(moment: datetime) -> int:
    return int(moment.timestamp()) // DAY_SECONDS


def reasons_of(error: str) -> list[str]:
    """The fields a refusal names ("status: must be ...; path: required" -> status, path);
    a refusal of the whole row ("row must be a JSON object") -> row."""
    found = []
    for problem in error.split("; "):
        field, sep, _rest = problem.partition(":")
        name = field.strip() if sep and field.strip().isidentifier() else "row"
        if name not in found:
            found.append(name[:64])
    return found


def masked_row(row, masks, privacy_level: int) -> str:
    """A refused row as JSON for its owner to read: secret fields masked at any depth (the
    key's own masks too), the path's secret query values and captured secret headers
    masked, a captured body left out, the IP address dropped at privacy
    level 2, long values cut."""
    if not isinstance(row, dict):
        return json.dumps(_cut(row), default=str)[:ROW_CHARS]
    text = json.dumps(row, default=str, ensure_ascii=False)
    shown = json.loads(mask_body(text, "application/json", masks))
    path = shown.get("path")
    if isinstance(path, str) and "?" in path:
        base, _, query = path.partition("?")
        shown["path"] = f"{base}?{mask_query(query, masks)}"
    for part in ("request", "response"):
        captured = shown.get(part)
        if not isinstance(captured, dict):
            continue
        if isinstance(captured.get("headers"), list):
            pairs = [h for h in captured["headers"] if isinstance(h, list) and len(h) == 2]
            captured["headers"] = mask_headers(pairs, masks)
        if isinstance(captured.get("query"), str):
            captured["query"] = mask_query(captured["query"], masks)
        if "body" in captured:
            # Not kept, masked or not: a refused row's body may be anything (a secret as
            # plain text, a cut JSON no mask can read).
            captured["body"] = "[not kept]"
    if privacy_level >= 2 and shown.get("ip_address") is not None:
        shown["ip_address"] = MASKED
    return json.dumps(_cut(shown), ensure_ascii=False)[:ROW_CHARS]


def _cut(value):
    if isinstance(value, str):
        return value if len(value) <= VALUE_CHARS else value[:VALUE_CHARS] + "…"
    if isinstance(value, dict):
        return {str(k)[:VALUE_CHARS]: _cut(v) for k, v in list(value.items())[:50]}
    if isinstance(value, list):
        return [_cut(v) for v in value[:50]]
    return value


@dataclass
class Tally:
    """What one process counted since its last flush, for one database."""

    days: dict = field(default_factory=dict)  # (key, day) -> [batches, refused, rows ok, refused]
    reasons: dict = field(default_factory=dict)  # (key, day, reason) -> rows
    # (key, framework, client) -> [first_at, last_at, batches, last accepted, last refused]
    clients: dict = field(default_factory=dict)
    # key -> the newest refused rows: (at, framework, index, reason, row cut short, level)
    refusals: dict = field(default_factory=dict)
    skews: dict = field(default_factory=dict)  # (key, framework, client) -> [ms]
    # (key, instance) -> [framework, client, first, last, changed, buffer_full, refused, failed]
    drops: dict = field(default_factory=dict)


_lock = threading.Lock()
_pending: dict = {}  # engine -> Tally
# One flush at a time: a flush asked for by a reader (the health page) must not return
# while the flushing thread's write of what it took is still uncommitted.
_writing = threading.Lock()
_flusher: list[threading.Thread] = []


def note(
    key_id: int, payload: dict, answer: dict, user_agent: str | None, report: Report | None = None
) -> None:
    """Count one answered batch of `key_id`: its rows accepted and refused (`answer`, the
    ingest answer), its client (framework and User-Agent), its refused rows, and what the
    client reported of itself (`report`, server.ingest_health.reports)."""
    try:
        _note(key_id, payload, answer, user_agent, utcnow(), report)
        _start_flusher()
    except Exception:
        log.exception("ingest health of key id=%s not counted", key_id)


def _note(key_id, payload: dict, answer: dict, user_agent, now: datetime, report=None):
    refused = answer.get("rejected") or []
    accepted = int(answer.get("accepted") or 0)
    framework = payload.get("framework")
    framework = framework[:64] if isinstance(framework, str) else ""
    client = (user_agent or "")[:200]
    day = day_of(now)
    rows = payload.get("requests") or []
    level = payload.get("privacy_level", 0)
    kept = [
        (now, framework or None, int(r["index"]), str(r.get("error", ""))[:1000],
         _cut(rows[r["index"]]) if 0 <= r["index"] < len(rows) else None, level)
        for r in refused[-RECENT:]
    ]  # fmt: skip
    with _lock:
        tally = _pending.setdefault(get_engine(), Tally())
        counts = tally.days.setdefault((key_id, day), [0, 0, 0, 0])
        counts[0] += 1
        counts[1] += int(not accepted)
        counts[2] += accepted
        counts[3] += len(refused)
        for r in refused:
            for reason in reasons_of(str(r.get("error", ""))):
                at = (key_id, day, reason)
                tally.reasons[at] = tally.reasons.get(at, 0) + 1
        seen = tally.clients.setdefault((key_id, framework, client), [now, now, 0, 0, 0])
        seen[1:] = [now, seen[2] + 1, accepted, len(refused)]
        if kept:
            tally.refusals.setdefault(key_id, deque(maxlen=RECENT)).extend(kept)
        if report is not None:
            _note_report(tally, key_id, framework, client, report, now)


def _note_report(tally: Tally, key_id, framework, client, report: Report, now) -> None:
    if report.skew_ms is not None:
        tally.skews.setdefault((key_id, framework, client), []).append(report.skew_ms)
    if report.instance is not None:
        seen = tally.drops.get((key_id, report.instance))
        if seen is None:
            tally.drops[(key_id, report.instance)] = [framework, client, now, now, now,
                                                      *report.counts]  # fmt: skip
            return
        seen[3] = now
        if any(new > old for new, old in zip(report.counts, seen[5:], strict=True)):
            seen[4] = now
            seen[5:] = [max(a, b) for a, b in zip(report.counts, seen[5:], strict=True)]


def _start_flusher() -> None:
    """The process's flushing thread, started with its first batch (after a fork)."""
    if _flusher and _flusher[0].is_alive():
        return
    with _lock:
        if _flusher and _flusher[0].is_alive():
            return
        thread = threading.Thread(target=_flush_forever, name="ingest-health", daemon=True)
        _flusher[:] = [thread]
        thread.start()


def _flush_forever() -> None:
    while True:
        time.sleep(FLUSH_SECONDS)
        flush()


def flush() -> None:
    """Write what this process counted since its last flush; on return, every count
    taken by an earlier flush of this process is written too."""
    with _writing:
        with _lock:
            taken = list(_pending.items())
            _pending.clear()
        for engine, tally in taken:
            try:
                _write(engine, tally)
            except Exception:
                log.exception("ingest health counts lost (%s keys)", len(tally.days))


def _write(engine, tally: Tally) -> None:
    with engine.begin() as conn:
        relax_commit(conn)  # diagnostics: a crash may forget them, no batch waits for them
        # A key deleted since its batch came: its counts go with it.
        named = {key_id for key_id, _day in tally.days}
        alive = set(conn.execute(select(api_keys.c.id).where(api_keys.c.id.in_(named))).scalars())
        for (key_id, day), (batches, none_ok, accepted, refused) in tally.days.items():
            if key_id not in alive:
                continue
            _add(conn, ingest_days, ["key_id", "day"],
                 {"key_id": key_id, "day": day, "batches": batches, "batches_refused": none_ok,
                  "accepted": accepted, "refused": refused})  # fmt: skip
        for (key_id, day, reason), rows in tally.reasons.items():
            if key_id not in alive:
                continue
            _add(conn, ingest_reasons, ["key_id", "day", "reason"],
                 {"key_id": key_id, "day": day, "reason": reason, "rows": rows})  # fmt: skip
        for (key_id, framework, client), seen in tally.clients.items():
            if key_id not in alive:
                continue
            _client(conn, key_id, framework, client, *seen)
        for key_id, kept in tally.refusals.items():
            if key_id not in alive:
                continue
            _refusals(conn, key_id, list(kept))
        write_skews(conn, {k: v for k, v in tally.skews.items() if k[0] in alive})
        write_drops(conn, {k: v for k, v in tally.drops.items() if k[0] in alive})


def _add(conn, table, keys: list[str], values: dict) -> None:
    """Insert the row, or add its counts to the one there."""
    stmt = dialect_insert(conn, table).values(**values)
    counts = {c: table.c[c] + stmt.excluded[c] for c in values if c not in keys}
    conn.execute(stmt.on_conflict_do_update(index_elements=keys, set_=counts))


def _client(conn, key_id, framework, client, first_at, last_at, batches, accepted, refused):
    t = ingest_clients
    stmt = dialect_insert(conn, t).values(
        key_id=key_id, framework=framework, client=client, first_at=first_at, last_at=last_at,
        batches=batches, last_accepted=accepted, last_refused=refused,
    )  # fmt: skip
    newer = stmt.excluded.last_at >= t.c.last_at  # two flushes may land out of order

    def latest(column):
        return case((newer, stmt.excluded[column]), else_=t.c[column])

    conn.execute(
        stmt.on_conflict_do_update(
            index_elements=["key_id", "framework", "client"],
            set_={
                "last_at": latest("last_at"),
                "batches": t.c.batches + stmt.excluded.batches,
                "last_accepted": latest("last_accepted"),
                "last_refused": latest("last_refused"),
            },  # fmt: skip
        )
    )


def _refusals(conn, key_id: int, kept: list) -> None:
    masks = key_masks_of(conn, key_id)
    conn.execute(
        insert(ingest_refusals),
        [
            {
                "key_id": key_id,
                "at": at,
                "framework": framework,
                "batch_index": index,
                "reason": reason,
                "row": masked_row(row, masks, level),
            }  # fmt: skip
            for at, framework, index, reason, row, level in kept
        ],
    )
    keep = (
        select(ingest_refusals.c.id)
        .where(ingest_refusals.c.key_id == key_id)
        .order_by(ingest_refusals.c.id.desc())
        .limit(RECENT)
    )
    conn.execute(
        delete(ingest_refusals).where(
            ingest_refusals.c.key_id == key_id,
            ingest_refusals.c.id.not_in(keep.scalar_subquery()),
        )
    )
