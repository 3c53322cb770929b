"""A Flask or FastAPI app instrumented with OpenTelemetry, exporting its spans over
OTLP/HTTP protobuf to whatever OTEL_EXPORTER_OTLP_ENDPOINT names, as a user would set it
up: the SDK, a batch span processor, the OTLP exporter and the framework's
instrumentation, configured by the standard OTEL_* variables only. Run under
`opentelemetry-instrument` (zero code, as README.md tells Python users), it leaves all of
that to the distro.

    python tests/otlp/python_app.py flask|fastapi PORT
    opentelemetry-instrument python tests/otlp/python_app.py flask|fastapi PORT

Routes: GET /users/{id} (an internal span inside, enduser.id set), GET /slow (sleeps
200 ms), POST /items (201), GET /boom (an unhandled ZeroDivisionError: 500), anything
else 404. SIGTERM stops it after flushing every span.
"""

from __future__ import annotations

import signal
import sys
import time

from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

# Under opentelemetry-instrument the distro has set up the SDK and instruments the
# frameworks as they are imported; else it is done here.
AUTO = isinstance(trace.get_tracer_provider(), TracerProvider)
if not AUTO:
    provider = TracerProvider()  # its resource from OTEL_SERVICE_NAME, OTEL_RESOURCE_ATTRIBUTES
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    trace.set_tracer_provider(provider)
tracer = trace.get_tracer("shop")


def load_user(user_id: int) -> dict:
    with tracer.start_as_current_span("load user") as span:  # an INTERNAL span: left out
        span.set_attribute("user.lookup", user_id)
        return {"id": user_id}


def flask_app():
    from flask import Flask
    from opentelemetry.instrumentation.flask import FlaskInstrumentor

    app = Flask("shop")

    @app.get("/users/<int:user_id>")
    def user(user_id: int):
        trace.get_current_span().set_attribute("enduser.id", f"user-{user_id}")
        return load_user(user_id)

    @app.get("/slow")
    def slow():
        time.sleep(0.2)
        return {"slept": 0.2}

    @app.post("/items")
    def items():
        return {"created": True}, 201

    @app.get("/boom")
    def boom():
        return {"never": 1 / 0}

    if not AUTO:
        FlaskInstrumentor().instrument_app(app)
    return app


def fastapi_app():
    from contextlib import asynccontextmanager

    from fastapi import FastAPI
    from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor

    @asynccontextmanager
    async def lifespan(_app):
        yield
        # uvicorn raises SIGTERM again once it has shut down, which ends the process before
        # any code after uvicorn.run (or an atexit hook): the last spans go out here.
        trace.get_tracer_provider().force_flush()

    app = FastAPI(lifespan=lifespan)

    @app.get("/users/{user_id}")
    async def user(user_id: int):
        trace.get_current_span().set_attribute("enduser.id", f"user-{user_id}")
        return load_user(user_id)

    @app.get("/slow")
    def slow():
        time.sleep(0.2)
        return {"slept": 0.2}

    @app.post("/items", status_code=201)
    async def items():
        return {"created": True}

    @app.get("/boom")
    async def boom():
        return {"never": 1 / 0}

    if not AUTO:
        FastAPIInstrumentor.instrument_app(app)
    return app


def main() -> None:
    framework, port = sys.argv[1], int(sys.argv[2])
    if framework == "flask":
        from werkzeug.serving import make_server

        server = make_server("127.0.0.1", port, flask_app(), threaded=True)
        signal.signal(signal.SIGTERM, lambda *_: server.shutdown())
        import threading

        thread = threading.Thread(target=server.serve_forever)
        thread.start()
        thread.join()
    else:
        import uvicorn

        uvicorn.run(fastapi_app(), host="127.0.0.1", port=port, log_level="warning")
    trace.get_tracer_provider().shutdown()  # the last spans exported before exit


if __name__ == "__main__":
    main()
