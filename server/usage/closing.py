"""The month-closed webhook: an owner may set a URL, and once a month closes (an hour
after it ends, server.usage.store.GRACE) the server freezes its usage and POSTs the
summary there once, signed as alert webhooks are (server.alerts.notify: X-Signature,
sha256 HMAC of the body with a secret derived from SECRET_KEY and a stored salt).

Once: a notice row per key and month, made under a unique constraint, is what is sent;
a failed attempt is tried again after 1, 5 and 15 minutes, then recorded failed. At least
once and at most once, unless a sender dies between the POST and its record (then the
receiver sees the same X-Delivery-Id again), as alert deliveries are. Months that closed
before the webhook was set are not sent.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

from sqlalchemy import delete, insert, select, update
from sqlalchemy.exc import IntegrityError

from server.alerts import notify
from server.alerts.rules import AlertInputError, check_channel_target
from server.alerts.sending import RETRY_DELAYS, SEND_LEASE
from server.config import current_config
from server.db import as_utc, get_engine, utcnow
from server.stats.usage import GROUPS
from server.usage import store
from server.usage.export import as_json
from server.usage.models import usage_notices, usage_webhooks

log = logging.getLogger(__name__)

EVENT = "usage.month_closed"
SEND_LIMIT = 30  # notices a run sends at most (each within notify.SEND_TIMEOUT)
WebhookInputError = AlertInputError


# --- the owner's setting -----------------------------------------------------------------------


def set_webhook(conn, key_id: int, url, settings) -> tuple[dict, str]:
    """Set (or replace) the key's webhook; returns it and its signing secret, shown once.
    The URL passes the alert channels' checks (the SSRF guard); a new salt each time, so
    a replaced URL never shares the old secret."""
    url = check_channel_target("webhook", url, None, settings)
    salt = notify.new_salt()
    now = utcnow()
    conn.execute(delete(usage_webhooks).where(usage_webhooks.c.key_id == key_id))
    conn.execute(insert(usage_webhooks).values(key_id=key_id, url=url, secret_salt=salt,
                                               created_at=now))  # fmt: skip
    return get_webhook(conn, key_id), notify.channel_secret(settings.SECRET_KEY, salt)


def get_webhook(conn, key_id: int) -> dict | None:
    """The key's webhook with the months it was told of (newest first), or None."""
    row = conn.execute(select(usage_webhooks).where(usage_webhooks.c.key_id == key_id)).first()
    if row is None:
        return None
    n = usage_notices.c
    notices = conn.execute(
        select(usage_notices).where(n.key_id == key_id).order_by(n.month.desc()).limit(24)
    ).all()
    return {
        "url": row.url,
        "created_at": as_utc(row.created_at),
        "notices": [
            {
                "month": f"{r.month // 100:04d}-{r.month % 100:02d}",
                "status": r.status,
                "attempts": r.attempts,
                "sent_at": as_utc(r.sent_at),
                "next_attempt_at": as_utc(r.next_attempt_at) if r.status == "pending" else None,
                "last_error": r.last_error,
            }
            for r in notices
        ],
    }


def delete_webhook(conn, key_id: int) -> bool:
    found = conn.execute(delete(usage_webhooks).where(usage_webhooks.c.key_id == key_id))
    return found.rowcount > 0


# --- closing months ----------------------------------------------------------------------------


def last_closed_month(now: datetime) -> tuple[str, datetime]:
    """(YYYY-MM, the moment it became final) of the latest month final at `now`."""
    start = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    while True:
        start = (start - timedelta(days=1)).replace(day=1)
        month = start.strftime("%Y-%m")
        final_at = store.month_span(month)[1] + store.GRACE
        if final_at <= now:
            return month, final_at


def _number(month: str) -> int:
    return int(month[:4]) * 100 + int(month[5:])


