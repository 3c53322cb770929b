"""Apps of every framework with our middleware, served by real servers in the tests.

Each module is written as the published package's README shows for its framework; the
settings come from the environment (`configure`): COLLECTOR_URL (the server), API_KEY,
FLUSH_INTERVAL (300 by default, so only the shutdown flush delivers), APP_VERSION,
MAX_BUFFER, MAPPERS=1 for a user-id mapper reading X-User and a user-agent mapper that
raises on X-Fail, CONSUMER (`header`: a consumer from X-Consumer; `raise`: a
get_consumer that raises) and CAPTURE=1 to log both sides of every exchange, with
BODY_MAX, SAMPLE and a `mask_body` that rewrites "rewrite-me" and drops a body holding
"drop-me".
Every app answers /items/<n>, /stream (a first chunk, then 0.3 s later a second), /boom
(raises RuntimeError), POST /orders (a body {"items": [{"price": int}]}, checked by the
framework's own validation where it has one, else answered 422 as FastAPI would), POST
/echo (the request body back as JSON, `echo_body`, with a Set-Cookie), /binary (256
bytes of application/octet-stream) and 404 for anything else.
"""

from __future__ import annotations

import json
import os
from typing import Any

STREAM_PAUSE = 0.3
STREAM_BODY = b"first\nsecond\n"
BINARY = bytes(range(256))
SET_COOKIE = "session=sekret-set-cookie"
# The answer of a framework without validation of its own, as FastAPI gives it.
ORDERS_422 = {"detail": [{"loc": ["body", "items", 0, "price"], "type": "int_parsing",
                          "msg": "Input should be a valid integer"}]}  # fmt: skip
ORDERS_SCHEMA = {
    "type": "object",
    "properties": {
        "items": {
            "type": "array",
            "items": {"type": "object", "properties": {"price": {"type": "integer"}},
                      "required": ["price"]},
        }
    },
    "required": ["items"],
}  # fmt: skip


def echo_body(raw: bytes) -> bytes:
    """What /echo answers: the JSON it was sent, or the size of anything else."""
    echo = json.loads(raw) if raw.startswith(b"{") else None
    return json.dumps({"echo": echo, "size": len(raw)}).encode()


def mask_body(kind: str, body: str) -> str | None:
    if "drop-me" in body:
        return None
    return body.replace("rewrite-me", "rewritten")


def configure(config: Any, headers: Any = None) -> Any:
    """Point a `Config` at the test's server; `headers(request)` reads a request's headers
    (frameworks name them differently)."""
    config.server_url = os.environ["COLLECTOR_URL"]
    config.flush_interval = float(os.environ.get("FLUSH_INTERVAL", "300"))
    config.retry_backoff = 0.05
    config.retry_backoff_max = 0.2
    config.shutdown_timeout = 5.0
    config.privacy_level = int(os.environ.get("PRIVACY", "0"))
    config.app_version = os.environ.get("APP_VERSION")  # None: no deploy reported
    config.max_buffer = int(os.environ.get("MAX_BUFFER", "100000"))
    if os.environ.get("MAPPERS") == "1":
        read = headers or (lambda request: request.headers)
        config.get_user_id = lambda request: read(request).get("X-User")

        def get_user_agent(request: Any) -> str | None:
            if read(request).get("X-Fail"):
                raise KeyError("a failing mapper")
            return read(request).get("User-Agent")

        config.get_user_agent = get_user_agent
    consumer = os.environ.get("CONSUMER")
    if consumer == "header":
        read = headers or (lambda request: request.headers)

        def get_consumer(request: Any) -> dict | None:
            found = read(request).get("X-Consumer")
            return {"id": found, "name": "Acme Inc", "group": "gold"} if found else None

        config.get_consumer = get_consumer
    elif consumer == "raise":

        def get_consumer(request: Any) -> None:
            raise ValueError("a failing consumer mapper")

        config.get_consumer = get_consumer
    if os.environ.get("CAPTURE") == "1":
        config.log_request_headers = config.log_request_body = True
        config.log_response_headers = config.log_response_body = True
        config.body_max_bytes = int(os.environ.get("BODY_MAX", "16384"))
        config.body_sample_rate = float(os.environ.get("SAMPLE", "1"))
        config.mask_body = mask_body
    return config


def api_key() -> str:
    return os.environ.get("API_KEY", "test-key")
