"""Sanic, served by its own server (`sanic tests.middleware.apps.sanic_app:app`)."""

import asyncio

from api_analytics.sanic import Config, add_middleware
from sanic import Sanic
from sanic.response import json

from tests.middleware.apps import STREAM_PAUSE, api_key, configure

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
