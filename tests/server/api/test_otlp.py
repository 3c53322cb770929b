"""POST /v1/traces: OTLP/HTTP exports, protobuf and JSON, on both backends. Which spans
become rows and how their attributes map; what is refused, how, and that nothing of a
refused export or span is stored; retries stored once; the service click.

Real exporters in real instrumented apps: test_otlp_exporters.py.
"""

from __future__ import annotations

import gzip
import time
from datetime import UTC, datetime

import orjson
import pytest
from google.rpc import status_pb2

from server.stats import Filters, answer, window_for
from tests.otlp.messages import (
    AGENT,
    CLIENT,
    CONSUMER,
    INTERNAL,
    NEW,
    OLD,
    SERVER,
    STATUS_ERROR,
    as_json,
    export,
    resource,
    response_of,
    span,
)

PROTOBUF = "application/x-protobuf"
JSON = "application/json"


def post(stack, body: bytes, key: str | None, content_type: str = PROTOBUF, **headers):
    sent = {"Content-Type": content_type, **headers}
    if key is not None:
        sent.setdefault("X-AUTH-TOKEN", key)
    return stack.client.post("/v1/traces", data=body, headers=sent)


def rows_of(stack, key: str, **params) -> list[dict]:
    response = stack.client.get("/api/data", query_string=params, headers={"X-AUTH-TOKEN": key})
    assert response.status_code == 200, response.get_json()
    return response.get_json()


def status_of(response) -> status_pb2.Status:
    """The google.rpc.Status of a refused export, in the request's encoding."""
    if response.mimetype == JSON:
        found = orjson.loads(response.data)
        return status_pb2.Status(code=found.get("code", 0), message=found["message"])
    assert response.mimetype == PROTOBUF
    return status_pb2.Status.FromString(response.data)


def mixed_export():
    """Two services: HTTP server spans in both conventions, an internal, a client and a
    consumer span, a server span that is not HTTP (gRPC), an unspecified-kind span of an
    HTTP server, and garbage attributes of every type on a server span."""
    garbage = {**NEW, "url.path": "/v1/users/7", "http.route": "/v1/users/{user_id}",
               "weird.array": [1, "two", 3.0], "weird.map": {"a": {"b": [b"\x00"]}},
               "weird.bytes": b"\xff\xfe", "http.request.header.x": ["a", "b"],
               "enduser.id": "alice", "weird.unicode": "\u2603" * 300}  # fmt: skip
    shop = resource([
        span(OLD, name="old"),
        span(NEW, name="new"),
        span({"db.system": "postgresql"}, kind=INTERNAL, name="query"),
        span({**NEW, "url.full": "https://pay.example.com/charge"}, kind=CLIENT, name="client"),
        span({"messaging.system": "kafka"}, kind=CONSUMER, name="consume"),
        span({"rpc.system": "grpc", "rpc.service": "Pay"}, kind=SERVER, name="grpc"),
        span(garbage, name="garbage"),
    ])  # fmt: skip
    unspecified = {**NEW, "http.request.method": "POST", "url.path": "/v2/items",
                   "http.route": "/v2/items", "http.response.status_code": 201}  # fmt: skip
    billing = resource([span(unspecified, kind=0, name="unspecified")], service="billing",
                       version="9.0")  # fmt: skip
    return export(shop, billing)


def test_each_http_server_span_becomes_one_row(stack):
    key = stack.new_key()
    response = post(stack, mixed_export().SerializeToString(), key)
    assert response.status_code == 200, response.data
    assert response.mimetype == PROTOBUF
    answered = response_of(response.data)
    # Every HTTP server span stored: no partial success, nothing to warn about.
    assert answered.partial_success.rejected_spans == 0
    assert answered.partial_success.error_message == ""
    assert response.headers["X-Spans-Received"] == "8"
    assert response.headers["X-Spans-Left-Out"] == (
        "4 (1 client, 1 consumer, 1 internal, 1 server, not HTTP)"
    )
    rows = rows_of(stack, key)
    assert len(rows) == 4
    old, new, garbage = (r for r in rows if r["service"] == "shop")
    # Both conventions: the same request, the same row.
    for row in (old, new):
        assert row["method"] == "GET"
        assert row["path"] == "/v1/orders/42"  # the query string is not kept
        assert row["endpoint"] == "/v1/orders/{order_id}"  # http.route, as the app named it
        assert row["status"] == 200
        assert row["response_time"] == 12
        assert row["ip_address"] == "8.8.8.8"
        assert row["location"] == "US"
        assert row["user_agent"] == AGENT
        assert row["browser"] == "Chrome"
        assert row["hostname"] == "api.example.com"  # without the port
        assert (row["service"], row["release"]) == ("shop", "1.4.2")
        assert row["framework"] == "OpenTelemetry"
    assert {k: v for k, v in old.items() if k != "created_at"} == {
        k: v for k, v in new.items() if k != "created_at"
    }
    assert (garbage["path"], garbage["endpoint"], garbage["user_id"]) == (
        "/v1/users/7", "/v1/users/{user_id}", "alice",
    )  # fmt: skip
    (billing,) = rows_of(stack, key, service="billing")
    assert (billing["method"], billing["status"], billing["release"]) == ("POST", 201, "9.0")
    assert rows_of(stack, key, release="9.0") == [billing]
    assert len(rows_of(stack, key, service="shop", release="1.4.2")) == 3


