"""Alert evaluation (every minute): each rule measured (server.stats.recent), its incident
opened or resolved.

The incident's state change and its delivery rows (one per channel) commit in one
transaction, so a worker that dies at any point leaves either nothing or both; sending
them is server.alerts.sending's. An open incident sends nothing more until it resolves.
One evaluation runs at a time (server.lake.lock: a second one, from another worker or
an overlapping round, returns at once), and the partial unique index on open incidents
keeps a rule to one open incident anyway.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from sqlalchemy import desc, select, update
from sqlalchemy.exc import IntegrityError

from server import queue
from server.alerts import releases
from server.alerts.deliveries import add_deliveries
from server.alerts.rules import HISTORY_DAYS, RELEASE_KIND, SLO_KINDS, USUAL_DAYS
from server.alerts.sending import send_due
from server.config import current_config
from server.db import get_engine, utcnow
from server.lake.lock import single_flight
from server.models import (
    alert_incidents,
    alert_rule_channels,
    alert_rules,
    error_groups,
    pings,
)
from server.monitors.uptime import is_up
from server.slos import burn
from server.stats import recent

log = logging.getLogger(__name__)

MINUTE_US = 60_000_000


def _us(moment: datetime) -> int:
    return int(moment.timestamp() * 1_000_000)


# --- measuring ---------------------------------------------------------------------------------


def measure(rule, now: datetime) -> tuple[bool | None, float | None, str]:
    """(firing?, value, summary) for a rule at `now`; firing None keeps the current state."""
    if rule.kind == "monitor_down":
        return _monitor_down(rule)
    if rule.kind in SLO_KINDS:
        return burn.measure_rule(rule, now)
    until = _us(now)
    since = until - rule.window_minutes * MINUTE_US
    if rule.kind in ("new_error", "error_regression"):
        return _error_groups(rule, since, until)
    if rule.kind == "no_traffic":
        found = recent.same_window_daily(rule.key_id, since, until, HISTORY_DAYS)
        now_count, usual = found[0], sum(1 for n in found[1:] if n)
        summary = (
            f"no requests in the last {rule.window_minutes} min; the same window had traffic "
            f"on {usual} of the previous {HISTORY_DAYS} days"
        )
        return now_count == 0 and usual >= USUAL_DAYS, float(now_count), summary
    if rule.kind == "error_rate":
        total, errors = recent.error_count(rule.key_id, since, until, include_4xx=rule.include_4xx)
        rate = 100.0 * errors / total if total else 0.0
        label = "4xx+5xx" if rule.include_4xx else "5xx"
        summary = (
            f"error rate ({label}) {rate:.1f}% over the last {rule.window_minutes} min "
            f"({errors} of {total} requests); threshold {rule.threshold:g}%"
        )
        return total >= rule.min_requests and rate > rule.threshold, rate, summary
    total, p95 = recent.latency_p95(rule.key_id, since, until, rule.endpoint)
    scope = f" on {rule.endpoint}" if rule.endpoint else ""
    shown = "–" if p95 is None else f"{p95:.0f} ms"
    summary = (
        f"p95 response time{scope} {shown} over the last {rule.window_minutes} min "
        f"({total} requests); threshold {rule.threshold:g} ms"
    )
    firing = total >= (rule.min_requests or 1) and p95 is not None and p95 > rule.threshold
    return firing, None if p95 is None else float(p95), summary


def _error_groups(rule, since: int, until: int) -> tuple[bool, float, str]:
    """New (or regressed) error groups in the window, ignored ones aside; firing while any,
    resolved once the window holds none."""
    g = error_groups.c
    moment = g.first_seen if rule.kind == "new_error" else g.regressed_at
    with get_engine().connect() as conn:
        found = conn.execute(
            select(g.id, g.type, g.route, g.message)
            .where(g.key_id == rule.key_id, g.state != "ignored", moment >= since, moment < until)
            .order_by(moment.desc(), g.id)
        ).all()
    what = ("new error group" if rule.kind == "new_error" else "regression") + (
        "" if len(found) == 1 else "s"
    )
    named = "; ".join(f"{r.type} on {r.route}: {r.message}"[:200] for r in found[:3])
    more = f" (and {len(found) - 3} more)" if len(found) > 3 else ""
    summary = f"{len(found)} {what} in the last {rule.window_minutes} min" + (
        f": {named}{more}" if found else ""
    )
    return bool(found), float(len(found)), summary


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
    settings = current_config()
    counts = {"rules": 0, "opened": 0, "resolved": 0, "skipped": False}
    with single_flight("alert-evaluation", engine, settings) as held:
        if not held:
            log.info("another alert evaluation is running; this one stops")
            counts["skipped"] = True
            return counts
        with engine.connect() as conn:
            rules = conn.execute(select(alert_rules).order_by(alert_rules.c.id)).all()
        for rule in rules:
            counts["rules"] += 1
            on_open = None
            try:
                if rule.kind == RELEASE_KIND:
                    firing, value, summary, deploy_id = releases.measure_rule(rule, now)
                    on_open = _remember(rule.id, deploy_id)
                else:
                    firing, value, summary = measure(rule, now)
            except Exception:
                log.exception("alert rule id=%s could not be measured", rule.id)
                continue
            change = apply(rule, firing, value, summary, now, on_open)
            if change:
                counts[change] += 1
    if counts["opened"] or counts["resolved"]:
        if settings.embedded_queue:
            send_due()  # on this scheduler thread, not the in-process ingest queue's
        else:
            queue.ask(send_due)
    return counts


def _remember(rule_id: int, deploy_id: int | None):
    """What opening a release_regression incident also records: the deploy it is about."""
    if deploy_id is None:
        return None
    return lambda conn, incident_id: releases.record(conn, rule_id, deploy_id, incident_id)


def apply(
    rule, firing: bool | None, value, summary: str, now: datetime, on_open=None
) -> str | None:
    """Open or resolve the rule's incident with its deliveries, in one transaction;
    `on_open(conn, incident_id)` adds to the opening transaction."""
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
                if on_open is not None:
                    on_open(conn, incident_id)
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
