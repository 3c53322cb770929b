"""Litestar with our middleware as a plugin (`app`) and as plain middleware (`app_middleware`)."""

import asyncio
from dataclasses import dataclass

from api_analytics.litestar import Analytics, Config
from litestar import Litestar, Request, Response, get, post
from litestar.response import Stream

from tests.middleware.apps import BINARY, SET_COOKIE, STREAM_PAUSE, api_key, configure, echo_body


@dataclass
class Item:
    price: int


@dataclass
class Order:
    items: list[Item]


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


@post("/orders", status_code=200)
async def orders(data: Order) -> dict:
    return {"ok": True}


@post("/echo", status_code=200)
async def echo(request: Request) -> Response:
    body = echo_body(await request.body())
    return Response(body, media_type="application/json", headers={"Set-Cookie": SET_COOKIE})


@get("/binary")
async def binary() -> Response:
    return Response(BINARY, media_type="application/octet-stream")


handlers = [item, stream, boom, orders, echo, binary]
app = Litestar(route_handlers=handlers, plugins=[Analytics(api_key(), configure(Config()))])
app_middleware = Litestar(
    route_handlers=handlers, middleware=[Analytics(api_key(), configure(Config()))]
)
