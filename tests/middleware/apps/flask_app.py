"""Flask, as the published README shows it, plus the test endpoints."""

import os
import time

from api_analytics.flask import Config, add_middleware
from flask import Flask, Response

from tests.middleware.apps import STREAM_PAUSE, api_key, configure

app = Flask(__name__)
# PROPAGATE=1: Flask lets exceptions through (as in debug and testing) for the WSGI layer.
app.config["PROPAGATE_EXCEPTIONS"] = os.environ.get("PROPAGATE") == "1"
config = configure(Config())
add_middleware(app, api_key(), config)  # Add middleware


@app.get("/items/<int:item>")
def item(item):
    return {"item": item}


@app.get("/stream")
def stream():
    def chunks():
        yield b"first\n"
        time.sleep(STREAM_PAUSE)
        yield b"second\n"

    return Response(chunks(), mimetype="text/plain")


@app.get("/boom")
def boom():
    raise RuntimeError("boom")


@app.get("/file")
def file():
    from flask import send_file

    return send_file(__file__, mimetype="text/plain")
