"""Alert evaluation (every minute) and the sending of its notifications.

`evaluate` measures each rule and opens or resolves its incident; the incident's state
change and its delivery rows (one per channel) commit in one transaction, so a worker
that dies at any point leaves either nothing or both. `send_due` then sends each due
delivery and marks it: at least once, and at most once per delivery row unless a
sender dies between the send and the mark (then the receiver sees the same
X-Delivery-Id again). An open incident sends nothing more until it resolves.

Single flight: on PostgreSQL an evaluation holds an advisory lock, so a second one
(another worker, an overlapping round) returns at once; on SQLite the in-process
scheduler runs one at a time. Either way the partial unique index on open incidents
keeps a rule to one open incident.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

from sqlalchemy import desc, select, text, update
from sqlalchemy.exc import IntegrityError

from server.alerts import (
    HISTORY_DAYS,
    RETRY_DELAYS,
    USUAL_DAYS,
    add_deliveries,
    channel_secret,
)
from server.config import current_config
from server.db import as_utc, get_engine, is_postgres, utcnow
from server.lake.source import open_rows
from server.models import (
    alert_attempts,
    alert_channels,
    alert_deliveries,
    alert_incidents,
    alert_rule_channels,
    alert_rules,
    pings,
)
from server.monitors_query import is_up
from server.queue import enqueue_alert_sending
from worker import notify

log = logging.getLogger(__name__)

# pg_advisory_lock's id for the evaluation ("alerts" in ASCII).
EVALUATION_LOCK = 0x616C65727473
# A sender that took a delivery has this long before another may take it again.
SEND_LEASE = timedelta(minutes=2)
SEND_LIMIT = 30
MINUTE_US = 60_000_000


def _us(moment: datetime) -> int:
    return int(moment.timestamp() * 1_000_000)


# --- measuring ---------------------------------------------------------------------------------


def _window(since_us: int, until_us: int) -> str:
    return (
        f"FROM {{rows}} WHERE epoch_us(created_at) >= {int(since_us)} "
        f"AND epoch_us(created_at) < {int(until_us)}"
    )


def measure(rule, now: datetime) -> tuple[bool | None, float | None, str]:
    """(firing?, value, summary) for a rule at `now`; firing None keeps the current state."""
    if rule.kind == "monitor_down":
        return _monitor_down(rule)
    window = rule.window_minutes * MINUTE_US
    until = _us(now)
    since = until - window
    settings = current_config()
    if rule.kind == "no_traffic":
        start = until - HISTORY_DAYS * 86_400_000_000 - window
        with open_rows(rule.key_id, start, until, settings) as rows:
            counts = ", ".join(
                f"count(*) FILTER (WHERE epoch_us(created_at) >= {since - d * 86_400_000_000} "
                f"AND epoch_us(created_at) < {until - d * 86_400_000_000})"
                for d in range(HISTORY_DAYS + 1)
            )
            found = rows.query(f"SELECT {counts} FROM {{rows}}").fetchone()
        now_count, usual = found[0], sum(1 for n in found[1:] if n)
        summary = (
            f"no requests in the last {rule.window_minutes} min; the same window had traffic "
            f"on {usual} of the previous {HISTORY_DAYS} days"
        )
        return now_count == 0 and usual >= USUAL_DAYS, float(now_count), summary
    with open_rows(rule.key_id, since, until, settings) as rows:
        where = _window(since, until)
        if rule.kind == "error_rate":
            floor = 400 if rule.include_4xx else 500
            total, errors = rows.query(
                f"SELECT count(*), count(*) FILTER (WHERE status >= {floor}) {where}"
            ).fetchone()
            rate = 100.0 * errors / total if total else 0.0
            label = "4xx+5xx" if rule.include_4xx else "5xx"
            summary = (
                f"error rate ({label}) {rate:.1f}% over the last {rule.window_minutes} min "
                f"({errors} of {total} requests); threshold {rule.threshold:g}%"
            )
            return total >= rule.min_requests and rate > rule.threshold, rate, summary
        params = []
        if rule.endpoint:
            where += " AND route = ?"
            params.append(rule.endpoint)
        total, p95 = rows.query(
            f"SELECT count(*), quantile_cont(response_time, 0.95) {where}", params
        ).fetchone()
        scope = f" on {rule.endpoint}" if rule.endpoint else ""
        shown = "–" if p95 is None else f"{p95:.0f} ms"
        summary = (
            f"p95 response time{scope} {shown} over the last {rule.window_minutes} min "
            f"({total} requests); threshold {rule.threshold:g} ms"
        )
        firing = total >= (rule.min_requests or 1) and p95 is not None and p95 > rule.threshold
        return firing, None if p95 is None else float(p95), summary


def _monitor_down(rule) -> tuple[bool | None, float | None, str]:
    """Firing after `consecutive` failed checks in a row; resolved by the next good one."""
    with get_engine().connect() as conn:
        latest = conn.execute(
            select(pings.c.status, pings.c.error, is_up(pings.c.status).label("up"))
            .where(pings.c.monitor_id == rule.monitor_id)
            .order_by(desc(pings.c.created_at), desc(pings.c.id))
            .limit(rule.consecutive)
        ).all()
    failed = 0
    for ping in latest:
        if ping.up:
            break
        failed += 1
    last = latest[0] if latest else None
    what = "no checks yet" if last is None else (last.error or f"HTTP {last.status}")
    summary = f"monitor {rule.monitor_id}: {failed} failed checks in a row (latest: {what})"
    if failed >= rule.consecutive:
        return True, float(failed), summary
    if last is not None and last.up:
        return False, 0.0, summary
    return None, float(failed), summary


# --- evaluating --------------------------------------------------------------------------------


def evaluate(round_ts: int | None = None) -> dict:
    """The periodic job: measure every rule at the round's start; open and resolve incidents.

    Running it again for the same round changes nothing. Returns counts (for tests).
    """
    now = datetime.fromtimestamp(round_ts, UTC) if round_ts else utcnow()
    engine = get_engine()
    counts = {"rules": 0, "opened": 0, "resolved": 0, "skipped": False}
    with engine.connect() as lock_conn:
        if is_postgres(lock_conn):
            got = lock_conn.execute(
                text("SELECT pg_try_advisory_lock(:id)"), {"id": EVALUATION_LOCK}
            ).scalar()
            lock_conn.commit()
            if not got:
                log.info("another alert evaluation is running; this one stops")
                counts["skipped"] = True
                return counts
        try:
            with engine.connect() as conn:
                rules = conn.execute(select(alert_rules).order_by(alert_rules.c.id)).all()
            for rule in rules:
                counts["rules"] += 1
                try:
                    firing, value, summary = measure(rule, now)
                except Exception:
                    log.exception("alert rule id=%s could not be measured", rule.id)
                    continue
                change = apply(rule, firing, value, summary, now)
                if change:
                    counts[change] += 1
        finally:
            if is_postgres(lock_conn):
                lock_conn.execute(text("SELECT pg_advisory_unlock(:id)"), {"id": EVALUATION_LOCK})
                lock_conn.commit()
    if counts["opened"] or counts["resolved"]:
        if current_config().embedded_queue:
            send_due()  # on this scheduler thread, not the in-process ingest queue's
        else:
            enqueue_alert_sending()
    return counts


def apply(rule, firing: bool | None, value, summary: str, now: datetime) -> str | None:
    """Open or resolve the rule's incident with its deliveries, in one transaction."""
    if firing is None:
        return None
    try:
        with get_engine().begin() as conn:
            open_incident = conn.execute(
                select(alert_incidents.c.id).where(
                    alert_incidents.c.rule_id == rule.id, alert_incidents.c.resolved_at.is_(None)
                )
            ).first()
            channels = list(
                conn.execute(
                    select(alert_rule_channels.c.channel_id).where(
                        alert_rule_channels.c.rule_id == rule.id
                    )
                ).scalars()
            )
            if firing and open_incident is None:
                incident_id = conn.execute(
                    alert_incidents.insert()
                    .values(
                        key_id=rule.key_id,
                        rule_id=rule.id,
                        started_at=now,
                        value=value,
                        summary=summary,
                    )
                    .returning(alert_incidents.c.id)
                ).scalar_one()
                add_deliveries(conn, rule.key_id, incident_id, channels, "open")
                log.info("alert rule id=%s fired: incident id=%s", rule.id, incident_id)
                return "opened"
            if not firing and open_incident is not None:
                resolved = conn.execute(
                    update(alert_incidents)
                    .where(
                        alert_incidents.c.id == open_incident.id,
                        alert_incidents.c.resolved_at.is_(None),
                    )
                    .values(resolved_at=now, resolved_value=value)
                ).rowcount
                if resolved:
                    add_deliveries(conn, rule.key_id, open_incident.id, channels, "resolve")
                    log.info("alert incident id=%s resolved", open_incident.id)
                    return "resolved"
    except IntegrityError:
        # Another evaluation opened it first, or the rule was deleted meanwhile.
        log.info("alert rule id=%s changed meanwhile; nothing done", rule.id)
    return None


# --- sending -----------------------------------------------------------------------------------


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
    secret = channel_secret(config.SECRET_KEY, channel.secret_salt) if channel.secret_salt else None
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
