"""Falcon middleware: `falcon.App(middleware=[Analytics(api_key, config)])`, and the same
in `falcon.asgi.App`.

The clock runs from `process_request` (before routing, so a 404 is logged too) to
`process_response`, after Falcon's error handlers set the status of a failed request.
On `falcon.asgi.App` the final flush runs at lifespan shutdown (`process_shutdown`);
a WSGI app flushes at interpreter exit (a gunicorn worker exits after SIGTERM).
"""

from __future__ import annotations

from dataclasses import dataclass
from time import perf_counter
from typing import Any

import falcon

from .mappers import Mapper, no_user_id, reads
from .recorder import DEFAULT_SERVER_URL, Adapter, BaseConfig

__all__ = ["DEFAULT_SERVER_URL", "Analytics", "Config"]


def default_get_user_agent(req: falcon.Request) -> str | None:
    return req.get_header("User-Agent")


@dataclass
class Config(BaseConfig):
    """Settings for `Analytics`: the fields of `api_analytics.fastapi.Config`, with
    mappers that are functions of the Falcon `Request` (WSGI or ASGI)."""

    get_path: Mapper[falcon.Request] = reads("path")
    get_ip_address: Mapper[falcon.Request] = reads("remote_addr")
    get_hostname: Mapper[falcon.Request] = reads("host")
    get_user_agent: Mapper[falcon.Request] = default_get_user_agent
    get_user_id: Mapper[falcon.Request] = no_user_id


_ADAPTER = Adapter("Falcon", Config)


class Analytics:
    """A Falcon middleware component logging every request to an API Analytics server.

    Misconfigured (no key, a bad setting), it logs one error and does nothing.
    """

    def __init__(self, api_key: str, config: Config | None = None) -> None:
        self._recorder = _ADAPTER.recorder(api_key, config)

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
            ip = req.remote_addr if recorder.privacy != 2 else None
            agent = req.get_header("User-Agent")
            # resp.status is an int, a status line or an HTTPStatus: the flusher reads all.
            recorder.record(req, started, finished, resp.status, req.path, host, agent, ip)
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
            await self._recorder.close_in_thread()
