"""Litestar with our middleware as a plugin (`app`) and as plain middleware (`app_middleware`)."""

import asyncio

from api_analytics.litestar import Analytics, Config
from litestar import Litestar, get
from litestar.response import Stream

from tests.middleware.apps import STREAM_PAUSE, api_key, configure


@get("/items/{item:int}")
async def item(item: int) -> dict:
    return {"item": item}


@get("/stream")
async def stream() -> Stream:
    async def chunks():
        yield b"first\n"
        await asyncio.sleep(STREAM_PAUSE)
        yield b"second\n"

    return Stream(chunks(), media_type="text/plain")


@get("/boom")
async def boom() -> None:
    raise RuntimeError("boom")


handlers = [item, stream, boom]
app = Litestar(route_handlers=handlers, plugins=[Analytics(api_key(), configure(Config()))])
app_middleware = Litestar(
    route_handlers=handlers, middleware=[Analytics(api_key(), configure(Config()))]
)
