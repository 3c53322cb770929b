"""Starlette with our middleware, for uvicorn."""

import asyncio

from api_analytics.starlette import Analytics, Config
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.responses import JSONResponse, StreamingResponse
from starlette.routing import Route

from tests.middleware.apps import STREAM_PAUSE, api_key, configure


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


app = Starlette(
    routes=[
        Route("/items/{item:int}", item),
        Route("/stream", stream),
        Route("/boom", boom),
    ],
    middleware=[Middleware(Analytics, api_key=api_key(), config=configure(Config()))],
)
