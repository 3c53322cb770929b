"""Flask, as the published README shows it, plus the test endpoints."""

import os
import time

import marshmallow as ma
from api_analytics.flask import Config, add_middleware
from flask import Flask, Response, request
from flask_smorest import Api, Blueprint

from tests.middleware.apps import BINARY, SET_COOKIE, STREAM_PAUSE, api_key, configure, echo_body

app = Flask(__name__)
# PROPAGATE=1: Flask lets exceptions through (as in debug and testing) for the WSGI layer.
app.config["PROPAGATE_EXCEPTIONS"] = os.environ.get("PROPAGATE") == "1"
app.config.update(API_TITLE="test", API_VERSION="1", OPENAPI_VERSION="3.0.2")
config = configure(Config())
add_middleware(app, api_key(), config)  # Add middleware
api = Api(app)
orders_blueprint = Blueprint("orders", __name__)


class ItemSchema(ma.Schema):
    price = ma.fields.Integer(required=True)


class OrderSchema(ma.Schema):
    items = ma.fields.List(ma.fields.Nested(ItemSchema), required=True)


@orders_blueprint.post("/orders")
@orders_blueprint.arguments(OrderSchema)
def orders(order):
    return {"ok": True}


api.register_blueprint(orders_blueprint)


@app.post("/echo")
def echo():
    body = echo_body(request.get_data())
    return Response(body, mimetype="application/json", headers={"Set-Cookie": SET_COOKIE})


@app.get("/binary")
def binary():
    return Response(BINARY, mimetype="application/octet-stream")


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
