"""A key's SLOs: checked, stored, changed and deleted, with their two burn-rate alert rules.

Shared by the API (server.api.slos) and the dashboard. `check_slo` refuses a bad SLO with
the field named (SloInputError), as server.alerts.rules does for rules.
"""

from __future__ import annotations

import math

from sqlalchemy import delete, func, insert, select

from server.alerts import rules as alert_rules_store
from server.db import as_utc, utcnow
from server.models import alert_rules
from server.slos.models import slos

OBJECTIVES = ("availability", "latency")
WINDOWS = (7, 28, 30)
# Per key: a service's handful of SLOs, few enough for one page and one evaluation.
SLO_LIMIT = 50
MAX_ENDPOINTS = 50
NAME_MAX = 100
TARGET_MIN, TARGET_MAX = 50.0, 99.999
FIELDS = ("name", "objective", "include_4xx", "threshold_ms", "target", "window_days",
          "hostname", "endpoints", "consumer_group")  # fmt: skip
BURN_KINDS = ("slo_fast_burn", "slo_slow_burn")


class SloInputError(ValueError):
    """An SLO that cannot be stored; `field` names the culprit."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"Invalid field '{field}': {problem}")
        self.field = field


class LimitReached(Exception):
    pass


def _shown(value) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _text(value, field: str, limit: int, required: bool = False) -> str | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        if required:
            raise SloInputError(field, "required.")
        return None
    if not isinstance(value, str):
        raise SloInputError(field, f"must be text, not {_shown(value)}.")
    value = value.strip()
    if len(value) > limit:
        raise SloInputError(field, f"is {len(value)} characters long: at most {limit}.")
    if "\x00" in value:
        raise SloInputError(field, "holds a NUL character.")
    return value


def _number(value, field: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise SloInputError(field, f"must be a number, not {_shown(value)}.")
    return value


def check_slo(slo: dict) -> dict:
    """The SLO's stored fields, the ones its objective does not use cleared; raises
    SloInputError naming the first bad field."""
    if not isinstance(slo, dict):
        raise SloInputError("name", "an SLO is an object of fields.")
    objective = slo.get("objective")
    if objective not in OBJECTIVES:
        raise SloInputError("objective", f"must be one of {', '.join(OBJECTIVES)}.")
    target = slo.get("target")
    if target is None:
        raise SloInputError("target", "required: the percent of good requests, e.g. 99.9.")
    target = float(_number(target, "target"))
    if not TARGET_MIN <= target <= TARGET_MAX:
        raise SloInputError(
            "target", f"must be from {TARGET_MIN:g} to {TARGET_MAX:g} (percent), not {target:g}."
        )
    window = slo.get("window_days", 30)
    if isinstance(window, bool) or window not in WINDOWS:
        raise SloInputError("window_days", f"must be one of {', '.join(map(str, WINDOWS))}.")
    out = {
        "name": _text(slo.get("name"), "name", NAME_MAX, required=True),
        "objective": objective,
        "include_4xx": False,
        "threshold_ms": None,
        "target": target,
        "window_days": int(window),
        "hostname": _text(slo.get("hostname"), "hostname", 255),
        "endpoints": _endpoints(slo.get("endpoints")),
        "consumer_group": _text(slo.get("consumer_group"), "consumer_group", 100),
    }
    if objective == "availability":
        flag = slo.get("include_4xx", False)
        if flag is not None and not isinstance(flag, bool):
            raise SloInputError("include_4xx", f"must be true or false, not {_shown(flag)}.")
        out["include_4xx"] = bool(flag)
    else:
        threshold = slo.get("threshold_ms")
        if threshold is None:
            raise SloInputError("threshold_ms", "required for a latency SLO (milliseconds).")
        threshold = _number(threshold, "threshold_ms")
        if threshold != int(threshold) or not 1 <= threshold <= 3_600_000:
            raise SloInputError("threshold_ms", "must be a whole number of ms, 1 to 3600000.")
        out["threshold_ms"] = int(threshold)
    return out


def _endpoints(value) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list | tuple):
        raise SloInputError("endpoints", "must be a list of endpoints or `*` patterns.")
    if len(value) > MAX_ENDPOINTS:
        raise SloInputError("endpoints", f"at most {MAX_ENDPOINTS}.")
    found = []
    for item in value:
        text = _text(item, "endpoints", 263)
        if not text:
            raise SloInputError("endpoints", "an endpoint may not be empty.")
        found.append(text)
    return list(dict.fromkeys(found))


# --- storing ---------------------------------------------------------------------------------


def create_slo(conn, key_id: int, slo: dict) -> dict:
    """Check and insert an SLO (inside a transaction); with `alerts` (the default) also its
    fast- and slow-burn alert rules, notifying `channel_ids`. At most SLO_LIMIT a key."""
    values = check_slo(slo)
    alerts = slo.get("alerts", True)
    if not isinstance(alerts, bool):
        raise SloInputError("alerts", f"must be true or false, not {_shown(alerts)}.")
    count = conn.execute(
        select(func.count()).select_from(slos).where(slos.c.key_id == key_id)
    ).scalar_one()
    if count >= SLO_LIMIT:
        raise LimitReached(SLO_LIMIT)
    slo_id = conn.execute(
        insert(slos).values(key_id=key_id, created_at=utcnow(), **values).returning(slos.c.id)
    ).scalar_one()
    if alerts:
        for kind, label in (("slo_fast_burn", "fast burn"), ("slo_slow_burn", "slow burn")):
            rule = {"kind": kind, "slo_id": slo_id, "name": f"{values['name']}: {label}"[:100],
                    "channel_ids": slo.get("channel_ids") or []}  # fmt: skip
            try:
                alert_rules_store.create_rule(conn, key_id, rule)
            except alert_rules_store.AlertInputError as exc:
                raise SloInputError(exc.field, str(exc).split(": ", 1)[-1]) from exc
    elif slo.get("channel_ids"):
        raise SloInputError("channel_ids", "only with alerts: true.")
    return get_slo(conn, key_id, slo_id)


def update_slo(conn, key_id: int, slo_id: int, changes: dict) -> dict | None:
    """Change some fields; the SLO as a whole is checked again. None: no such SLO."""
    current = get_slo(conn, key_id, slo_id)
    if current is None:
        return None
    merged = {**{f: current[f] for f in FIELDS}, **changes}
    values = check_slo(merged)
    conn.execute(slos.update().where(slos.c.id == slo_id).values(**values))
    return get_slo(conn, key_id, slo_id)


def delete_slo(conn, key_id: int, slo_id: int) -> bool:
    """Delete it, with its alert rules and their incidents (the foreign keys cascade)."""
    conn.execute(
        delete(alert_rules).where(alert_rules.c.key_id == key_id, alert_rules.c.slo_id == slo_id)
    )
    found = conn.execute(delete(slos).where(slos.c.id == slo_id, slos.c.key_id == key_id))
    return found.rowcount > 0


def _slo_dict(conn, row) -> dict:
    slo = dict(row._mapping)
    slo["created_at"] = as_utc(slo["created_at"])
    slo["endpoints"] = list(slo["endpoints"] or [])
    rules = select(alert_rules.c.id).where(alert_rules.c.slo_id == row.id)
    slo["alert_rule_ids"] = list(conn.execute(rules.order_by(alert_rules.c.id)).scalars())
    return slo


def list_slos(conn, key_id: int) -> list[dict]:
    rows = conn.execute(select(slos).where(slos.c.key_id == key_id).order_by(slos.c.id)).all()
    return [_slo_dict(conn, row) for row in rows]


def get_slo(conn, key_id: int, slo_id: int) -> dict | None:
    row = conn.execute(select(slos).where(slos.c.id == slo_id, slos.c.key_id == key_id)).first()
    return None if row is None else _slo_dict(conn, row)


def slo_by_id(conn, slo_id: int) -> dict | None:
    """An SLO whatever its key (the alert evaluation's: the rule names it)."""
    row = conn.execute(select(slos).where(slos.c.id == slo_id)).first()
    return None if row is None else dict(row._mapping)
