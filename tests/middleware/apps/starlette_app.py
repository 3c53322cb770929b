"""Starlette with our middleware, for uvicorn."""

import asyncio

from api_analytics.starlette import Analytics, Config
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from tests.middleware.apps import (
    BINARY,
    ORDERS_422,
    SET_COOKIE,
    STREAM_PAUSE,
    api_key,
    configure,
    echo_body,
)


async def item(request):
    return JSONResponse({"item": request.path_params["item"]})


async def stream(request):
    async def chunks():
        yield b"first\n"
        await asyncio.sleep(STREAM_PAUSE)
        yield b"second\n"

    return StreamingResponse(chunks(), media_type="text/plain")


async def boom(request):
    raise RuntimeError("boom")


async def orders(request):
    return JSONResponse(ORDERS_422, status_code=422)


async def echo(request):
    body = echo_body(await request.body())
    return Response(body, media_type="application/json", headers={"Set-Cookie": SET_COOKIE})


async def binary(request):
    return Response(BINARY, media_type="application/octet-stream")


app = Starlette(
    routes=[
        Route("/items/{item:int}", item),
        Route("/stream", stream),
        Route("/boom", boom),
        Route("/orders", orders, methods=["POST"]),
        Route("/echo", echo, methods=["POST"]),
        Route("/binary", binary),
    ],
    middleware=[Middleware(Analytics, api_key=api_key(), config=configure(Config()))],
)
