"""Apps of every framework with our middleware, served by real servers in the tests.

Each module is written as the published package's README shows for its framework; the
settings come from the environment (`configure`): COLLECTOR_URL (the server), API_KEY,
FLUSH_INTERVAL (300 by default, so only the shutdown flush delivers), and MAPPERS=1 for
a user-id mapper reading X-User and a user-agent mapper that raises on X-Fail.
Every app answers /items/<n>, /stream (a first chunk, then 0.3 s later a second), /boom
(raises RuntimeError) and 404 for anything else.
"""

from __future__ import annotations

import os
from typing import Any

STREAM_PAUSE = 0.3
STREAM_BODY = b"first\nsecond\n"


def configure(config: Any, headers: Any = None) -> Any:
    """Point a `Config` at the test's server; `headers(request)` reads a request's headers
    (frameworks name them differently)."""
    config.server_url = os.environ["COLLECTOR_URL"]
    config.flush_interval = float(os.environ.get("FLUSH_INTERVAL", "300"))
    config.retry_backoff = 0.05
    config.retry_backoff_max = 0.2
    config.shutdown_timeout = 5.0
    config.privacy_level = int(os.environ.get("PRIVACY", "0"))
    if os.environ.get("MAPPERS") == "1":
        read = headers or (lambda request: request.headers)
        config.get_user_id = lambda request: read(request).get("X-User")

        def get_user_agent(request: Any) -> str | None:
            if read(request).get("X-Fail"):
                raise KeyError("a failing mapper")
            return read(request).get("User-Agent")

        config.get_user_agent = get_user_agent
    return config


def api_key() -> str:
    return os.environ.get("API_KEY", "test-key")
