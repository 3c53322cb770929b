"""Tornado on its own loop, handlers as the published README shows them.

`python -m tests.middleware.apps.tornado_app PORT`; Ctrl-C (SIGINT) stops it.
"""

import asyncio
import sys

from api_analytics.tornado import Analytics, Config
from tornado.web import Application, HTTPError

from tests.middleware.apps import (
    BINARY,
    ORDERS_422,
    SET_COOKIE,
    STREAM_PAUSE,
    api_key,
    configure,
    echo_body,
)

config = configure(Config())


class ItemHandler(Analytics):
    def __init__(self, app, res):
        super().__init__(app, res, api_key(), config)  # Provide api key

    def get(self, item):
        self.write({"item": int(item)})


class StreamHandler(Analytics):
    def __init__(self, app, res):
        super().__init__(app, res, api_key(), config)

    async def get(self):
        self.write(b"first\n")
        await self.flush()
        await asyncio.sleep(STREAM_PAUSE)
        self.write(b"second\n")


class BoomHandler(Analytics):
    def __init__(self, app, res):
        super().__init__(app, res, api_key(), config)

    def get(self):
        raise RuntimeError("boom")


class OrdersHandler(Analytics):
    def __init__(self, app, res):
        super().__init__(app, res, api_key(), config)

    def post(self):
        self.set_status(422)
        self.write(ORDERS_422)


class EchoHandler(Analytics):
    def __init__(self, app, res):
        super().__init__(app, res, api_key(), config)

    def post(self):
        self.set_header("Content-Type", "application/json")
        self.set_header("Set-Cookie", SET_COOKIE)
        self.write(echo_body(self.request.body))


class BinaryHandler(Analytics):
    def __init__(self, app, res):
        super().__init__(app, res, api_key(), config)

    def get(self):
        self.set_header("Content-Type", "application/octet-stream")
        self.write(BINARY)


class NotFoundHandler(Analytics):
    """Tornado's default_handler_class: unknown paths are logged as 404 too."""

    def __init__(self, app, res):
        super().__init__(app, res, api_key(), config)

    def prepare(self):
        raise HTTPError(404)


def make_app():
    return Application(
        [
            (r"/items/(\d+)", ItemHandler),
            (r"/stream", StreamHandler),
            (r"/boom", BoomHandler),
            (r"/orders", OrdersHandler),
            (r"/echo", EchoHandler),
            (r"/binary", BinaryHandler),
        ],
        default_handler_class=NotFoundHandler,
    )


async def main(port):
    make_app().listen(port, "127.0.0.1")
    print("serving", flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1])))