def test_json_export_maps_as_protobuf_does(stack):
    key = stack.new_key()
    document = as_json(mixed_export())
    # OTLP's JSON: hex ids, lowerCamelCase, enums as integers, 64-bit integers as strings.
    first = document["resourceSpans"][0]["scopeSpans"][0]["spans"][0]
    assert len(first["traceId"]) == 32 and first["kind"] == SERVER
    assert isinstance(first["startTimeUnixNano"], str)
    response = post(stack, orjson.dumps(document), key, JSON)
    assert response.status_code == 200, response.data
    assert response.mimetype == JSON
    assert response_of(response.data, json_body=True).partial_success.rejected_spans == 0
    rows = rows_of(stack, key)
    assert sorted(r["endpoint"] for r in rows) == [
        "/v1/orders/{order_id}", "/v1/orders/{order_id}", "/v1/users/{user_id}", "/v2/items",
    ]  # fmt: skip
    # An unknown field is ignored, as the OTLP specification asks of a receiver.
    document["resourceSpans"][0]["someFutureField"] = {"x": 1}
    assert post(stack, orjson.dumps(document), key, JSON).status_code == 200


def test_gzip_and_the_bearer_token(stack):
    key = stack.new_key()
    body = gzip.compress(export(resource([span(NEW)])).SerializeToString())
    response = post(stack, body, None, **{"Content-Encoding": "gzip",
                                          "Authorization": f"Bearer {key}"})  # fmt: skip
    assert response.status_code == 200, response.data
    assert len(rows_of(stack, key)) == 1


def test_a_retried_export_is_stored_once(stack):
    key = stack.new_key()
    body = export(resource([span(NEW), span(OLD)])).SerializeToString()
    first = post(stack, body, key)
    again = post(stack, body, key)
    assert first.status_code == again.status_code == 200
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.data == first.data
    assert len(rows_of(stack, key)) == 2
    # The same spans gzipped are the same export.
    assert post(stack, gzip.compress(body), key, **{"Content-Encoding": "gzip"}).status_code == 200
    assert len(rows_of(stack, key)) == 2


def test_refused_spans_are_named_and_the_others_stored(stack):
    key = stack.new_key()
    year = 365 * 24 * 3600 * 10**9
    now = time.time_ns()
    bad = [
        span(NEW, name="negative", duration_ms=-5),
        span(NEW, name="future", start_ns=now + 50 * year),
        span(NEW, name="past", start_ns=now - 50 * year),
        span({k: v for k, v in NEW.items() if k != "http.response.status_code"}, name="nostatus"),
        span({**NEW, "http.request.method": "BREW"}, name="teapot"),
    ]
    good = span(NEW, name="good")
    response = post(stack, export(resource([*bad, good])).SerializeToString(), key)
    assert response.status_code == 200, response.data
    partial = response_of(response.data).partial_success
    assert partial.rejected_spans == 5
    message = partial.error_message
    assert message.startswith("5 of 6 HTTP server spans refused, nothing of them stored")
    for refused in bad:
        assert refused.span_id.hex() in message
    assert "response_time: must be a non-negative number (end_time_unix_nano" in message
    assert "created_at: more than a day in the future (start_time_unix_nano)" in message
    assert "created_at: before 2000-01-01" in message
    assert "status: required, an integer (http.response.status_code" in message
    assert "method: unknown HTTP method 'BREW'" in message
    (stored,) = rows_of(stack, key)
    assert stored["response_time"] == 12


def test_an_export_of_refused_spans_only_stores_nothing(stack):
    key = stack.new_key()
    body = export(resource([span(NEW, duration_ms=-1), span(NEW, duration_ms=-2)]))
    response = post(stack, body.SerializeToString(), key)
    assert response.status_code == 200
    assert response_of(response.data).partial_success.rejected_spans == 2
    assert rows_of(stack, key) == []


