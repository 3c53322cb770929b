"""aiohttp under `web.run_app` (which stops on SIGINT and SIGTERM).

`python -m tests.middleware.apps.aiohttp_app PORT`
"""

import asyncio
import sys

from aiohttp import web
from api_analytics.aiohttp import Config, add_middleware

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
    return web.json_response({"item": int(request.match_info["item"])})


async def stream(request):
    response = web.StreamResponse(headers={"Content-Type": "text/plain"})
    await response.prepare(request)
    await response.write(b"first\n")
    await asyncio.sleep(STREAM_PAUSE)
    await response.write(b"second\n")
    await response.write_eof()
    return response


async def boom(request):
    raise RuntimeError("boom")


async def orders(request):
    return web.json_response(ORDERS_422, status=422)


async def echo(request):
    body = echo_body(await request.read())
    return web.Response(
        body=body, content_type="application/json", headers={"Set-Cookie": SET_COOKIE}
    )


async def binary(request):
    return web.Response(body=BINARY, content_type="application/octet-stream")


app = web.Application()
add_middleware(app, api_key(), configure(Config()))  # Add middleware
app.router.add_get(r"/items/{item:\d+}", item)
app.router.add_get("/stream", stream)
app.router.add_get("/boom", boom)
app.router.add_post("/orders", orders)
app.router.add_post("/echo", echo)
app.router.add_get("/binary", binary)

if __name__ == "__main__":
    web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), print=lambda *a: print("serving"))
