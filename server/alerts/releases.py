"""The release_regression alert rule: after the key's latest deploy, fire when an
endpoint's p95 (or p50) or error rate got worse beyond noise, once per deploy; resolve
when a later deploy arrives or the regression ends.

The statistics are the release comparison's (server.deploys.comparison): equal windows
before and after the deploy, percentiles' 99 % confidence intervals that do not overlap,
a two-proportion z-test on 5xx. An endpoint counts once it has `min_requests` on each
side and got worse by at least `threshold` % (0: any change beyond noise).

- Until `window_minutes` have passed since the deploy, the after window is what has
  passed (the before window as long); from then on an open incident is checked on the
  latest `window_minutes` against the same before window, so it resolves once the
  endpoints are back (and stays open while they are not).
- It opens only within twice `window_minutes` of the deploy: a rule created later does
  not page about an old release.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import insert, select

from server.alerts.models import release_alerts
from server.db import get_engine
from server.deploys import comparison
from server.deploys.store import from_us, list_deploys, us
from server.models import alert_incidents
from server.stats.releases import before_after

RELEASE_KIND = "release_regression"
# An endpoint is judged with this many requests on each side at least (unless the rule
# says), and counts when it got worse by this many percent.
MIN_REQUESTS = 30
THRESHOLD = 10.0
MAX_RISE = 100_000  # percent
MINUTE_US = 60_000_000
SHOWN = 3  # endpoints named in the summary; the rest counted


def latest_deploy(conn, key_id: int, now: datetime) -> dict | None:
    found = list_deploys(conn, key_id, until_us=us(now) + 1, limit=1)
    return found[0] if found else None


def _open_incident(conn, rule_id: int):
    """(incident id, deploy id) of the rule's open incident, or None."""
    return conn.execute(
        select(alert_incidents.c.id, release_alerts.c.deploy_id)
        .select_from(alert_incidents)
        .outerjoin(release_alerts, release_alerts.c.incident_id == alert_incidents.c.id)
        .where(alert_incidents.c.rule_id == rule_id, alert_incidents.c.resolved_at.is_(None))
    ).first()


def _fired_for(conn, rule_id: int, deploy_id: int) -> bool:
    return (
        conn.execute(
            select(release_alerts.c.id).where(
                release_alerts.c.rule_id == rule_id, release_alerts.c.deploy_id == deploy_id
            )
        ).first()
        is not None
    )


def regressed(rule, endpoints: list[dict]) -> list[dict]:
    """The endpoints worse beyond noise, with enough requests each side, by enough."""
    least = (rule.threshold or 0) / 100
    found = []
    for e in endpoints:
        before, after = e["before"], e["after"]
        if e["verdict"] != "worse" or before is None or after is None:
            continue
        if min(before["requests"], after["requests"]) < (rule.min_requests or 1):
            continue
        if e["worse_by"] + 1e-9 >= least:
            found.append(e)
    return found


def _recent(key_id: int, deploy: dict, length: int, now_us: int) -> list[dict]:
    """The deploy's before window against the latest `length` µs, judged as the release
    comparison judges (server.deploys.comparison), the worst first."""
    host = deploy.get("hostname")
    was = comparison.routes_on_side(
        before_after(key_id, deploy["deployed_at"], length, host), False
    )
    now_is = comparison.routes_on_side(before_after(key_id, now_us, length, host), False)
    endpoints = []
    for route in sorted(set(was) | set(now_is)):
        before, after = (
            comparison.route_stats(was.get(route)),
            comparison.route_stats(now_is.get(route)),
        )
        endpoints.append({"endpoint": route, "before": before, "after": after,
                          **comparison.judge(before, after)})  # fmt: skip
    endpoints.sort(key=lambda e: (comparison.ORDER[e["verdict"]], -e["worse_by"], e["endpoint"]))
    return endpoints


def measure_rule(rule, now: datetime) -> tuple[bool | None, float | None, str, int | None]:
    """(firing?, value, summary, the deploy) of a release_regression rule at `now`
    (server.alerts.evaluation); firing None keeps the current state."""
    window = rule.window_minutes * MINUTE_US
    now_us = us(now)
    with get_engine().connect() as conn:
        deploy = latest_deploy(conn, rule.key_id, now)
        open_incident = _open_incident(conn, rule.id)
        fired = deploy is not None and _fired_for(conn, rule.id, deploy["id"])
    if deploy is None:
        return (False if open_incident else None), 0.0, "no deploy", None
    if open_incident is not None and open_incident.deploy_id != deploy["id"]:
        summary = f"a later deploy, {deploy['version']}, arrived"
        return False, 0.0, summary, None
    elapsed = now_us - deploy["deployed_at"]
    if open_incident is None and (fired or elapsed > 2 * window):
        return None, None, "", None
    if elapsed <= window:
        compared = comparison.compare(rule.key_id, deploy, rule.window_minutes, now)
        endpoints, length = compared["endpoints"], compared["window_minutes"]
        where = "since it"
    else:
        endpoints, length = _recent(rule.key_id, deploy, window, now_us), rule.window_minutes
        where = f"over the last {length:g} min"
    worse = regressed(rule, endpoints)
    summary = describe(deploy, worse, length, where)
    value = max((100 * e["worse_by"] for e in worse), default=0.0)
    return bool(worse), value, summary, deploy["id"]


def describe(deploy: dict, worse: list[dict], minutes: float, where: str) -> str:
    moment = from_us(deploy["deployed_at"])
    head = f"deploy {deploy['version']} ({moment:%Y-%m-%d %H:%M} UTC)"
    if not worse:
        return f"{head}: no endpoint worse beyond noise {where} ({minutes:g} min each side)"
    parts = [_figures(e) for e in worse[:SHOWN]]
    more = f"; and {len(worse) - SHOWN} more" if len(worse) > SHOWN else ""
    count = f"{len(worse)} endpoint{'s' if len(worse) != 1 else ''}"
    return (
        f"{head}: {count} worse beyond noise {where}, {minutes:g} min each side against "
        f"before it: " + "; ".join(parts) + more
    )


def _figures(e: dict) -> str:
    a, b = e["before"], e["after"]
    moved = []
    for name in ("p95", "p50"):
        if e["changes"].get(name) == "up":
            moved.append(f"{name} {a[name]:.0f} -> {b[name]:.0f} ms ({_rise(a[name], b[name])})")
    if e["changes"].get("error_rate") == "up":
        moved.append(f"5xx {a['error_rate']:.1f}% -> {b['error_rate']:.1f}%")
    return (
        f"{e['endpoint']}: "
        + ", ".join(moved)
        + f" ({a['requests']} requests before, {b['requests']} after)"
    )


def _rise(before: float, after: float) -> str:
    return f"+{100 * (after / max(before, 1) - 1):.0f}%"


def record(conn, rule_id: int, deploy_id: int, incident_id: int) -> None:
    """Remember the deploy the rule fired for (in the transaction that opened it)."""
    conn.execute(
        insert(release_alerts).values(rule_id=rule_id, deploy_id=deploy_id, incident_id=incident_id)
    )
