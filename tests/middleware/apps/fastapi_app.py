"""FastAPI with our middleware, for uvicorn, as the published README shows it."""

import asyncio

from api_analytics.fastapi import Analytics, Config
from fastapi import FastAPI, Request, Response
from fastapi.responses import StreamingResponse
from pydantic import BaseModel

from tests.middleware.apps import (
    BINARY,
    SET_COOKIE,
    STREAM_PAUSE,
    api_key,
    configure,
    echo_body,
)

app = FastAPI()
app.add_middleware(Analytics, api_key=api_key(), config=configure(Config()))  # Add middleware


class Item(BaseModel):
    price: int


class Order(BaseModel):
    items: list[Item]


@app.get("/items/{item}")
async def item(item: int):
    return {"item": item}


@app.get("/stream")
async def stream():
    async def chunks():
        yield b"first\n"
        await asyncio.sleep(STREAM_PAUSE)
        yield b"second\n"

    return StreamingResponse(chunks(), media_type="text/plain")


@app.get("/boom")
async def boom():
    raise RuntimeError("boom")


@app.post("/orders")
async def orders(order: Order):
    return {"ok": True}


@app.post("/echo")
async def echo(request: Request):
    body = echo_body(await request.body())
    return Response(body, media_type="application/json", headers={"Set-Cookie": SET_COOKIE})


@app.get("/binary")
async def binary():
    return Response(BINARY, media_type="application/octet-stream")
