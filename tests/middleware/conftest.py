"""Fixtures for the middleware tests: a local collector and real uvicorn servers."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

# The hosted service's client (`fastapi-analytics`, kept for the benchmark) installs the
# same import name, `api_analytics`; put our package first so the tests test ours.
ROOT = Path(__file__).resolve().parents[2]  # the project
MIDDLEWARE_DIR = str(ROOT / "middleware")
if sys.path[0] != MIDDLEWARE_DIR:
    sys.path.insert(0, MIDDLEWARE_DIR)
for _name in [m for m in sys.modules if m == "api_analytics" or m.startswith("api_analytics.")]:
    del sys.modules[_name]

import api_analytics  # noqa: E402

from .support import Collector, serve  # noqa: E402

assert Path(api_analytics.__file__).parent == Path(MIDDLEWARE_DIR) / "api_analytics", (
    f"imported the wrong api_analytics: {api_analytics.__file__}"
)


@pytest.fixture
def collector():
    """A running local ingest server; `collector.url` is the middleware's server_url."""
    running = Collector()
    running.up()
    yield running
    running.down()


@pytest.fixture
def run_app():
    """Start apps under real uvicorn for the test; all are stopped (gracefully) after it."""
    stack = []

    def start(app, **kwargs):
        context = serve(app, **kwargs)
        running = context.__enter__()
        stack.append(context)
        return running

    yield start
    for context in reversed(stack):
        context.__exit__(None, None, None)
