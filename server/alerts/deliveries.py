"""Incidents and their deliveries: one notification to one channel per event, created in
the transaction that made the event (an incident opened or resolved, a test), then sent
by server.alerts.sending, each attempt recorded."""

from __future__ import annotations

from sqlalchemy import desc, insert, select

from server import queue
from server.alerts.rules import get_channel
from server.alerts.sending import send_due
from server.db import as_utc, get_engine, utcnow
from server.models import alert_attempts, alert_deliveries, alert_incidents, alert_rules


def add_deliveries(
    conn, key_id: int, incident_id: int | None, channel_ids, event: str
) -> list[int]:
    """Delivery rows, pending and due now (inside the transaction that made the event)."""
    now = utcnow()
    ids = []
    for channel_id in channel_ids:
        ids.append(
            conn.execute(
                insert(alert_deliveries)
                .values(
                    key_id=key_id,
                    incident_id=incident_id,
                    channel_id=channel_id,
                    event=event,
                    status="pending",
                    attempts=0,
                    next_attempt_at=now,
                    created_at=now,
                )
                .returning(alert_deliveries.c.id)
            ).scalar_one()
        )
    return ids


def recent_incidents(conn, key_id: int, limit: int = 50) -> list[dict]:
    """The key's incidents, newest first, each with its deliveries and their attempts."""
    rows = conn.execute(
        select(alert_incidents, alert_rules.c.name.label("rule_name"))
        .join(alert_rules, alert_rules.c.id == alert_incidents.c.rule_id)
        .where(alert_incidents.c.key_id == key_id)
        .order_by(desc(alert_incidents.c.started_at), desc(alert_incidents.c.id))
        .limit(limit)
    ).all()
    incidents = []
    for row in rows:
        incident = dict(row._mapping)
        incident["started_at"] = as_utc(incident["started_at"])
        incident["resolved_at"] = as_utc(incident["resolved_at"])
        incident["deliveries"] = deliveries_of(conn, alert_deliveries.c.incident_id == row.id)
        incidents.append(incident)
    return incidents


def deliveries_of(conn, condition) -> list[dict]:
    rows = conn.execute(
        select(alert_deliveries).where(condition).order_by(alert_deliveries.c.id)
    ).all()
    out = []
    for row in rows:
        delivery = dict(row._mapping)
        for name in ("next_attempt_at", "created_at", "sent_at"):
            delivery[name] = as_utc(delivery[name])
        delivery["attempt_log"] = [
            {"at": as_utc(a.attempted_at), "ok": a.ok, "error": a.error}
            for a in conn.execute(
                select(alert_attempts)
                .where(alert_attempts.c.delivery_id == row.id)
                .order_by(alert_attempts.c.id)
            )
        ]
        out.append(delivery)
    return out


def test_deliveries(conn, channel_id: int) -> list[dict]:
    return deliveries_of(
        conn,
        (alert_deliveries.c.channel_id == channel_id) & (alert_deliveries.c.event == "test"),
    )


def send_test(key_id: int, channel_id: int) -> int | None:
    """Queue a test notification on the key's channel; its delivery id (None: no channel)."""
    with get_engine().begin() as conn:
        if get_channel(conn, key_id, channel_id) is None:
            return None
        (delivery_id,) = add_deliveries(conn, key_id, None, [channel_id], "test")
    queue.ask(send_due)
    return delivery_id


def delivery(conn, delivery_id: int) -> dict:
    return deliveries_of(conn, alert_deliveries.c.id == delivery_id)[0]
