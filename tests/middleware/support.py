"""Test helpers: a local stand-in for the API Analytics server, and real uvicorn servers.

Reusable outside this folder: `serve(app)` runs any ASGI app under uvicorn on a free
127.0.0.1 port, `demo_app(server_url, ...)` builds a FastAPI app with our middleware
pointed at any URL (a `Collector` here, the real Flask server in an end-to-end test).
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import json
import socket
import subprocess
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import uvicorn
from fastapi import BackgroundTasks, FastAPI, WebSocket
from fastapi.responses import StreamingResponse

Answer = tuple[int, dict[str, str], bytes]


def json_answer(status: int, body: Any, headers: dict[str, str] | None = None) -> Answer:
    return (
        status,
        {"Content-Type": "application/json", **(headers or {})},
        json.dumps(body).encode(),
    )


@dataclass
class Delivery:
    """One POST the collector received, decoded."""

    at: float
    path: str
    headers: dict[str, str]
    payload: Any
    status: int = 0
    raw: bytes = b""  # the body as received, decompressed: what left the client's process

    @property
    def rows(self) -> list[dict[str, Any]]:
        return self.payload.get("requests", []) if isinstance(self.payload, dict) else []


@dataclass
class Collector:
    """A real HTTP server on 127.0.0.1 that plays the ingest endpoint.

    `answers` is a queue of scripted answers (a tuple, or a function of the decoded
    payload returning one); once it is empty every POST gets 201. `down()` closes the
    listening socket so connections are refused; `up()` listens on the same port again.
    """

    answers: deque[Answer | Callable[[Any], Answer]] = field(default_factory=deque)
    deliveries: list[Delivery] = field(default_factory=list)
    port: int = 0
    _server: ThreadingHTTPServer | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def up(self) -> None:
        collector = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                collector._handle(self)

            def log_message(self, *args: Any) -> None:
                pass

        server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        server.daemon_threads = True
        self.port = server.server_address[1]
        self._server = server
        threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}).start()

    def down(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def _handle(self, handler: BaseHTTPRequestHandler) -> None:
        body = handler.rfile.read(int(handler.headers.get("Content-Length", 0)))
        if handler.headers.get("Content-Encoding") == "gzip":
            body = gzip.decompress(body)
        payload = json.loads(body)
        delivery = Delivery(time.monotonic(), handler.path, dict(handler.headers), payload, 0, body)
        with self._lock:
            scripted = self.answers.popleft() if self.answers else None
        if scripted is None:
            scripted = json_answer(201, {"accepted": len(delivery.rows), "rejected": []})
        elif callable(scripted):
            scripted = scripted(payload)
        status, headers, answer = scripted
        delivery.status = status
        with self._lock:
            self.deliveries.append(delivery)
        handler.send_response(status)
        for name, value in headers.items():
            handler.send_header(name, value)
        handler.send_header("Content-Length", str(len(answer)))
        handler.end_headers()
        handler.wfile.write(answer)

    def received(self) -> bytes:
        """Every byte every POST carried (headers and decompressed body), to search for
        what must never leave the client."""
        with self._lock:
            return b"".join(
                repr(d.headers).encode() + d.path.encode() + d.raw for d in self.deliveries
            )

    def accepted(self) -> list[Delivery]:
        with self._lock:
            return [d for d in self.deliveries if 200 <= d.status < 300]

    def rows(self) -> list[dict[str, Any]]:
        """Rows of every batch the collector answered with a 2xx."""
        return [row for delivery in self.accepted() for row in delivery.rows]

    def wait_for_rows(self, count: int, timeout: float = 10.0) -> list[dict[str, Any]]:
        """Wait until at least `count` rows were accepted; fail the test otherwise."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            rows = self.rows()
            if len(rows) >= count:
                return rows
            time.sleep(0.02)
        raise AssertionError(f"expected {count} rows, the collector accepted {len(self.rows())}")

    def wait_for_deliveries(self, count: int, timeout: float = 10.0) -> list[Delivery]:
        """Wait until at least `count` POSTs arrived, whatever they were answered."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                if len(self.deliveries) >= count:
                    return list(self.deliveries)
            time.sleep(0.02)
        raise AssertionError(f"expected {count} POSTs, got {len(self.deliveries)}")


@dataclass
class RunningServer:
    url: str
    server: uvicorn.Server
    thread: threading.Thread
    uds: str | None = None

    def stop(self) -> None:
        """Graceful shutdown, lifespan shutdown included (so our final flush runs)."""
        self.server.should_exit = True
        self.thread.join(30)
        assert not self.thread.is_alive(), "uvicorn did not stop"


@contextlib.contextmanager
def serve(app: Any, *, uds: str | None = None, lifespan: str = "on") -> Iterator[RunningServer]:
    """Run `app` under a real uvicorn in a thread, on a free 127.0.0.1 port or a unix socket."""
    if uds is not None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.bind(uds)
        url = "http://localhost"
    else:
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    config = uvicorn.Config(
        app, log_level="warning", lifespan=lifespan, timeout_graceful_shutdown=5
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=lambda: asyncio.run(server.serve(sockets=[sock])))
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.01)
    running = RunningServer(url, server, thread, uds)
    try:
        yield running
    finally:
        if thread.is_alive():
            running.stop()
        sock.close()


TEST_SETTINGS = {
    "flush_interval": 0.1,
    "retry_backoff": 0.05,
    "retry_backoff_max": 0.2,
    "shutdown_timeout": 3.0,
    "request_timeout": 2.0,
}


def fast_config(server_url: str, **settings: Any) -> Any:
    """A `Config` pointed at `server_url` with short timers so tests stay quick."""
    from api_analytics.fastapi import Config

    config = Config()
    config.server_url = server_url
    for name, value in {**TEST_SETTINGS, **settings}.items():
        setattr(config, name, value)
    return config


def demo_app(server_url: str, api_key: str = "test-key", config: Any = None, **settings: Any):
    """A FastAPI app with our middleware and endpoints that exercise its edge cases.

    `app.state.release_stream` lets a test hold the streaming response after its first
    chunk; `app.state.background_done` is set by the background task;
    `app.state.raised` holds the exception `/boom` raised.
    """
    from api_analytics.fastapi import Analytics

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI):
        app.state.lifespan_started = True
        yield

    app = FastAPI(lifespan=lifespan)
    app.state.release_stream = threading.Event()
    app.state.background_done = threading.Event()
    app.state.raised = []
    if config is None:
        config = fast_config(server_url, **settings)
    app.add_middleware(Analytics, api_key=api_key, config=config)

    @app.get("/hello")
    async def hello():
        return {"hello": "world"}

    @app.get("/items/{item}")
    def item(item: int):
        return {"item": item}

    @app.get("/stream")
    async def stream():
        async def chunks():
            yield b"first\n"
            for _ in range(1000):  # held until the test releases it (10 s at most)
                if app.state.release_stream.is_set():
                    break
                await asyncio.sleep(0.01)
            await asyncio.sleep(0.3)
            yield b"second\n"
            yield b"third\n"

        return StreamingResponse(chunks(), media_type="text/plain")

    @app.get("/background")
    async def background(tasks: BackgroundTasks):
        def slow_task() -> None:
            time.sleep(1.0)
            app.state.background_done.set()

        tasks.add_task(slow_task)
        return {"queued": True}

    @app.get("/boom")
    async def boom():
        error = RuntimeError("boom")
        app.state.raised.append(error)
        raise error

    @app.websocket("/ws")
    async def echo(websocket: WebSocket):
        await websocket.accept()
        await websocket.send_text(await websocket.receive_text())
        await websocket.close()

    return app


def raw_get(running: RunningServer, path: str, headers: dict[str, str] | None = None) -> bytes:
    """A GET with exactly the given headers (plus Host), over TCP or the unix socket.

    httpx and http.client add their own User-Agent; this sends none unless asked.
    """
    if running.uds is not None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.connect(running.uds)
    else:
        host, port = running.url.removeprefix("http://").split(":")
        sock = socket.create_connection((host, int(port)))
    headers = {"Host": "testserver", **(headers or {})}
    lines = [f"GET {path} HTTP/1.1", "Connection: close"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    with sock:
        sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def wait_until_serving(url: str, process: subprocess.Popen) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        assert process.poll() is None, process.communicate()[0]
        try:
            httpx.get(url + "/openapi.json", timeout=1)
            return
        except httpx.TransportError:
            time.sleep(0.05)
    raise AssertionError("the app did not start")
