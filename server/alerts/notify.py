"""Sending one notification to one channel: a signed webhook, a Slack text, an email.

Webhooks go through guarded connections (server.net.http), so a channel URL whose host
turns private after it was accepted is refused at send time too. Errors name what
failed, never the URL (a Slack URL is itself a secret) or a password. A webhook's
signing secret is derived, never stored (channel_secret).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets

from server.alerts.smtp import parse_smtp_url, send_mail
from server.net.http import classify, guarded_post

SEND_TIMEOUT = 10
USER_AGENT = "api-analytics-alerts/1.0"


class DeliveryFailed(Exception):
    """The channel did not take the notification; str() is what the attempt records."""


def post_json(url: str, body: bytes, headers: list, *, allow_private: bool) -> None:
    try:
        status = guarded_post(
            url, body, [(b"User-Agent", USER_AGENT.encode()), *headers],
            timeout=SEND_TIMEOUT, allow_private=allow_private,
        )  # fmt: skip
    except Exception as exc:
        raise DeliveryFailed(classify(exc)) from exc
    if not 200 <= status < 300:
        raise DeliveryFailed(f"HTTP {status}")


def send(channel, message: dict, *, secret: str | None, config) -> None:
    """Deliver `message` (server.alerts.sending.message) on the channel; raises DeliveryFailed."""
    allow_private = config.MONITOR_ALLOW_PRIVATE
    if channel.kind == "webhook":
        body = json.dumps(message, separators=(",", ":"), default=str).encode()
        headers = [(b"X-Delivery-Id", str(message["delivery_id"]).encode())]
        if secret:
            headers.append((b"X-Signature", sign(secret, body).encode()))
        post_json(channel.target, body, headers, allow_private=allow_private)
    elif channel.kind == "slack":
        body = json.dumps({"text": message["text"]}).encode()
        post_json(channel.target, body, [], allow_private=allow_private)
    elif channel.kind == "email":
        if not config.SMTP_URL:
            raise DeliveryFailed("SMTP_URL is not set")
        try:
            send_mail(
                parse_smtp_url(config.SMTP_URL),
                config.SMTP_FROM or "api-analytics@localhost",
                channel.target,
                message["subject"],
                message["text"],
                allow_private=allow_private,
            )
        except Exception as exc:
            # smtplib's errors carry the server's reply, never our password.
            raise DeliveryFailed(f"smtp: {type(exc).__name__}: {exc}"[:300]) from exc
    else:
        raise DeliveryFailed(f"unknown channel kind {channel.kind}")


def new_salt() -> str:
    return secrets.token_hex(16)


def channel_secret(secret_key: str, salt: str) -> str:
    """A webhook channel's signing secret: derived from SECRET_KEY and the stored salt, so
    the database never holds it (rotating SECRET_KEY changes every channel's secret)."""
    return hmac.new(
        secret_key.encode(), b"alert-webhook:" + salt.encode(), hashlib.sha256
    ).hexdigest()


def sign(secret: str, body: bytes) -> str:
    """The X-Signature header's value for a webhook body."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
