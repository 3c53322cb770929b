"""What the demo's requests carry beside their nine fields, as our client sends it
(docs/capture.md): the consumer that called (companies and their plans), the exception
behind a 500 (a handful of bugs, each in its own endpoints, with stacks), the validation
errors behind a 422, and, for those failures, the captured request and response, secrets
included, for the server's masking to hide (server.ingest.capture).

The seed (server.demo.seed) checks and masks these as ingest does, then links them to
their rows (server.ingest.enrich.with_extras), so the demo's Errors and Consumers pages
show what a real key's would.
"""

from __future__ import annotations

import json
import random

COMPANIES = (
    ("Northwind Traders", "enterprise"), ("Globex", "enterprise"), ("Initech", "pro"),
    ("Umbrella Health", "enterprise"), ("Hooli", "pro"), ("Stark Logistics", "pro"),
    ("Wayne Retail", "enterprise"), ("Pied Piper", "free"), ("Vandelay Imports", "free"),
    ("Soylent Foods", "pro"), ("Tyrell Labs", "pro"), ("Wonka Sweets", "free"),
    ("Cyberdyne", "enterprise"), ("Oscorp", "pro"), ("Massive Dynamic", "free"),
    ("Aperture", "free"), ("Gringotts Pay", "enterprise"), ("Duff Beverages", "free"),
)  # fmt: skip

# (type, message with the values a real one would have, [(file, function), ...] the app's
# frames from the handler down, a library frame it raised in or None, endpoints it hits).
BUGS = (
    ("app.payments.GatewayTimeout", "payment gateway timed out after {n} ms",
     [("app/routes/payments.py", "create_payment"), ("app/payments/client.py", "charge")],
     ("/usr/lib/python3.11/site-packages/httpx/_client.py", "send"),
     ("POST /v1/payments", "POST /v1/checkout")),
    ("KeyError", "'currency'",
     [("app/routes/orders.py", "create_order"), ("app/orders/pricing.py", "total")],
     None, ("POST /v1/orders", "POST /v2/orders")),
    ("psycopg.errors.DeadlockDetected", "deadlock detected: process {n} waits for ShareLock",
     [("app/routes/inventory.py", "update_stock"), ("app/db.py", "execute")],
     ("/usr/lib/python3.11/site-packages/psycopg/cursor.py", "execute"),
     ("PUT /v2/inventory/{id}", "POST /v1/cart/items")),
    ("app.search.IndexUnavailable", "search index shard {n} unavailable",
     [("app/routes/search.py", "search"), ("app/search/engine.py", "query")],
     None, ("GET /v1/search", "GET /v2/search")),
    ("ValueError", "invalid literal for int() with base 10: 'abc{n}'",
     [("app/routes/reports.py", "export"), ("app/reports/render.py", "page_count")],
     None, ("GET /v1/reports/{id}/export",)),
    ("AttributeError", "'NoneType' object has no attribute 'email'",
     [("app/routes/users.py", "get_user"), ("app/users/profile.py", "contact")],
     None, ("GET /v1/users/{id}", "GET /v2/users/{id}", "GET /v1/me")),
)  # fmt: skip

# Per endpoint: the fields a 422 names (location, type).
INVALID = {
    "POST /v1/users": [("body.email", "value_error"), ("body.password", "string_too_short")],
    "PATCH /v1/users/{id}": [("body.name", "string_too_long")],
    "POST /v1/orders": [("body.items.0.quantity", "greater_than"), ("body.items", "missing")],
    "POST /v2/orders": [("body.items.0.sku", "missing")],
    "POST /v1/cart/items": [("body.quantity", "int_parsing")],
    "POST /v1/checkout": [("body.card.number", "string_pattern_mismatch")],
    "POST /v1/payments": [("body.amount", "greater_than"), ("body.currency", "missing")],
    "POST /v1/auth/login": [("body.username", "missing")],
    "GET /v1/search": [("query.q", "missing"), ("query.limit", "less_than_equal")],
    "GET /v2/search": [("query.q", "missing")],
}


def consumer_of(user_id: str | None) -> dict | None:
    """The company a user id belongs to (users known only by address call as no one)."""
    if user_id is None:
        return None
    number = sum(map(ord, user_id)) % (len(COMPANIES) + 4)
    if number >= len(COMPANIES):
        return None  # some callers are nobody's integration
    name, plan = COMPANIES[number]
    return {"id": f"cus_{number + 1:04d}", "name": name, "group": plan}


def failure(rng: random.Random, route: str, status: int) -> tuple[int, dict]:
    """(status, the row's optional fields) for a request to `route` answered `status`: a
    500 on a buggy endpoint raised one of its bugs, a 400 to an endpoint with a body or a
    query to check is a 422 with its validation errors."""
    if status == 500:
        bugs = [bug for bug in BUGS if route in bug[4]]
        if bugs:
            kind, message, frames, library, _routes = rng.choice(bugs)
            stack = [{"file": "app/main.py", "line": 42, "function": "dispatch", "in_app": True}]
            stack += [
                {"file": file, "line": 20 + 7 * index + len(function), "function": function,
                 "in_app": True}
                for index, (file, function) in enumerate(frames)
            ]  # fmt: skip
            if library:
                stack.append({"file": library[0], "line": 1021, "function": library[1],
                              "in_app": False})  # fmt: skip
            exception = {"type": kind, "message": message.format(n=rng.randint(2, 99999)),
                         "stack": stack}  # fmt: skip
            return status, {"exception": exception, **_captured(rng, route, status)}
    if status == 400 and route in INVALID:
        fields = INVALID[route]
        chosen = rng.sample(fields, rng.randint(1, len(fields)))
        invalid = [{"location": location, "type": kind} for location, kind in chosen]
        return 422, {"validation_errors": invalid, **_captured(rng, route, 422)}
    return status, {}


def _captured(rng: random.Random, route: str, status: int) -> dict:
    """The request and response as the client captured them, secrets and all."""
    method = route.split(" ", 1)[0]
    headers = [["content-type", "application/json"], ["accept", "application/json"],
               ["authorization", f"Bearer demo_sk_{rng.getrandbits(64):016x}"],
               ["x-request-id", f"{rng.getrandbits(64):016x}"]]  # fmt: skip
    body = None
    if method in ("POST", "PUT", "PATCH"):
        body = json.dumps({"email": "jane@example.com", "password": "correct-horse",
                           "items": [{"sku": "SKU-1881", "quantity": rng.randint(0, 3)}],
                           "card": {"number": "4242424242424242", "cvv": "123"}})  # fmt: skip
    answer = json.dumps({"error": "Internal Server Error" if status >= 500 else "Unprocessable",
                         "request_id": headers[3][1]})  # fmt: skip
    request = {"headers": headers, "query": "page=1&token=demo-token" if method == "GET" else "",
               "body": body, "body_type": "application/json" if body else None,
               "body_size": len(body) if body else 0}  # fmt: skip
    response = {"headers": [["content-type", "application/json"]], "body": answer,
                "body_type": "application/json", "body_size": len(answer)}  # fmt: skip
    return {"request": request, "response": response}
