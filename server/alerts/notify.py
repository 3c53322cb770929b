"""Sending one notification to one channel: a signed webhook, a Slack text, an email.

Webhooks go through the uptime checks' guarded connections (worker.probe), so a channel
URL whose host turns private after it was accepted is refused at send time too. Errors
name what failed, never the URL (a Slack URL is itself a secret) or a password.
"""

from __future__ import annotations

import json

import httpcore

from server import urlguard
from server.alerts import sign
from server.smtp import parse_smtp_url, send_mail
from worker.probe import Deadline, GuardedBackend, _policy, classify, request_target

SEND_TIMEOUT = 10
USER_AGENT = "api-analytics-alerts/1.0"


class DeliveryFailed(Exception):
    """The channel did not take the notification; str() is what the attempt records."""


def post_json(url: str, body: bytes, headers: list, *, allow_private: bool) -> None:
    deadline = Deadline(SEND_TIMEOUT)
    pool = httpcore.ConnectionPool(
        ssl_context=httpcore.default_ssl_context(),
        network_backend=GuardedBackend(deadline, _policy(allow_private), urlguard.resolve),
        retries=0,
    )
    timeouts = dict.fromkeys(("connect", "read", "write", "pool"), float(SEND_TIMEOUT))
    try:
        with pool:
            response = pool.request(
                "POST",
                request_target(url),
                headers=[
                    (b"Content-Type", b"application/json"),
                    (b"User-Agent", USER_AGENT.encode()),
                    *headers,
                ],
                content=body,
                extensions={"timeout": timeouts},
            )
    except Exception as exc:
        raise DeliveryFailed(classify(exc)) from exc
    if not 200 <= response.status < 300:
        raise DeliveryFailed(f"HTTP {response.status}")


def send(channel, message: dict, *, secret: str | None, config) -> None:
    """Deliver `message` (worker.alerts.message) on the channel; raises DeliveryFailed."""
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
