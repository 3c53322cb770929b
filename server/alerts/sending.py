"""Sending notifications: every due delivery, one attempt each, recorded.

At least once, and at most once per delivery row unless a sender dies between the send
and the mark (then the receiver sees the same X-Delivery-Id again). A sender takes a
delivery for one attempt (a lease), so two senders never send it at once.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError

from server.alerts import notify
from server.config import current_config
from server.db import as_utc, get_engine, utcnow
from server.models import (
    alert_attempts,
    alert_channels,
    alert_deliveries,
    alert_incidents,
    alert_rules,
)

log = logging.getLogger(__name__)

# A sender that took a delivery has this long before another may take it again.
SEND_LEASE = timedelta(minutes=2)
SEND_LIMIT = 30
# Failed deliveries are tried again after these pauses, then recorded as failed.
RETRY_DELAYS = (timedelta(minutes=1), timedelta(minutes=5), timedelta(minutes=15))


def message(delivery, channel, incident, rule) -> dict:
    """What every channel says about one delivery: JSON for webhooks, text for the rest."""
    if delivery.event == "test":
        text_ = f"Test notification from API Analytics for channel '{channel.name}'."
        return {
            "event": "test",
            "delivery_id": delivery.id,
            "channel": channel.name,
            "text": text_,
            "subject": "[API Analytics] test notification",
        }
    started = as_utc(incident.started_at)
    if delivery.event == "open":
        text_ = f"FIRING: {rule.name}: {incident.summary} (since {started:%Y-%m-%d %H:%M} UTC)"
    else:
        resolved = as_utc(incident.resolved_at)
        text_ = (
            f"RESOLVED: {rule.name}: back to normal at {resolved:%Y-%m-%d %H:%M} UTC "
            f"(fired at {started:%Y-%m-%d %H:%M} UTC: {incident.summary})"
        )
    return {
        "event": delivery.event,
        "delivery_id": delivery.id,
        "rule": {"id": rule.id, "name": rule.name, "kind": rule.kind},
        "incident": {
            "id": incident.id,
            "started_at": started.isoformat(),
            "resolved_at": as_utc(incident.resolved_at).isoformat()
            if incident.resolved_at
            else None,
            "value": incident.value,
            "resolved_value": incident.resolved_value,
            "summary": incident.summary,
        },
        "text": text_,
        "subject": f"[API Analytics] {text_.split(':', 1)[0]}: {rule.name}",
    }


def send_due(now: datetime | None = None) -> int:
    """The periodic job (and the one each incident asks for): send every due delivery."""
    now = now or utcnow()
    with get_engine().connect() as conn:
        due = list(
            conn.execute(
                select(alert_deliveries.c.id)
                .where(
                    alert_deliveries.c.status == "pending",
                    alert_deliveries.c.next_attempt_at <= now,
                )
                .order_by(alert_deliveries.c.id)
                .limit(SEND_LIMIT)
            ).scalars()
        )
    return sum(1 for delivery_id in due if send_delivery(delivery_id, now))


def _claim(delivery_id: int, now: datetime) -> bool:
    """Take the delivery for one attempt (a lease), unless another sender has it."""
    with get_engine().begin() as conn:
        return (
            conn.execute(
                update(alert_deliveries)
                .where(
                    alert_deliveries.c.id == delivery_id,
                    alert_deliveries.c.status == "pending",
                    alert_deliveries.c.next_attempt_at <= now,
                )
                .values(next_attempt_at=now + SEND_LEASE)
            ).rowcount
            == 1
        )


def send_delivery(delivery_id: int, now: datetime | None = None) -> bool:
    """One attempt at one delivery; True when it was sent. Records the attempt either way."""
    now = now or utcnow()
    if not _claim(delivery_id, now):
        return False
    config = current_config()
    with get_engine().connect() as conn:
        delivery = conn.execute(
            select(alert_deliveries).where(alert_deliveries.c.id == delivery_id)
        ).first()
        if delivery is None:  # its channel, rule or key was deleted meanwhile
            return False
        channel = conn.execute(
            select(alert_channels).where(alert_channels.c.id == delivery.channel_id)
        ).first()
        incident = rule = None
        if delivery.incident_id is not None:
            incident = conn.execute(
                select(alert_incidents).where(alert_incidents.c.id == delivery.incident_id)
            ).first()
            rule = conn.execute(
                select(alert_rules).where(alert_rules.c.id == incident.rule_id)
            ).first()
    secret = (
        notify.channel_secret(config.SECRET_KEY, channel.secret_salt)
        if channel.secret_salt
        else None
    )
    error = None
    try:
        notify.send(
            channel, message(delivery, channel, incident, rule), secret=secret, config=config
        )
    except notify.DeliveryFailed as exc:
        error = str(exc)
    except Exception as exc:  # a bug or an odd failure: recorded and retried like the rest
        error = f"{type(exc).__name__}"
        log.exception("alert delivery id=%s failed unexpectedly", delivery_id)
    _record(delivery, now, error)
    return error is None


def _record(delivery, now: datetime, error: str | None) -> None:
    attempts = delivery.attempts + 1
    if error is None:
        values = {"status": "sent", "sent_at": now, "last_error": None}
    elif attempts > len(RETRY_DELAYS):
        values = {"status": "failed", "last_error": error}
    else:
        values = {"next_attempt_at": now + RETRY_DELAYS[attempts - 1], "last_error": error}
    try:
        with get_engine().begin() as conn:
            conn.execute(
                update(alert_deliveries)
                .where(alert_deliveries.c.id == delivery.id)
                .values(attempts=attempts, **values)
            )
            conn.execute(
                alert_attempts.insert().values(
                    delivery_id=delivery.id, attempted_at=now, ok=error is None, error=error
                )
            )
    except IntegrityError:
        log.info("alert delivery id=%s was deleted while it was sent", delivery.id)
        return
    if error is None:
        log.info("alert delivery id=%s (%s) sent", delivery.id, delivery.event)
    else:
        log.warning(
            "alert delivery id=%s (%s) attempt %s failed: %s",
            delivery.id,
            delivery.event,
            attempts,
            error,
        )
