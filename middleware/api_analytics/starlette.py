"""Starlette middleware: `app.add_middleware(Analytics, api_key=..., config=...)`, or
`Middleware(Analytics, api_key=..., config=...)` in `Starlette(middleware=[...])`.

The FastAPI adapter is already pure ASGI on Starlette's `Request`: this is it, sending
"Starlette" as the framework.
"""

from __future__ import annotations

from dataclasses import dataclass

from . import fastapi
from .recorder import DEFAULT_SERVER_URL, Adapter

__all__ = ["DEFAULT_SERVER_URL", "Analytics", "Config"]


@dataclass
class Config(fastapi.Config):
    """Settings for `Analytics`: the same fields as `api_analytics.fastapi.Config`
    (mappers are functions of the Starlette `Request`)."""


class Analytics(fastapi.Analytics):
    """Logs every HTTP request of the wrapped Starlette app to an API Analytics server."""

    adapter = Adapter("Starlette", Config)
