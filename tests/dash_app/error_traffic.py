"""Realistic traffic with consumers, exceptions, validation errors and captured requests,
ingested through POST /api/log-request (docs/capture.md), and what it holds, counted here."""

from __future__ import annotations

import json
import random
from collections import Counter
from datetime import datetime, timedelta

from tests.helpers import CHROME, post_batch, row

CONSUMERS = (
    ("cus_acme", "Acme Inc", "enterprise"),
    ("cus_globex", "Globex", "enterprise"),
    ("cus_initech", "Initech", "pro"),
    ("cus_umbrella", "Umbrella Corp", "pro"),
    ("cus_hooli", "Hooli", "free"),
    ("cus_piedpiper", "Pied Piper", None),
)
# Each consumer's share of requests failing with an exception, and of requests refused
# for invalid fields: one integration sends bad bodies, one free tier hits bugs.
RATES = {"cus_acme": (0.03, 0.01), "cus_globex": (0.05, 0.16), "cus_initech": (0.06, 0.02),
         "cus_umbrella": (0.04, 0.02), "cus_hooli": (0.15, 0.05), "cus_piedpiper": (0.08, 0.06),
         None: (0.06, 0.04)}  # fmt: skip
WEB = [{"file": "/usr/lib/python3.12/site-packages/starlette/routing.py", "line": 74,
        "function": "app", "in_app": False},
       {"file": "/usr/lib/python3.12/site-packages/fastapi/routing.py", "line": 299,
        "function": "run_endpoint_function", "in_app": False}]  # fmt: skip


def frame(file: str, line: int, function: str, in_app: bool = True) -> dict:
    return {"file": file, "line": line, "function": function, "in_app": in_app}


# (type, message pattern, method, path pattern, status, in-app frames, library frames after,
#  weight): what failed, where, and how often.
FAILURES = (
    ("app.payments.CardDeclined", "card {n} declined for order {m}", "POST", "/v1/payments", 500,
     [frame("app/main.py", 31, "pay"), frame("app/payments/service.py", 88, "charge")],
     [frame("/usr/lib/python3.12/site-packages/stripe/api_requestor.py", 412, "request", False)],
     9),
    ("KeyError", "'shipping_address'", "GET", "/v1/orders/{n}", 500,
     [frame("app/orders/views.py", 22, "get_order"),
      frame("app/orders/serializers.py", 57, "to_dict")], [], 6),
    ("sqlalchemy.exc.OperationalError", "connection timeout expired after {n} ms", "GET",
     "/v2/search", 503, [frame("app/search/views.py", 14, "search"),
                         frame("app/search/query.py", 40, "run")],
     [frame("/usr/lib/python3.12/site-packages/sqlalchemy/engine/base.py", 1969, "_exec_single",
            False),
      frame("/usr/lib/python3.12/site-packages/psycopg/connection.py", 728, "connect", False)],
     4),
    ("app.inventory.OutOfStock", "item {n} out of stock (requested {m}, left 0)", "PUT",
     "/v2/items/{n}", 500, [frame("app/inventory/views.py", 51, "update_item"),
                            frame("app/inventory/stock.py", 19, "reserve")], [], 3),
    ("ZeroDivisionError", "division by zero", "GET", "/v1/users/{n}", 500,
     [frame("app/users/views.py", 30, "profile"), frame("app/users/stats.py", 19, "average")],
     [], 2),
)  # fmt: skip
INVALID = (
    [{"location": "body.items.0.price", "type": "int_parsing"}],
    [{"location": "body.email", "type": "missing"}],
    [{"location": "body.items.0.price", "type": "int_parsing"},
     {"location": "query.limit", "type": "less_than_equal"}],
)  # fmt: skip
OK_PATHS = (("GET", "/v1/orders/{n}"), ("GET", "/v2/search"), ("POST", "/v1/orders"),
            ("GET", "/v1/users/{n}"), ("GET", "/health"))  # fmt: skip
