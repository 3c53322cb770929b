"""Sanic, served by its own server (`sanic tests.middleware.apps.sanic_app:app`)."""

import asyncio

from api_analytics.sanic import Config, add_middleware
from sanic import Sanic
from sanic.response import json, raw

from tests.middleware.apps import (
    BINARY,
    ORDERS_422,
    SET_COOKIE,
    STREAM_PAUSE,
    api_key,
    configure,
    echo_body,
)

app = Sanic("analytics_test")
add_middleware(app, api_key(), configure(Config()))  # Add middleware


@app.get("/items/<item:int>")
async def item(request, item):
    return json({"item": item})


@app.get("/stream")
async def stream(request):
    response = await request.respond(content_type="text/plain")
    await response.send(b"first\n")
    await asyncio.sleep(STREAM_PAUSE)
    await response.send(b"second\n")
    await response.eof()


@app.get("/boom")
async def boom(request):
    raise RuntimeError("boom")


@app.post("/orders")
async def orders(request):
    return json(ORDERS_422, status=422)


@app.post("/echo")
async def echo(request):
    body = echo_body(request.body)
    return raw(body, content_type="application/json", headers={"Set-Cookie": SET_COOKIE})


@app.get("/binary")
async def binary(request):
    return raw(BINARY, content_type="application/octet-stream")
