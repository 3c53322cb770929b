"""Falcon middleware: `falcon.App(middleware=[Analytics(api_key, config)])`, and the same
in `falcon.asgi.App`.

The clock runs from `process_request` (before routing, so a 404 is logged too) to
`process_response`, after Falcon's error handlers set the status of a failed request.
On `falcon.asgi.App` the final flush runs at lifespan shutdown (`process_shutdown`);
a WSGI app flushes at interpreter exit (a gunicorn worker exits after SIGTERM).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from time import perf_counter
from typing import Any

import falcon

from .recorder import DEFAULT_SERVER_URL, BaseConfig, Recorder, default_mappers

__all__ = ["DEFAULT_SERVER_URL", "Analytics", "Config"]

FRAMEWORK = "Falcon"

Mapper = Callable[[falcon.Request], str | None]


def default_get_path(req: falcon.Request) -> str | None:
    return req.path


def default_get_ip_address(req: falcon.Request) -> str | None:
    return req.remote_addr


def default_get_hostname(req: falcon.Request) -> str | None:
    return req.host


def default_get_user_agent(req: falcon.Request) -> str | None:
    return req.get_header("User-Agent")


def default_get_user_id(req: falcon.Request) -> str | None:
    return None


@dataclass
class Config(BaseConfig):
    """Settings for `Analytics`: the fields of `api_analytics.fastapi.Config`, with
    mappers that are functions of the Falcon `Request` (WSGI or ASGI)."""

    get_path: Mapper = default_get_path
    get_ip_address: Mapper = default_get_ip_address
    get_hostname: Mapper = default_get_hostname
    get_user_agent: Mapper = default_get_user_agent
    get_user_id: Mapper = default_get_user_id


_DEFAULTS = default_mappers(Config)


class Analytics:
    """A Falcon middleware component logging every request to an API Analytics server.

    Misconfigured (no key, a bad setting), it logs one error and does nothing.
    """

    def __init__(self, api_key: str, config: Config | None = None) -> None:
        config = Config() if config is None else config
        self._recorder = Recorder.create(api_key, config, FRAMEWORK, _DEFAULTS)

    def process_request(self, req: falcon.Request, resp: falcon.Response) -> None:
        req.context._api_analytics_started = perf_counter()

    def process_response(
        self, req: falcon.Request, resp: falcon.Response, resource: Any, req_succeeded: bool
    ) -> None:
        finished = perf_counter()
        recorder = self._recorder
        if recorder is None:
            return
        try:
            started = getattr(req.context, "_api_analytics_started", finished)
            host = req.get_header("Host")
            if host is not None:
                host = host.encode("latin-1", "replace")  # the flusher parses the header
            path = req.path
            agent = req.get_header("User-Agent")
            ip = req.remote_addr if recorder.privacy != 2 else None
            user_id = None
            if recorder.custom:
                path, host, agent, ip, user_id = recorder.map(req, path, host, agent, ip)
            # resp.status is an int, a status line or an HTTPStatus: the flusher reads all.
            recorder.add(
                (started, finished, req.method, path, resp.status, host, agent, ip, user_id)
            )
        except Exception as exc:  # never let recording break the host request
            recorder.warn_once("recording the request", type(exc).__name__)

    # falcon.asgi.App calls the *_async versions.
    async def process_request_async(self, req: falcon.Request, resp: falcon.Response) -> None:
        self.process_request(req, resp)

    async def process_response_async(
        self, req: falcon.Request, resp: falcon.Response, resource: Any, req_succeeded: bool
    ) -> None:
        self.process_response(req, resp, resource, req_succeeded)

    async def process_shutdown(self, scope: dict, event: dict) -> None:
        if self._recorder is not None:
            client = self._recorder.client
            await asyncio.get_running_loop().run_in_executor(None, client.close)
