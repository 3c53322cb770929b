"""aiohttp under `web.run_app` (which stops on SIGINT and SIGTERM).

`python -m tests.middleware.apps.aiohttp_app PORT`
"""

import asyncio
import sys

from aiohttp import web
from api_analytics.aiohttp import Config, add_middleware

from tests.middleware.apps import STREAM_PAUSE, api_key, configure


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


app = web.Application()
add_middleware(app, api_key(), configure(Config()))  # Add middleware
app.router.add_get(r"/items/{item:\d+}", item)
app.router.add_get("/stream", stream)
app.router.add_get("/boom", boom)

if __name__ == "__main__":
    web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), print=lambda *a: print("serving"))
