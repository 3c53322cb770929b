"""Alert rules and channels of a key: what is checked and where it is sent.

Shared by the API (server.api.alerts) and the dashboard page, so a rule or channel
created either way is checked by the same code. Rules come as plain dicts; `check_rule`
and `check_channel_target` refuse bad ones with the field named. (A little over 400
lines: every kind's checks sit together so the API and the page refuse the same things.)
"""

from __future__ import annotations

import math
import re

from sqlalchemy import delete, insert, select

from server.alerts import releases
from server.alerts.notify import new_salt
from server.alerts.releases import RELEASE_KIND
from server.db import as_utc, utcnow
from server.keys import caps
from server.models import (
    alert_channels,
    alert_incidents,
    alert_rule_channels,
    alert_rules,
    monitors,
)

KINDS = (
    "error_rate", "latency_p95", "no_traffic", "monitor_down",
    # An error group seen for the first time, or a resolved one occurring again
    # (server.ingest.errors), within the rule's window.
    "new_error", "error_regression",
)  # fmt: skip
# An SLO's error budget burning fast or slowly (server.slos.burn): made with their SLO.
SLO_KINDS = ("slo_fast_burn", "slo_slow_burn")
# An endpoint worse beyond noise after the latest deploy (server.alerts.releases).
KINDS = (*KINDS, RELEASE_KIND, *SLO_KINDS)
WINDOWED = ("error_rate", "latency_p95", "no_traffic", "new_error", "error_regression",
            RELEASE_KIND)  # fmt: skip
CHANNEL_KINDS = ("webhook", "slack", "email")
# Per key (server.keys.caps): enough for any team, few enough that one evaluation stays quick.
RULE_LIMIT = caps.ALERT_RULES
CHANNEL_LIMIT = caps.ALERT_CHANNELS
MAX_WINDOW_MINUTES = 24 * 60
# no_traffic: the same window must have had traffic on at least this many of the 7
# previous days for silence to be unusual.
USUAL_DAYS = 4
HISTORY_DAYS = 7


class AlertInputError(ValueError):
    """A rule or channel that cannot be stored; `field` names the culprit."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"Invalid field '{field}': {problem}")
        self.field = field


# Past a cap: CapReached names it (the API answers 409).
LimitReached = caps.CapReached


# --- validation ------------------------------------------------------------------------------


NAME_MAX = 100
ENDPOINT_MAX = 263
EMAIL_MAX = 254
MAX_ID = 2**31 - 1
EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")


def _number(value, field: str) -> float:
    """A finite number (not a flag, not text): AlertInputError otherwise."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise AlertInputError(field, f"must be a number, not {_shown(value)}.")
    return value


def _require(rule: dict, field: str, low: float, high: float, whole: bool = False) -> float:
    value = rule.get(field)
    if value is None:
        raise AlertInputError(field, f"required for a {rule['kind']} rule.")
    value = _number(value, field)
    if whole and value != int(value):
        raise AlertInputError(field, f"must be a whole number, not {value:g}.")
    if not low <= value <= high:
        raise AlertInputError(field, f"must be between {low:g} and {high:g}.")
    return value


def _optional(rule: dict, field: str, default: float, low: float, high: float, whole=False):
    """The field as _require checks it, or `default` when it is left out."""
    if rule.get(field) in (None, ""):
        return default
    return _require(rule, field, low, high, whole)


def _text(value, field: str, limit: int) -> str:
    """Text of at most `limit` characters once trimmed (None is empty)."""
    if value is None:
        return ""
    if not isinstance(value, str):
        raise AlertInputError(field, f"must be text, not {_shown(value)}.")
    value = value.strip()
    if len(value) > limit:
        raise AlertInputError(field, f"is {len(value)} characters long: at most {limit}.")
    if "\x00" in value:  # PostgreSQL's text holds no NUL
        raise AlertInputError(field, "holds a NUL character.")
    return value


