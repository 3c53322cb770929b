"""FastAPI middleware: `app.add_middleware(Analytics, api_key=..., config=...)`.

A pure ASGI middleware (`api_analytics.asgi`); the user's mappers are functions of the
Starlette `Request`, which FastAPI's is.
"""

from __future__ import annotations

from dataclasses import dataclass

from starlette.requests import Request

from .asgi import ASGIAnalytics, ASGIApp, client_host
from .mappers import Mapper, no_user_id, reads
from .recorder import DEFAULT_SERVER_URL, Adapter, BaseConfig

__all__ = ["DEFAULT_SERVER_URL", "Analytics", "Config"]


@dataclass
class Config(BaseConfig):
    """Settings for `Analytics`; create it, then assign the attributes you need.

    privacy_level: 0 sends the client IP (stored), 1 sends it for the country lookup
        only (the server discards it), 2 never reads or sends it.
    server_url: the API Analytics server; default `$API_ANALYTICS_URL`, else
        http://localhost:8000.
    get_path, get_ip_address, get_hostname, get_user_agent, get_user_id: functions of
        the Starlette `Request`, called once the response has been sent, returning a
        string or None.
    flush_interval: seconds between background sends.
    max_batch: records per POST; a full batch is sent without waiting for the interval.
    max_buffer: records kept while the server is unreachable; beyond it the oldest go.
    shutdown_timeout: seconds to wait for the final flush at shutdown.
    request_timeout: seconds for one POST to the server.
    retry_backoff, retry_backoff_max: first and largest wait between retries.
    capture_exceptions, log_request_headers, log_request_body, log_response_headers,
    log_response_body, body_max_bytes, body_sample_rate, mask_headers, mask_body_fields,
    mask_query_params, mask_body, get_consumer: what a row carries besides its nine
    fields (README, "Errors, payloads and consumers").
    app_version: your app's version; reported as a deploy at the first send and when it
        changes (README, "What is sent").
    """

    get_path: Mapper[Request] = reads("scope", "path")
    get_ip_address: Mapper[Request] = client_host
    get_hostname: Mapper[Request] = reads("url.hostname")
    get_user_agent: Mapper[Request] = reads("headers", "user-agent")
    get_user_id: Mapper[Request] = no_user_id


class Analytics(ASGIAnalytics):
    """Logs every HTTP request of the wrapped app to an API Analytics server."""

    adapter = Adapter("FastAPI", Config)  # the Starlette adapter replaces it
    request_class = Request

    def __init__(self, app: ASGIApp, api_key: str = "", config: Config | None = None) -> None:
        super().__init__(app, self.adapter.recorder(api_key, config))