def test_a_5xx_takes_its_exception_event(stack):
    key = stack.new_key()
    trace = (
        "Traceback (most recent call last):\n"
        '  File "/srv/app/shop/views.py", line 31, in pay\n    charge(order)\n'
        '  File "/usr/lib/python3.11/site-packages/stripe/api.py", line 88, in charge\n'
        "    raise CardDeclined(order)\nstripe.CardDeclined: card declined for order 1881\n"
    )
    failed = span({**NEW, "http.response.status_code": 500}, status=STATUS_ERROR, events=[
        ("exception", {"exception.type": "stripe.CardDeclined",
                       "exception.message": "card declined for order 1881",
                       "exception.stacktrace": trace, "exception.escaped": True}),
    ])  # fmt: skip
    # Express-style: the error recorded on a handler's span below the server span.
    server_id, handler_id = b"\x0a" * 8, b"\x0b" * 8
    node = [
        span({**OLD, "http.status_code": 500, "http.route": "/boom"}, own_id=server_id,
             trace=b"\x02" * 16),
        span({}, kind=INTERNAL, own_id=handler_id, parent=server_id, trace=b"\x02" * 16,
             events=[("exception", {"exception.type": "TypeError",
                                    "exception.message": "boom",
                                    "exception.stacktrace": "TypeError: boom\n    at handler "
                                    "(/srv/app/app.js:12:9)\n    at Layer.handle (/srv/app/"
                                    "node_modules/express/lib/layer.js:95:5)"})]),
    ]  # fmt: skip
    response = post(stack, export(resource([failed, *node])).SerializeToString(), key)
    assert response.status_code == 200, response.data
    assert response_of(response.data).partial_success.rejected_spans == 0
    errors = stack.client.get("/api/errors?period=24h", headers={"X-AUTH-TOKEN": key})
    groups = {g["type"]: g for g in errors.get_json()}
    assert set(groups) == {"stripe.CardDeclined", "TypeError"}
    card = groups["stripe.CardDeclined"]
    assert card["route"] == "GET /v1/orders/{order_id}"  # the route template
    assert card["frame"] == "/srv/app/shop/views.py:31 in pay"  # the app's own frame
    assert groups["TypeError"]["route"] == "GET /boom"
    assert groups["TypeError"]["frame"] == "/srv/app/app.js:12 in handler"


def test_privacy_level_header(stack):
    key = stack.new_key()
    body = export(resource([span(NEW)])).SerializeToString()
    assert post(stack, body, key, **{"X-Privacy-Level": "2"}).status_code == 200
    (row,) = rows_of(stack, key)
    assert (row["ip_address"], row["location"]) == (None, None)
    refused = post(stack, body, key, **{"X-Privacy-Level": "high"})
    assert refused.status_code == 400
    assert "X-Privacy-Level must be 0, 1 or 2" in status_of(refused).message