def _row_id(value, field: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 < value <= MAX_ID:
        raise AlertInputError(field, f"must be an id (a whole number), not {_shown(value)}.")
    return value


def _shown(value) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def check_rule(conn, key_id: int, rule: dict) -> dict:
    """The rule with the fields its kind does not use cleared; raises AlertInputError.
    The API's schema and the dashboard's form both end here, so both take the same rules."""
    if not isinstance(rule, dict):
        raise AlertInputError("kind", "a rule is an object of fields.")
    kind = rule.get("kind")
    if not isinstance(kind, str) or kind not in KINDS:
        raise AlertInputError("kind", f"must be one of {', '.join(KINDS)}.")
    out = {
        "name": _text(rule.get("name"), "name", NAME_MAX) or kind.replace("_", " "),
        "kind": kind,
        "threshold": None,
        "window_minutes": None,
        "min_requests": None,
        "include_4xx": False,
        "endpoint": None,
        "monitor_id": None,
        "consecutive": None,
    }
    if kind in WINDOWED:
        out["window_minutes"] = int(_require(rule, "window_minutes", 1, MAX_WINDOW_MINUTES, True))
    if kind == RELEASE_KIND:
        out["threshold"] = _optional(rule, "threshold", releases.THRESHOLD, 0, releases.MAX_RISE)
        out["min_requests"] = int(
            _optional(rule, "min_requests", releases.MIN_REQUESTS, 1, 1e9, True)
        )
    if kind in ("error_rate", "latency_p95"):
        high = 100 if kind == "error_rate" else 3_600_000
        out["threshold"] = float(_require(rule, "threshold", 0 if high == 100 else 1, high))
        out["min_requests"] = int(_optional(rule, "min_requests", 1, 1, 1_000_000_000, True))
    if kind == "error_rate":
        out["include_4xx"] = bool(rule.get("include_4xx"))
    elif kind == "latency_p95":
        endpoint = _text(rule.get("endpoint"), "endpoint", ENDPOINT_MAX)
        if endpoint and " /" not in endpoint:
            raise AlertInputError(
                "endpoint", "an endpoint as the dashboard shows it, such as 'GET /items/{id}'."
            )
        out["endpoint"] = endpoint or None
    elif kind == "monitor_down":
        out["consecutive"] = int(_require(rule, "consecutive", 1, 100, True))
        monitor_id = rule.get("monitor_id")
        if monitor_id is None:
            raise AlertInputError("monitor_id", "required for a monitor_down rule.")
        monitor_id = _row_id(monitor_id, "monitor_id")
        owned = conn.execute(
            select(monitors.c.id).where(monitors.c.id == monitor_id, monitors.c.key_id == key_id)
        ).first()
        if owned is None:
            raise AlertInputError("monitor_id", f"this key has no monitor {monitor_id}.")
        out["monitor_id"] = monitor_id
    out["slo_id"] = _owned_slo(conn, key_id, rule.get("slo_id")) if kind in SLO_KINDS else None
    return out


def _owned_slo(conn, key_id: int, slo_id) -> int:
    from server.slos.models import slos

    if slo_id is None:
        raise AlertInputError("slo_id", "SLO burn-rate rules come with their SLO (/api/slos).")
    slo_id = _row_id(slo_id, "slo_id")
    owned = conn.execute(
        select(slos.c.id).where(slos.c.id == slo_id, slos.c.key_id == key_id)
    ).first()
    if owned is None:
        raise AlertInputError("slo_id", f"this key has no SLO {slo_id}.")
    return int(slo_id)


def _owned_channels(conn, key_id: int, channel_ids) -> list[int]:
    if channel_ids is None:
        return []
    if not isinstance(channel_ids, list | tuple):
        raise AlertInputError("channel_ids", "must be a list of channel ids.")
    if len(channel_ids) > CHANNEL_LIMIT:
        raise AlertInputError("channel_ids", f"at most {CHANNEL_LIMIT} channels.")
    ids = sorted({_row_id(c, "channel_ids") for c in channel_ids})
    if not ids:
        return []
    found = set(
        conn.execute(
            select(alert_channels.c.id).where(
                alert_channels.c.key_id == key_id, alert_channels.c.id.in_(ids)
            )
        ).scalars()
    )
    missing = [i for i in ids if i not in found]
    if missing:
        raise AlertInputError("channel_ids", f"this key has no channel {missing[0]}.")
    return ids


# --- rules -----------------------------------------------------------------------------------


def create_rule(conn, key_id: int, rule: dict) -> dict:
    """Validate and insert a rule with its channels (inside a transaction); at most
    RULE_LIMIT a key, however many requests ask at once."""
    caps.ensure_room(conn, key_id, alert_rules, RULE_LIMIT, "alert rules")
    values = check_rule(conn, key_id, rule)
    channel_ids = _owned_channels(conn, key_id, rule.get("channel_ids"))
    rule_id = conn.execute(
        insert(alert_rules)
        .values(key_id=key_id, created_at=utcnow(), **values)
        .returning(alert_rules.c.id)
    ).scalar_one()
    if channel_ids:
        conn.execute(
            insert(alert_rule_channels),
            [{"rule_id": rule_id, "channel_id": c} for c in channel_ids],
        )
    return get_rule(conn, key_id, rule_id)


RULE_FIELDS = (
    "name",
    "kind",
    "threshold",
    "window_minutes",
    "min_requests",
    "include_4xx",
    "endpoint",
    "monitor_id",
    "consecutive",
    "slo_id",
)


def update_rule(conn, key_id: int, rule_id: int, changes: dict) -> dict | None:
    """Change some of a rule's fields (its channels too, given `channel_ids`); None when
    the key has no such rule. The whole rule is checked again, as at creation."""
    current = get_rule(conn, key_id, rule_id)
    if current is None:
        return None
    merged = {**{f: current[f] for f in RULE_FIELDS}, **changes}
    values = check_rule(conn, key_id, merged)
    conn.execute(alert_rules.update().where(alert_rules.c.id == rule_id).values(**values))
    if "channel_ids" in changes:
        channel_ids = _owned_channels(conn, key_id, changes["channel_ids"])
        conn.execute(delete(alert_rule_channels).where(alert_rule_channels.c.rule_id == rule_id))
        if channel_ids:
            conn.execute(
                insert(alert_rule_channels),
                [{"rule_id": rule_id, "channel_id": c} for c in channel_ids],
            )
    return get_rule(conn, key_id, rule_id)


def _rule_dict(conn, row) -> dict:
    rule = dict(row._mapping)
    rule["created_at"] = as_utc(rule["created_at"])
    rule["channel_ids"] = list(
        conn.execute(
            select(alert_rule_channels.c.channel_id)
            .where(alert_rule_channels.c.rule_id == row.id)
            .order_by(alert_rule_channels.c.channel_id)
        ).scalars()
    )
    open_incident = conn.execute(
        select(alert_incidents.c.id, alert_incidents.c.started_at, alert_incidents.c.value).where(
            alert_incidents.c.rule_id == row.id, alert_incidents.c.resolved_at.is_(None)
        )
    ).first()
    rule["state"] = "firing" if open_incident else "ok"
    rule["firing_since"] = as_utc(open_incident.started_at) if open_incident else None
    return rule


def list_rules(conn, key_id: int) -> list[dict]:
    rows = conn.execute(
        select(alert_rules).where(alert_rules.c.key_id == key_id).order_by(alert_rules.c.id)
    ).all()
    return [_rule_dict(conn, row) for row in rows]


def get_rule(conn, key_id: int, rule_id: int) -> dict | None:
    row = conn.execute(
        select(alert_rules).where(alert_rules.c.id == rule_id, alert_rules.c.key_id == key_id)
    ).first()
    return None if row is None else _rule_dict(conn, row)


def delete_rule(conn, key_id: int, rule_id: int) -> bool:
    result = conn.execute(
        delete(alert_rules).where(alert_rules.c.id == rule_id, alert_rules.c.key_id == key_id)
    )
    return result.rowcount > 0


# --- channels --------------------------------------------------------------------------------


def create_channel(conn, key_id: int, kind: str, name: str, target: str) -> tuple[dict, str]:
    """Insert a channel (`target` as check_channel_target returned it); returns it and its
    signing salt (None but for webhooks). At most CHANNEL_LIMIT a key."""
    if kind not in CHANNEL_KINDS:
        raise AlertInputError("kind", f"must be one of {', '.join(CHANNEL_KINDS)}.")
    name = _text(name, "name", NAME_MAX)
    caps.ensure_room(conn, key_id, alert_channels, CHANNEL_LIMIT, "alert channels")
    salt = new_salt() if kind == "webhook" else None
    channel_id = conn.execute(
        insert(alert_channels)
        .values(
            key_id=key_id,
            kind=kind,
            name=name or kind,
            target=target,
            secret_salt=salt,
            created_at=utcnow(),
        )
        .returning(alert_channels.c.id)
    ).scalar_one()
    return get_channel(conn, key_id, channel_id), salt


def _channel_dict(row) -> dict:
    channel = {k: v for k, v in row._mapping.items() if k != "secret_salt"}
    channel["created_at"] = as_utc(channel["created_at"])
    return channel


def list_channels(conn, key_id: int) -> list[dict]:
    rows = conn.execute(
        select(alert_channels)
        .where(alert_channels.c.key_id == key_id)
        .order_by(alert_channels.c.id)
    ).all()
    return [_channel_dict(r) for r in rows]


def get_channel(conn, key_id: int, channel_id: int) -> dict | None:
    row = conn.execute(
        select(alert_channels).where(
            alert_channels.c.id == channel_id, alert_channels.c.key_id == key_id
        )
    ).first()
    return None if row is None else _channel_dict(row)


def delete_channel(conn, key_id: int, channel_id: int) -> bool:
    result = conn.execute(
        delete(alert_channels).where(
            alert_channels.c.id == channel_id, alert_channels.c.key_id == key_id
        )
    )
    return result.rowcount > 0


def check_channel_target(kind: str, url: str | None, email: str | None, settings) -> str:
    """The channel's target once the SSRF guard (and SMTP_URL, for email) allow it."""
    from server.alerts.smtp import guarded_address, parse_smtp_url
    from server.net.urlguard import MAX_URL_LENGTH, UnsafeURL, check_url

    if not isinstance(kind, str) or kind not in CHANNEL_KINDS:
        raise AlertInputError("kind", f"must be one of {', '.join(CHANNEL_KINDS)}.")
    email = _text(email, "email", EMAIL_MAX) or None
    url = _text(url, "url", MAX_URL_LENGTH) or None
    if kind == "email":
        if not email:
            raise AlertInputError("email", "required for an email channel.")
        if not EMAIL.fullmatch(email):
            raise AlertInputError("email", f"{_shown(email)} is not an email address.")
        if url:
            raise AlertInputError("url", "not used by an email channel.")
        if not settings.SMTP_URL:
            raise AlertInputError(
                "kind", "email channels need the operator to set SMTP_URL and SMTP_FROM."
            )
        smtp = parse_smtp_url(settings.SMTP_URL)
        try:
            guarded_address(smtp.host, smtp.port, settings.MONITOR_ALLOW_PRIVATE, 5)
        except (UnsafeURL, OSError) as exc:
            raise AlertInputError("email", str(exc)) from exc
        return email.strip()
    if not url:
        raise AlertInputError("url", f"required for a {kind} channel.")
    if email:
        raise AlertInputError("email", f"not used by a {kind} channel.")
    url = url.strip()
    try:
        check_url(url, allow_private=settings.MONITOR_ALLOW_PRIVATE)
    except UnsafeURL as exc:
        raise AlertInputError("url", str(exc)) from exc
    return url