def close_months(round_ts: int | None = None) -> dict:
    """The periodic job: for every key with a webhook, freeze the last closed month (if it
    closed after the webhook was set) and make its notice, once; then send what is due.
    Running it again changes nothing. Returns counts (for tests)."""
    now = datetime.fromtimestamp(round_ts, UTC) if round_ts else utcnow()
    month, final_at = last_closed_month(now)
    counts = {"made": 0, "sent": 0}
    with get_engine().connect() as conn:
        hooks = conn.execute(
            select(usage_webhooks.c.key_id)
            .outerjoin(usage_notices, (usage_notices.c.key_id == usage_webhooks.c.key_id)
                       & (usage_notices.c.month == _number(month)))  # fmt: skip
            .where(usage_webhooks.c.created_at < final_at, usage_notices.c.id.is_(None))
        ).scalars().all()  # fmt: skip
    for key_id in hooks:
        try:
            for group_by in GROUPS:  # frozen, so every later answer (and the POST) is this
                store.usage(key_id, month, group_by, now=now)
            with get_engine().begin() as conn:
                conn.execute(insert(usage_notices).values(
                    key_id=key_id, month=_number(month), status="pending", attempts=0,
                    next_attempt_at=now, created_at=now))  # fmt: skip
            counts["made"] += 1
        except IntegrityError:
            log.info("usage notice of key id=%s for %s was made concurrently", key_id, month)
        except Exception:
            log.exception("usage of key id=%s for %s could not be closed", key_id, month)
    counts["sent"] = send_notices(now)
    return counts


# --- sending -----------------------------------------------------------------------------------


def summary(key_id: int, month: str, notice_id: int, now: datetime) -> dict:
    """What the webhook receives: the month's frozen usage by each grouping, exactly as
    GET /api/usage answers it for that grouping."""
    return {
        "event": EVENT,
        "delivery_id": f"usage-{notice_id}",
        "month": month,
        "usage": {g: store.usage(key_id, month, g, now=now).as_dict() for g in GROUPS},
    }


def send_notices(now: datetime | None = None) -> int:
    """Send every due notice, one attempt each; returns how many were sent."""
    now = now or utcnow()
    n = usage_notices.c
    with get_engine().connect() as conn:
        due = conn.execute(
            select(n.id).where(n.status == "pending", n.next_attempt_at <= now)
            .order_by(n.id).limit(SEND_LIMIT)
        ).scalars().all()  # fmt: skip
    return sum(1 for notice_id in due if send_notice(notice_id, now))


def _claim(notice_id: int, now: datetime) -> bool:
    """Take the notice for one attempt (a lease), unless another sender has it."""
    n = usage_notices.c
    with get_engine().begin() as conn:
        taken = conn.execute(
            update(usage_notices)
            .where(n.id == notice_id, n.status == "pending", n.next_attempt_at <= now)
            .values(next_attempt_at=now + SEND_LEASE)
        ).rowcount
    return taken == 1


def send_notice(notice_id: int, now: datetime) -> bool:
    """One attempt at one notice, recorded; True when the receiver took it."""
    if not _claim(notice_id, now):
        return False
    config = current_config()
    with get_engine().connect() as conn:
        notice = conn.execute(select(usage_notices).where(usage_notices.c.id == notice_id)).first()
        hook = conn.execute(
            select(usage_webhooks).where(usage_webhooks.c.key_id == notice.key_id)
        ).first()
    month = f"{notice.month // 100:04d}-{notice.month % 100:02d}"
    error = None
    if hook is None:
        error = "the webhook was removed"
    else:
        try:
            body = as_json(summary(notice.key_id, month, notice.id, now)).encode()
            secret = notify.channel_secret(config.SECRET_KEY, hook.secret_salt)
            headers = [(b"X-Delivery-Id", f"usage-{notice.id}".encode()),
                       (b"X-Signature", notify.sign(secret, body).encode())]  # fmt: skip
            notify.post_json(hook.url, body, headers, allow_private=config.MONITOR_ALLOW_PRIVATE)
        except notify.DeliveryFailed as exc:
            error = str(exc)
        except Exception as exc:  # a bug or an odd failure: recorded and retried like the rest
            error = type(exc).__name__
            log.exception("usage notice id=%s failed unexpectedly", notice_id)
    _record(notice, now, error, final=hook is None)
    return error is None


def _record(notice, now: datetime, error: str | None, final: bool = False) -> None:
    attempts = notice.attempts + 1
    if error is None:
        values = {"status": "sent", "sent_at": now, "last_error": None}
    elif final or attempts > len(RETRY_DELAYS):
        values = {"status": "failed", "last_error": error}
    else:
        values = {"next_attempt_at": now + RETRY_DELAYS[attempts - 1], "last_error": error}
    with get_engine().begin() as conn:
        conn.execute(
            update(usage_notices)
            .where(usage_notices.c.id == notice.id)
            .values(attempts=attempts, **values)
        )
    if error is None:
        log.info("usage notice id=%s sent", notice.id)
    else:
        log.warning("usage notice id=%s attempt %s failed: %s", notice.id, attempts, error)
