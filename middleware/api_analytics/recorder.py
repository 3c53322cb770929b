"""What every framework adapter shares: its set-up, the client, and recording a request.

Each adapter (`api_analytics.flask`, `.django`, ...) reads the few request values it needs
straight from its framework's request, and applies the user's mappers (`Recorder.map`)
only when there are any: the ASGI and WSGI request paths inline this, the adapters that
hook into their framework hand what they read to `Recorder.record`. Everything else
happens in the flusher thread of `api_analytics.core`.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from operator import attrgetter
from typing import Any

from .capture import DEFAULT_BODY_MAX, Extra, Settings, with_consumer
from .core import Client
from .deploys import check_version
from .mappers import custom_mappers, default_mappers, no_consumer

logger = logging.getLogger(__name__)

DEFAULT_SERVER_URL = "http://localhost:8000"
DELIVERY_SETTINGS = (
    "flush_interval", "max_batch", "max_buffer", "shutdown_timeout", "request_timeout",
    "retry_backoff", "retry_backoff_max",
)  # fmt: skip


def default_server_url() -> str:
    return os.environ.get("API_ANALYTICS_URL") or DEFAULT_SERVER_URL


@dataclass
class BaseConfig:
    """The settings every framework's `Config` has; each adds its five mappers (the
    sixth, `get_consumer`, returns a str or a dict and is declared here once).

    The delivery settings are keyword-only, so a framework's `Config` takes its fields
    positionally in the published package's order: privacy_level, server_url, then the
    mappers.
    """

    privacy_level: int = 0
    server_url: str = field(default_factory=default_server_url)
    flush_interval: float = field(default=5.0, kw_only=True)
    max_batch: int = field(default=1000, kw_only=True)
    max_buffer: int = field(default=100_000, kw_only=True)
    shutdown_timeout: float = field(default=5.0, kw_only=True)
    request_timeout: float = field(default=10.0, kw_only=True)
    retry_backoff: float = field(default=1.0, kw_only=True)
    retry_backoff_max: float = field(default=60.0, kw_only=True)
    # What a row carries besides its nine fields (docs/capture.md).
    capture_exceptions: bool = field(default=True, kw_only=True)
    log_request_headers: bool = field(default=False, kw_only=True)
    log_request_body: bool = field(default=False, kw_only=True)
    log_response_headers: bool = field(default=False, kw_only=True)
    log_response_body: bool = field(default=False, kw_only=True)
    body_max_bytes: int = field(default=DEFAULT_BODY_MAX, kw_only=True)
    body_sample_rate: float = field(default=1.0, kw_only=True)
    mask_headers: list[str] = field(default_factory=list, kw_only=True)
    mask_body_fields: list[str] = field(default_factory=list, kw_only=True)
    mask_query_params: list[str] = field(default_factory=list, kw_only=True)
    mask_body: Callable[[str, str], str | None] | None = field(default=None, kw_only=True)
    get_consumer: Callable[[Any], str | dict | None] = field(default=no_consumer, kw_only=True)
    # The app's version: reported as a deploy at the first send and when it changes
    # (api_analytics.deploys).
    app_version: str | None = field(default=None, kw_only=True)


class Adapter:
    """A framework module as the core sees it: the name it reports to the server, and its
    `Config` class with that class's default mappers."""

    __slots__ = ("framework", "config_class", "defaults")

    def __init__(self, framework: str, config_class: type) -> None:
        self.framework = framework
        self.config_class = config_class
        self.defaults = default_mappers(config_class)

    def recorder(
        self, api_key: Any, config: Any = None, *, per_request: bool = False
    ) -> Recorder | None:
        """`Recorder.create` for the user's key and `Config` (None: the default one)."""
        if config is None:
            config = self.config_class()
        return Recorder.create(
            api_key, config, self.framework, self.defaults, per_request=per_request
        )