SECRET = "sk_live_51Hc0ffee"  # never to be seen on any page


def captured(method: str, path: str, status: int, failure: str) -> tuple[dict, dict]:
    """A request with secrets the server masks, and the error response."""
    request = {
        "headers": [["content-type", "application/json"], ["authorization", f"Bearer {SECRET}"],
                    ["user-agent", "acme-sdk/2.4.1"], ["x-request-id", "req_7f3a9c"]],
        "query": f"expand=items&api_key={SECRET}" if method == "GET" else None,
        "body": None if method == "GET" else json.dumps(
            {"order_id": 1881, "card_number": "4242424242424242", "amount": 4999,
             "currency": "eur", "password": SECRET}),
        "body_type": None if method == "GET" else "application/json",
        "body_size": None if method == "GET" else 132,
    }  # fmt: skip
    response = {
        "headers": [["content-type", "application/json"], ["x-request-id", "req_7f3a9c"]],
        "body": json.dumps({"detail": failure, "status": status}),
        "body_type": "application/json",
        "body_size": 64,
    }
    return request, response


def error_rows(now: datetime, count: int = 1000, seed: int = 7) -> list[dict]:
    """`count` requests over the last six days: some fail with an exception, some are
    refused for invalid fields (RATES), most carry a consumer and a user id."""
    rng = random.Random(seed)
    weights = [f[-1] for f in FAILURES]
    rows = []
    for _ in range(count):
        # Later hours are busier, so the trends rise towards today.
        age = timedelta(hours=144 * (1 - rng.random() ** 0.7), minutes=rng.randint(0, 59))
        consumer = rng.choice(CONSUMERS + (None,))
        fields = {
            "created_at": (now - age).isoformat(),
            "ip_address": f"8.8.8.{rng.randint(1, 40)}",
            "user_agent": CHROME,
            "user_id": f"user_{rng.randint(1, 25):03d}" if rng.random() < 0.8 else None,
            "response_time": rng.randint(8, 700),
        }
        if consumer:
            cid, name, group = consumer
            fields["consumer"] = {"id": cid, "name": name, "group": group}
        failing, invalid = RATES[consumer[0] if consumer else None]
        roll = rng.random()
        n, m = rng.randint(10, 9999), rng.randint(1, 9)
        if roll < failing:
            kind, message, method, path, status, app, lib, _w = rng.choices(FAILURES, weights)[0]
            path = path.format(n=rng.randint(1, 400))
            text = message.format(n=n, m=m)
            fields["exception"] = {"type": kind, "message": text,
                                   "stack": WEB + app + lib}  # fmt: skip
            fields["request"], fields["response"] = captured(method, path, status, text)
        elif roll < failing + invalid:
            method, path, status = "POST", "/v1/orders", 422
            fields["validation_errors"] = rng.choice(INVALID)
        else:
            method, path = rng.choice(OK_PATHS)
            path, status = path.format(n=rng.randint(1, 400)), rng.choice((200, 200, 200, 201))
        rows.append(row(method=method, path=path, status=status, **fields))
    return rows


def ingest_errors(stack, key: str, rows: list[dict]) -> None:
    for start in range(0, len(rows), 200):
        answer = post_batch(stack.client, key, rows[start : start + 200])
        assert answer.status_code == 201, answer.get_json()
        assert not answer.get_json()["rejected"], answer.get_json()
    stack.process_jobs()


def failures_by_type(rows: list[dict]) -> Counter:
    return Counter(r["exception"]["type"] for r in rows if r.get("exception"))


def requests_by(rows: list[dict], field: str) -> Counter:
    """Requests per consumer id ('consumer'), consumer group ('group') or user id."""
    found = Counter()
    for r in rows:
        consumer = r.get("consumer") or {}
        value = {"consumer": consumer.get("id"), "group": consumer.get("group"),
                 "user_id": r.get("user_id")}[field]  # fmt: skip
        if value is not None:
            found[value] += 1
    return found