def test_the_start_time_is_kept_to_the_microsecond(stack):
    key = stack.new_key()
    start = (time.time_ns() // 60_000_000_000 - 5) * 60_000_000_000 + 59_123_456_789
    response = post(stack, export(resource([span(NEW, start_ns=start)])).SerializeToString(), key)
    assert response.status_code == 200
    (row,) = rows_of(stack, key)
    expected = datetime.fromtimestamp(start // 1000 / 1e6, UTC).isoformat(timespec="microseconds")
    assert row["created_at"] == expected
    assert row["created_at"].endswith(":59.123456+00:00")


def test_a_captured_forwarded_header_names_the_client(stack):
    """Behind a proxy, with OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SERVER_REQUEST naming
    X-Forwarded-For (either spelling of its attribute), the first address it holds."""
    key = stack.new_key()
    base = {"http.request.method": "GET", "url.path": "/v1/a", "http.response.status_code": 200,
            "network.peer.address": "10.0.0.2"}  # fmt: skip
    spans = [
        span({**base, "http.request.header.x-forwarded-for": ["8.8.8.8, 10.0.0.1"]}),
        span({**base, "http.request.header.x_forwarded_for": ["1.1.1.1"]}),
        span(base),
    ]
    assert post(stack, export(resource(spans)).SerializeToString(), key).status_code == 200
    assert sorted(r["ip_address"] for r in rows_of(stack, key)) == [
        "1.1.1.1", "10.0.0.2", "8.8.8.8",
    ]  # fmt: skip


def test_the_dashboard_filters_by_service(stack):
    key = stack.new_key()
    assert post(stack, mixed_export().SerializeToString(), key).status_code == 200
    with stack.engine.connect() as conn:
        from server.keys.api_keys import lookup_key

        key_id = lookup_key(conn, key)
    everything = answer(key_id, Filters(period="24h"), window_for("24h"))
    assert int(everything.parts.endpoints["n"].sum()) == 4
    billing = answer(key_id, Filters(period="24h", clicks=(("service", "billing"),)),
                     window_for("24h"))  # fmt: skip
    endpoints = billing.parts.endpoints
    assert endpoints[["method", "endpoint"]].values.tolist() == [["POST", "/v2/items"]]
    assert Filters.from_query("?service=billing").clicks == (("service", "billing"),)
    shop = answer(key_id, Filters(period="24h", clicks=(("release", "1.4.2"),)), window_for("24h"))
    assert int(shop.parts.endpoints["n"].sum()) == 3


def test_an_export_shows_on_the_keys_ingest_health(stack):
    """An OpenTelemetry key's "why is there no data?" page: its exporter as the client, the
    spans accepted, one refused with its reason; an exporter's retry is not counted twice."""
    key = stack.new_key()
    bad = {**NEW, "url.path": "/bad", "http.response.status_code": 9999}
    body = export(resource([span({**NEW, "url.path": "/ok"}, name="ok"),
                            span(bad, name="bad")])).SerializeToString()  # fmt: skip
    agent = {"User-Agent": "OTel-OTLP-Exporter-Python/1.45.1"}
    for _ in range(2):  # the second is a retry of the same export
        assert post(stack, body, key, **agent).status_code == 200
    answer = stack.client.get("/api/ingest/health", headers={"X-AUTH-TOKEN": key}).get_json()
    (client,) = answer["clients"]
    assert (client["framework"], client["client"]) == ("OpenTelemetry", agent["User-Agent"])
    assert (client["batches"], client["last_accepted"], client["last_refused"]) == (1, 1, 1)
    today = answer["days"][-1]
    assert (today["accepted"], today["refused"]) == (1, 1)
    (refusal,) = answer["refused_rows"]
    assert "status" in refusal["reason"] and refusal["row"]["path"] == "/bad"


def test_the_overview_offers_the_services_and_releases_the_spans_named(stack):
    """The service and release menus: hidden for a key without spans; with them, every
    service, and the chosen service's releases; a choice is the URL's `service=` click."""
    from tests.dash_app.test_keys_shares import callback
    from tests.dash_app.test_session import sign_in

    key = stack.new_key()
    sign_in(stack.client, key)
    at = {"ov-filters.data": "?period=24h", "url.pathname": "/dashboard/"}
    menus = callback(stack.client, "ov-service.options", at)
    assert menus["ov-services"]["style"] == {"display": "none"}  # nothing from OpenTelemetry

    assert post(stack, mixed_export().SerializeToString(), key).status_code == 200
    # Another key's spans are not offered (one scan per key).
    other = stack.new_key()
    again = export(resource([span({**NEW, "url.path": "/x"}, name="x")], service="secret"))
    assert post(stack, again.SerializeToString(), other).status_code == 200
    menus = callback(stack.client, "ov-service.options", at)
    assert menus["ov-services"]["style"] == {"display": "flex"}
    from server.ingest.otlp import FRAMEWORK
    from server.ingest_health.status import OPENTELEMETRY

    assert FRAMEWORK == OPENTELEMETRY
    assert [o["value"] for o in menus["ov-service"]["options"]] == ["billing", "shop"]
    assert sorted(o["value"] for o in menus["ov-release"]["options"]) == ["1.4.2", "9.0"]
    chosen = callback(
        stack.client, "ov-service.options", {**at, "ov-filters.data": "?service=shop"}
    )
    assert [o["value"] for o in chosen["ov-release"]["options"]] == ["1.4.2"]

    picked = callback(stack.client, "ov-url.search",
                      {"ov-url.search": "?period=24h", "ov-service.value": "billing"},
                      changed="ov-service.value")  # fmt: skip
    assert picked["ov-url"]["search"] == "?period=24h&service=billing"
    cleared = callback(stack.client, "ov-url.search",
                       {"ov-url.search": "?period=24h&service=billing", "ov-service.value": None},
                       changed="ov-service.value")  # fmt: skip
    assert cleared["ov-url"]["search"] == "?period=24h"


# --- refused exports: an OTLP-shaped answer, nothing stored ---------------------------------


@pytest.mark.parametrize("content_type", [PROTOBUF, JSON])
def test_bad_keys_are_401(stack, content_type):
    body = export(resource([span(NEW)])).SerializeToString()
    for key, expected in ((None, "Missing API key"), ("nope", "Unknown or revoked API key")):
        response = post(stack, body, key, content_type)
        assert response.status_code == 401
        assert response.mimetype == content_type
        status = status_of(response)
        assert expected in status.message
        assert status.code == 16  # UNAUTHENTICATED


def test_a_truncated_protobuf_is_400_and_stores_nothing(stack):
    key = stack.new_key()
    body = export(resource([span(NEW), span(OLD)])).SerializeToString()
    for cut in (len(body) - 3, len(body) // 2, 7):
        response = post(stack, body[:cut], key)
        assert response.status_code == 400, cut
        status = status_of(response)
        assert status.code == 3  # INVALID_ARGUMENT
        assert status.message.startswith("Not a valid OTLP protobuf ExportTraceServiceRequest")
    truncated_gzip = gzip.compress(body)[:-10]
    response = post(stack, truncated_gzip, key, **{"Content-Encoding": "gzip"})
    assert response.status_code == 400
    assert "gzip" in status_of(response).message
    assert rows_of(stack, key) == []


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (b"{not json", "Malformed JSON"),
        (b"[1, 2]", "must be a JSON object"),
        (b'{"resourceSpans": [{"scopeSpans": [{"spans": [{"traceId": "xyz"}]}]}]}', "not hex"),
        (b'{"resourceSpans": [{"scopeSpans": [{"spans": [{"startTimeUnixNano": "soon"}]}]}]}',
         "Not a valid OTLP JSON"),
        (b'{"resourceSpans": "all of them"}', "Not a valid OTLP JSON"),
    ],
)  # fmt: skip
def test_malformed_json_is_400(stack, body, expected):
    key = stack.new_key()
    response = post(stack, body, key, JSON)
    assert response.status_code == 400
    assert response.mimetype == JSON
    assert expected in status_of(response).message


def test_wrong_content_type_or_encoding_is_415(stack):
    key = stack.new_key()
    body = export(resource([span(NEW)])).SerializeToString()
    for content_type in ("text/plain", "application/grpc", "application/octet-stream"):
        response = post(stack, body, key, content_type)
        assert response.status_code == 415
        assert "Content-Type must be application/x-protobuf or application/json" in (
            status_of(response).message
        )
    response = post(stack, body, key, **{"Content-Encoding": "br"})
    assert response.status_code == 415
    assert "Content-Encoding 'br' is not supported" in status_of(response).message
    assert rows_of(stack, key) == []


def test_huge_exports_are_413(make_stack):
    stack = make_stack(MAX_BODY=64 * 1024, MAX_BATCH=50)
    key = stack.new_key()
    huge = export(resource([span({**NEW, "padding": "x" * 70_000})])).SerializeToString()
    response = post(stack, huge, key)
    assert response.status_code == 413
    assert "over the 65536 byte limit" in status_of(response).message
    padded = export(resource([span({**NEW, "pad": "y" * 200_000})]))
    bomb = gzip.compress(padded.SerializeToString())
    assert len(bomb) < 64 * 1024
    response = post(stack, bomb, key, **{"Content-Encoding": "gzip"})
    assert response.status_code == 413
    assert "once decompressed" in status_of(response).message
    many = export(resource([span(NEW) for _ in range(51)])).SerializeToString()
    response = post(stack, many, key)
    assert response.status_code == 413
    assert "Too many HTTP server spans: 51 in one export, the limit is 50" in (
        status_of(response).message
    )
    assert rows_of(stack, key) == []


def test_rate_limited_exports_are_429_with_retry_after(make_stack):
    stack = make_stack(RATE_LIMIT_PER_MINUTE=1)
    key = stack.new_key()
    body = export(resource([span(NEW)])).SerializeToString()
    assert post(stack, body, key).status_code == 200
    response = post(stack, export(resource([span(OLD)])).SerializeToString(), key)
    assert response.status_code == 429
    assert 0 < int(response.headers["Retry-After"]) <= 60
    status = status_of(response)
    assert status.code == 8  # RESOURCE_EXHAUSTED
    assert "Rate limit of 1 batches a minute exceeded" in status.message
    assert len(rows_of(stack, key)) == 1


def test_the_openapi_document_names_the_endpoint(stack):
    document = stack.client.get("/api/openapi.json").get_json()
    operation = document["paths"]["/v1/traces"]["post"]
    assert set(operation["requestBody"]["content"]) == {PROTOBUF, JSON}
    assert {"200", "400", "401", "413", "415", "429", "503"} <= set(operation["responses"])