class Recorder:
    """One adapter's checked settings, its client, and the mappers the user set.

    Raises ValueError (or TypeError/AttributeError for a config of the wrong shape) on
    misconfiguration; `create` turns that into one logged error and None.
    """

    def __init__(
        self, api_key: Any, config: Any, framework: str, defaults: dict[str, Callable]
    ) -> None:
        if not isinstance(api_key, str) or not api_key.strip():
            raise ValueError("api_key is empty; pass your API key")
        privacy = config.privacy_level
        if isinstance(privacy, bool) or privacy not in (0, 1, 2):
            raise ValueError("privacy_level must be 0, 1 or 2")
        if not isinstance(config.server_url, str):
            raise ValueError("server_url must be a string")
        check_version(getattr(config, "app_version", None))
        self.privacy: int = privacy
        self.custom = custom_mappers(config, defaults, privacy)
        self.settings = Settings(config)
        # Read on the request path: None unless a part of the exchange is logged.
        self.capture: Settings | None = self.settings if self.settings.capturing else None
        settings = {name: getattr(config, name) for name in DELIVERY_SETTINGS}
        self.client = shared_client(api_key, config.server_url, privacy, framework, settings)
        self.client.follow_version(config)
        self.buffer = self.client._buffer
        # Per client, not per Recorder: a Tornado handler builds one for every request.
        self.warned: set[str] = _warned.setdefault(id(self.client), set())

    @classmethod
    def create(
        cls,
        api_key: Any,
        config: Any,
        framework: str,
        defaults: dict[str, Callable],
        *,
        per_request: bool = False,
    ) -> Recorder | None:
        """A Recorder, or None (and one logged error) when the settings are wrong.

        The host app must keep serving: a misconfigured adapter passes every request
        through untouched. `per_request`: the adapter is built for every request (a
        Tornado handler), so the same error is logged once per process, not each time.
        """
        try:
            return cls(api_key, config, framework, defaults)
        except (ValueError, TypeError, AttributeError) as exc:
            message = f"{framework}: {exc}"
            if per_request:
                if message in _logged:
                    return None
                _logged.add(message)
            logger.error("API Analytics disabled (%s)", message)
            return None

    # ----------------------------------------------------------------- request path

    def add(self, record: tuple) -> None:
        """Buffer one record (the request path's only cost besides reading the request)."""
        buffer = self.buffer
        if len(buffer) >= self.client._slow_at:  # see Client.add
            self.client._add_slowly(buffer)
        buffer.append(record)

    def record(
        self, request: Any, started: float, finished: float, status: Any,
        path: Any, host: Any, agent: Any, ip: Any, extra: Extra | None = None,
    ) -> None:  # fmt: skip
        """Buffer one request from an adapter's hook, given the defaults it read: path,
        hostname (the Host header's bytes, which the flusher parses, or a str kept as it
        is), user agent and client address, and what it captured (`extra`). The user's
        mappers, if any, replace them.

        The hook reads and calls this inside its own `try`: the host app never sees an
        exception of the recording.
        """
        user_id = None
        if self.custom:
            path, host, agent, ip, user_id, extra = self.map(request, path, host, agent, ip, extra)
        buffer = self.buffer
        # `add`, inlined: buffering the record costs no call beyond this one.
        if len(buffer) >= self.client._slow_at:
            self.client._add_slowly(buffer)
        buffer.append(
            (started, finished, request.method, path, status, host, agent, ip, user_id, extra)
        )

    async def close_in_thread(self) -> None:
        """The final flush, from an asyncio event loop it must not block."""
        await asyncio.get_running_loop().run_in_executor(None, self.client.close)

    def map(
        self, request: Any, path: Any, host: Any, agent: Any, ip: Any, extra: Extra | None = None
    ) -> tuple:
        """Apply the user's mappers; a failing one nulls its field and warns once.

        Returns (path, hostname, user_agent, ip_address, user_id, extra): `extra` (made if
        needed) holding the consumer, if `get_consumer` named one.
        """
        custom = self.custom
        user_id = None
        if "get_path" in custom:
            # The server refuses a row without a path: fall back to the URL path.
            path = self.call(custom["get_path"], "get_path", request) or path
        if "get_hostname" in custom:
            host = self.call(custom["get_hostname"], "get_hostname", request)
        if "get_user_agent" in custom:
            agent = self.call(custom["get_user_agent"], "get_user_agent", request)
        if "get_ip_address" in custom:
            ip = self.call(custom["get_ip_address"], "get_ip_address", request)
        if "get_user_id" in custom:
            user_id = self.call(custom["get_user_id"], "get_user_id", request)
        if "get_consumer" in custom:
            consumer = self.call(custom["get_consumer"], "get_consumer", request, dict)
            extra = with_consumer(extra, self.settings, consumer)
        return path, host, agent, ip, user_id, extra

    def call(self, mapper: Callable, name: str, request: Any, also: type | None = None) -> Any:
        """The mapper's string (or `also`: a dict for get_consumer), else None."""
        try:
            value = mapper(request)
        except Exception as exc:
            # Only the exception's type: its message could hold an IP or a user id.
            self.warn_once(name, f"raised {type(exc).__name__}")
            return None
        if value is None or type(value) is str:
            return value
        if isinstance(value, str):
            return str(value)
        if also is not None and isinstance(value, also):
            return also(value)  # a copy: the flusher reads it later
        self.warn_once(name, f"returned {type(value).__name__}, not a string")
        return None

    def warn_once(self, what: str, reason: str) -> None:
        if what in self.warned:
            return
        self.warned.add(what)
        logger.warning(
            "API Analytics: %s %s; the field is sent as null for this request and "
            "further failures of it are not logged",
            what,
            reason,
        )


def header_recorder(ip_attribute: str) -> Callable[..., None]:
    """The hook body of a framework whose request has `path`, case-insensitive `headers`
    with values decoded from UTF-8 with surrogateescape (aiohttp, Sanic), and the client
    address in the attribute `ip_attribute`: `record(recorder, request, started,
    finished, status, extra=None)`."""
    get_ip = attrgetter(ip_attribute)

    def record(
        recorder: Recorder, request: Any, started: float, finished: float, status: Any,
        extra: Extra | None = None,
    ) -> None:  # fmt: skip
        try:
            headers = request.headers
            host = headers.get("Host")
            if host is not None:
                host = host.encode("utf-8", "surrogateescape")  # its bytes: the flusher parses them
            ip = get_ip(request) if recorder.privacy != 2 else None
            agent = headers.get("User-Agent")
            recorder.record(
                request, started, finished, status, request.path, host, agent, ip, extra
            )
        except Exception as exc:  # never let recording break the host request
            recorder.warn_once("recording the request", type(exc).__name__)

    return record


_clients: dict[tuple, Client] = {}
_clients_lock = threading.Lock()
_logged: set[str] = set()  # errors of per-request adapters, logged once
_warned: dict[int, set[str]] = {}  # the failures warned about, by id of their client


def shared_client(
    api_key: str, server_url: str, privacy: int, framework: str, settings: dict[str, Any]
) -> Client:
    """The process's client for these settings, created on first use.

    Adapters that are built per request (a Tornado handler) or once per route share one
    buffer and one flusher thread for the same key and server, not one each.
    """
    key = (api_key, server_url, privacy, framework, *settings.values())
    client = _clients.get(key)
    if client is None:
        with _clients_lock:
            client = _clients.get(key)
            if client is None:
                client = Client(api_key, server_url, privacy, framework=framework, **settings)
                _clients[key] = client
    return client
