"""The ours_capture variant of bench/middleware.py: both sides of every exchange logged.

Our middleware logging the headers and a 1 KiB JSON body each way, with a consumer mapper.

When a run includes ours_capture, every variant of it serves the same request, a POST of
`BODY` to /echo that the app parses and answers back, so the ratios compare like with
like. The apps (`middleware_app.py`, `middleware_wsgi_app.py`) import this module for the
config; `middleware.py` for the wrk script and the target.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

PATH = "/echo"
TARGET_VS_NOOP = 0.90  # ours_capture's throughput against the no-op recorder's


def body() -> bytes:
    """A 1 KiB order: the kind of JSON an API takes and answers (no secret fields)."""
    items = [{"sku": f"SKU-{n:05d}", "quantity": n % 7 + 1, "unit_price": 1999 + n * 13,
              "currency": "EUR", "gift": n % 3 == 0} for n in range(9)]  # fmt: skip
    order = {"order_id": "ord_2026_000451", "customer": {"email": "ada@example.com",
             "name": "Ada Lovelace"}, "items": items, "note": "Leave at the door."}  # fmt: skip
    data = json.dumps(order).encode()
    return data + b" " * max(0, 1024 - len(data))  # whitespace: still the same JSON


BODY = body()


def wrk_script(folder: Path) -> Path:
    """A wrk script POSTing BODY to PATH with an Authorization header (which the
    middleware must mask) and the consumer's header."""
    script = folder / "capture.lua"
    script.write_text(
        f'wrk.method = "POST"\nwrk.path = "{PATH}"\nwrk.body = {json.dumps(BODY.decode())}\n'
        'wrk.headers["Content-Type"] = "application/json"\n'
        'wrk.headers["Authorization"] = "Bearer bench-secret"\n'
        'wrk.headers["X-Consumer"] = "cus_bench"\n'
    )
    return script


def capture_config(config: Any) -> Any:
    """Headers and bodies logged both ways, and a consumer from a header."""
    config.log_request_headers = config.log_request_body = True
    config.log_response_headers = config.log_response_body = True
    config.get_consumer = lambda request: {"id": request.headers.get("X-Consumer") or "anonymous",
                                           "group": "bench"}  # fmt: skip
    return config
