"""Counting each answered batch (server.api.ingest calls `note`): one short transaction of
upserts per batch, plus the refused rows, masked, of which a key keeps the newest RECENT.

A failure here is logged and forgotten: the batch was answered already, and health
figures are never worth refusing data for.
"""

from __future__ import annotations

import json
import logging
from datetime import datetime

from sqlalchemy import delete, insert, select

from server.db import dialect_insert, get_engine, utcnow
from server.ingest.masking import MASKED, key_masks_of, mask_body, mask_headers, mask_query
from server.ingest_health.models import (
    ingest_clients,
    ingest_days,
    ingest_reasons,
    ingest_refusals,
)

log = logging.getLogger(__name__)

RECENT = 100
ROW_CHARS = 4000
VALUE_CHARS = 200
DAY_SECONDS = 86_400


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
    masked, the IP address dropped at privacy level 2, long values cut."""
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
        if isinstance(captured, dict) and isinstance(captured.get("headers"), list):
            pairs = [h for h in captured["headers"] if isinstance(h, list) and len(h) == 2]
            captured["headers"] = mask_headers(pairs, masks)
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


def note(key_id: int, payload: dict, answer: dict, user_agent: str | None) -> None:
    """Count one answered batch of `key_id`: its rows accepted and refused (`answer`, the
    ingest answer), its client (framework and User-Agent) and its refused rows."""
    try:
        _note(key_id, payload, answer, user_agent, utcnow())
    except Exception:
        log.exception("ingest health of key id=%s not recorded", key_id)


def _note(key_id: int, payload: dict, answer: dict, user_agent: str | None, now: datetime):
    refused = answer.get("rejected") or []
    accepted = int(answer.get("accepted") or 0)
    framework = payload.get("framework")
    framework = framework[:64] if isinstance(framework, str) else ""
    client = (user_agent or "")[:200]
    day = day_of(now)
    counted: dict[str, int] = {}
    for r in refused:
        for reason in reasons_of(str(r.get("error", ""))):
            counted[reason] = counted.get(reason, 0) + 1
    with get_engine().begin() as conn:
        _add(conn, ingest_days, ["key_id", "day"],
             {"key_id": key_id, "day": day, "batches": 1, "batches_refused": int(not accepted),
              "accepted": accepted, "refused": len(refused)})  # fmt: skip
        for reason, rows in counted.items():
            _add(conn, ingest_reasons, ["key_id", "day", "reason"],
                 {"key_id": key_id, "day": day, "reason": reason, "rows": rows})  # fmt: skip
        _client(conn, key_id, framework, client, accepted, len(refused), now)
        if refused:
            _refusals(conn, key_id, payload, refused, framework, now)


def _add(conn, table, keys: list[str], values: dict) -> None:
    """Insert the row, or add its counts to the one there."""
    stmt = dialect_insert(conn, table).values(**values)
    counts = {c: table.c[c] + stmt.excluded[c] for c in values if c not in keys}
    conn.execute(stmt.on_conflict_do_update(index_elements=keys, set_=counts))


def _client(conn, key_id, framework, client, accepted, refused, now) -> None:
    t = ingest_clients
    stmt = dialect_insert(conn, t).values(
        key_id=key_id, framework=framework, client=client, first_at=now, last_at=now,
        batches=1, last_accepted=accepted, last_refused=refused,
    )  # fmt: skip
    conn.execute(
        stmt.on_conflict_do_update(
            index_elements=["key_id", "framework", "client"],
            set_={
                "last_at": stmt.excluded.last_at,
                "batches": t.c.batches + 1,
                "last_accepted": stmt.excluded.last_accepted,
                "last_refused": stmt.excluded.last_refused,
            },  # fmt: skip
        )
    )


def _refusals(conn, key_id, payload, refused, framework, now) -> None:
    rows = payload.get("requests") or []
    masks = key_masks_of(conn, key_id)
    level = payload.get("privacy_level", 0)
    newest = refused[-RECENT:]
    conn.execute(
        insert(ingest_refusals),
        [
            {
                "key_id": key_id,
                "at": now,
                "framework": framework or None,
                "batch_index": int(r["index"]),
                "reason": str(r.get("error", ""))[:1000],
                "row": masked_row(
                    rows[r["index"]] if 0 <= r["index"] < len(rows) else None, masks, level
                ),
            }  # fmt: skip
            for r in newest
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
