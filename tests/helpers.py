"""Builders for ingest payloads shared by the tests."""

from __future__ import annotations

import gzip
import json
from datetime import UTC, datetime, timedelta

CHROME = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 "
    "(KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36"
)
IPHONE = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/17.0 Mobile/15E148 Safari/604.1"
)
GOOGLEBOT = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"


def row(**overrides) -> dict:
    base = {
        "hostname": "api.example.com",
        "ip_address": "8.8.8.8",
        "path": "/v1/users",
        "user_agent": CHROME,
        "method": "GET",
        "status": 200,
        "response_time": 12,
        "user_id": None,
        "created_at": datetime.now(UTC).isoformat(),
    }
    base.update(overrides)
    return base


def payload(key: str, rows: list[dict], privacy_level: int = 0, framework: str = "FastAPI"):
    return {
        "api_key": key,
        "framework": framework,
        "privacy_level": privacy_level,
        "requests": rows,
    }


def post_batch(client, key, rows, privacy_level=0, framework="FastAPI", path="/api/log-request"):
    return client.post(path, json=payload(key, rows, privacy_level, framework))


def post_gzip(client, body: bytes, path="/api/log-request"):
    return client.post(
        path,
        data=gzip.compress(body),
        headers={"Content-Type": "application/json", "Content-Encoding": "gzip"},
    )


def as_json_bytes(obj) -> bytes:
    return json.dumps(obj).encode()


def days_ago(n: float, hour: int = 12) -> str:
    moment = datetime.now(UTC).replace(hour=hour, minute=0, second=0, microsecond=0)
    return (moment - timedelta(days=n)).isoformat()


WEB_WRITE_FAILS = "injected: the web's write of the batch failed"


def web_write_fails(monkeypatch) -> None:
    """The web's own write of a batch fails (in this process), so the batch is staged
    for a worker: the fallback path, and how these tests get staged batches at all."""
    from server.ingest import store

    def fail(conn, rows):
        raise RuntimeError(WEB_WRITE_FAILS)

    monkeypatch.setattr(store, "write", fail)
