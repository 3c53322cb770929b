"""A key's ingest health read back: its last batch and clients, rows accepted and refused
per day with the reasons counted, the newest refused rows, the clients' clock skew and
what they reported dropped, and, for a key that never sent anything, what to check."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from server.db import as_utc, get_engine
from server.ingest_health.models import (
    ingest_clients,
    ingest_days,
    ingest_reasons,
    ingest_refusals,
)
from server.ingest_health.record import RECENT, day_of, flush
from server.ingest_health.reports import (
    client_name,
    drop_warning,
    drops_of,
    skew_of,
    skew_warning,
)

DAYS = 14
# The framework of OpenTelemetry exports' batches (server.ingest.otlp.FRAMEWORK, a sibling
# this layer does not import; tests/server/api/test_otlp.py holds the two equal).
OPENTELEMETRY = "OpenTelemetry"

CHECKS = [
    "The middleware is added to the app, and the app was restarted since.",
    "The API key in the middleware's config is this key, not revoked (GET /api/keys/current "
    "with it answers 200).",
    "The server URL in the middleware's config reaches this server from where the app runs "
    "(its /api/health answers 200 there).",
    "The app has served at least one request since: the middleware sends a batch a few "
    "seconds after the first one (its flush interval), not before.",
    "Nothing between the app and this server (a proxy, a firewall, an egress rule) blocks "
    "POST /api/log-request; the middleware logs a warning when a send fails.",
]


def _day(number: int) -> str:
    return (datetime(1970, 1, 1, tzinfo=UTC) + timedelta(days=number)).date().isoformat()


def health(key_id: int, now: datetime) -> dict:
    """The key's ingest health at `now` (this process's counts flushed first; other
    processes' within about a second)."""
    flush()
    today = day_of(now)
    first = today - DAYS + 1
    with get_engine().connect() as conn:
        d, r, c, f = ingest_days.c, ingest_reasons.c, ingest_clients.c, ingest_refusals.c
        days = {
            row.day: row
            for row in conn.execute(select(ingest_days).where(d.key_id == key_id, d.day >= first))
        }
        reasons: dict[int, dict[str, int]] = {}
        for row in conn.execute(
            select(r.day, r.reason, r.rows).where(r.key_id == key_id, r.day >= first)
        ):
            reasons.setdefault(row.day, {})[row.reason] = int(row.rows)
        clients = conn.execute(
            select(ingest_clients).where(c.key_id == key_id).order_by(c.last_at.desc())
        ).all()
        refused = conn.execute(
            select(f.at, f.framework, f.batch_index, f.reason, f.row)
            .where(f.key_id == key_id)
            .order_by(f.id.desc())
            .limit(RECENT)
        ).all()
        drops = drops_of(conn, key_id)
    shown_days = []
    for number in range(first, today + 1):
        row = days.get(number)
        shown_days.append({
            "day": _day(number),
            "batches": int(row.batches) if row else 0,
            "batches_refused": int(row.batches_refused) if row else 0,
            "accepted": int(row.accepted) if row else 0,
            "refused": int(row.refused) if row else 0,
            "reasons": dict(sorted(reasons.get(number, {}).items(), key=lambda kv: -kv[1])),
        })  # fmt: skip
    client_list = [
        {
            "framework": row.framework or None,
            "client": row.client or None,
            "first_at": as_utc(row.first_at),
            "last_at": as_utc(row.last_at),
            "batches": int(row.batches),
            "last_accepted": int(row.last_accepted),
            "last_refused": int(row.last_refused),
            "skew": skew_of(row.skews),
        }  # fmt: skip
        for row in clients
    ]
    warnings = [
        w for c in client_list
        if (w := skew_warning(client_name(c["framework"], c["client"]), c["skew"]))
    ] + [w for d in drops if (w := drop_warning(d))]  # fmt: skip
    last = client_list[0] if client_list else None
    return {
        "last_batch": None
        if last is None
        else {
            "at": last["last_at"],
            "framework": last["framework"],
            "client": last["client"],
            "accepted": last["last_accepted"],
            "refused": last["last_refused"],
        },  # fmt: skip
        "clients": client_list,
        "days": shown_days,
        "refused_rows": [
            {
                "at": as_utc(row.at),
                "framework": row.framework,
                "index": int(row.batch_index),
                "reason": row.reason,
                "row": json.loads(row.row),
            }  # fmt: skip
            for row in refused
        ],
        "client_drops": drops,
        "warnings": warnings,
        "checks": CHECKS if last is None else [],
    }


def has_spans(key_id: int) -> bool:
    """Whether any OpenTelemetry export has arrived for the key (the overview asks before
    it scans for the services and releases its spans named). This process's pending counts
    are written first, so an export it just stored is seen."""
    flush()
    c = ingest_clients.c
    query = select(c.key_id).where(c.key_id == key_id, c.framework == OPENTELEMETRY).limit(1)
    with get_engine().connect() as conn:
        return conn.execute(query).first() is not None
