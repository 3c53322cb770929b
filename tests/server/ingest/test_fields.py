"""The pure validation functions: every refusal names the field and the reason."""

import gzip
import json
from datetime import UTC, datetime

import pytest

from server.ingest.fields import PayloadError, validate_rows
from server.ingest.pipeline import inflate, parse_payload
from server.rules import normalise_ip
from tests.helpers import row as any_row

NOW = datetime(2026, 6, 1, 12, tzinfo=UTC)


def row(**overrides):
    return any_row(**{"created_at": "2026-06-01T11:00:00+00:00", **overrides})


def check(rows, level=0):
    return validate_rows(rows, level, NOW)


def test_good_row_is_staged_in_field_order():
    accepted, rejected = check([row(created_at="2026-06-01T10:00:00+02:00", response_time=1.6)])
    assert rejected == []
    created_at, hostname, path, method, status, rt, ip, ua, user_id = accepted[0]
    assert created_at == "2026-06-01T08:00:00+00:00"
    assert (hostname, path, method, status, rt, ip, user_id) == (
        "api.example.com",
        "/v1/users",
        "GET",
        200,
        2,
        "8.8.8.8",
        None,
    )


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"method": "FETCH"}, "method: unknown HTTP method"),
        ({"method": 5}, "method: required"),
        ({"status": 600}, "status: 600 is outside 100-599"),
        ({"status": 99}, "status: 99 is outside"),
        ({"status": "200"}, "status: required, an integer"),
        ({"status": True}, "status: required, an integer"),
        ({"status": 200.5}, "status: required, an integer"),
        ({"response_time": -1}, "response_time: must be a non-negative"),
        ({"response_time": float("inf")}, "response_time: must be a non-negative"),
        ({"response_time": 10**12}, "response_time: more than a day"),
        ({"response_time": "fast"}, "response_time: required"),
        ({"path": ""}, "path: required"),
        ({"path": None}, "path: required"),
        ({"created_at": "yesterday"}, "created_at: not an ISO 8601"),
        ({"created_at": None}, "created_at: required"),
        ({"created_at": "1999-12-31T23:59:59+00:00"}, "created_at: before 2000"),
        ({"created_at": "2026-06-02T13:00:00+00:00"}, "more than a day in the future"),
        ({"hostname": 5}, "hostname: must be a string"),
        ({"user_agent": ["x"]}, "user_agent: must be a string"),
        ({"user_id": {"a": 1}}, "user_id: must be a string"),
    ],
)
def test_bad_rows_are_refused_with_the_field_named(change, message):
    accepted, rejected = check([row(), row(**change), row()])
    assert len(accepted) == 2
    assert rejected[0]["index"] == 1
    assert message in rejected[0]["error"]


def test_missing_field_is_refused():
    bad = row()
    del bad["status"]
    _, rejected = check([bad])
    assert rejected == [{"index": 0, "error": "status: required, an integer"}]


def test_non_object_row_is_refused():
    _, rejected = check(["GET /"])
    assert rejected == [{"index": 0, "error": "row must be a JSON object"}]


def test_long_response_times_and_float_status_are_valid():
    accepted, rejected = check([row(response_time=40_000, status=404.0)])
    assert rejected == []
    assert accepted[0][4:6] == [404, 40_000]


def test_naive_timestamps_are_utc():
    accepted, _ = check([row(created_at="2026-06-01T09:30:00")])
    assert accepted[0][0] == "2026-06-01T09:30:00+00:00"


def test_long_strings_are_truncated_not_refused():
    long = "x" * 1000
    accepted, rejected = check([row(path="/" + long, hostname=long, user_agent=long, user_id=long)])
    assert rejected == []
    _, hostname, path, *_rest, ua, user_id = accepted[0]
    assert len(path) == len(hostname) == len(ua) == len(user_id) == 255


def test_lowercase_method_is_normalised():
    accepted, _ = check([row(method="post")])
    assert accepted[0][3] == "POST"


def test_privacy_level_2_drops_the_ip_at_the_door():
    accepted, _ = check([row(ip_address="8.8.8.8")], level=2)
    assert accepted[0][6] is None


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("8.8.8.8", "8.8.8.8"),
        ("203.0.113.7, 10.0.0.1", "203.0.113.7"),
        ("203.0.113.7:5123", "203.0.113.7"),
        ("[2001:db8::1]:443", "2001:db8::1"),
        ("2001:db8::1", "2001:db8::1"),
        ("unknown, 8.8.4.4", "8.8.4.4"),
        ("not-an-ip", None),
        ("", None),
        (None, None),
        (42, None),
    ],
)
def test_ip_normalisation(value, expected):
    assert normalise_ip(value) == expected


def test_envelope_errors():
    with pytest.raises(PayloadError, match="Malformed JSON"):
        parse_payload(b"{nope", max_batch=10)
    with pytest.raises(PayloadError, match="JSON object"):
        parse_payload(b"[1, 2]", max_batch=10)
    with pytest.raises(PayloadError, match="Missing 'requests'"):
        parse_payload(b'{"api_key": "k"}', max_batch=10)
    with pytest.raises(PayloadError, match="must be a list"):
        parse_payload(b'{"requests": {}}', max_batch=10)
    with pytest.raises(PayloadError, match="empty"):
        parse_payload(b'{"requests": []}', max_batch=10)
    with pytest.raises(PayloadError, match="privacy_level"):
        parse_payload(b'{"requests": [{}], "privacy_level": 3}', max_batch=10)
    with pytest.raises(PayloadError, match="Too many rows") as too_many:
        parse_payload(json.dumps({"requests": [{}] * 11}).encode(), max_batch=10)
    assert too_many.value.status == 413


def test_inflate_refuses_a_gzip_bomb_without_inflating_it_all():
    bomb = gzip.compress(b"\0" * (50 * 1024 * 1024))
    with pytest.raises(PayloadError, match="once decompressed") as refused:
        inflate(bomb, limit=1024 * 1024)
    assert refused.value.status == 413


def test_inflate_round_trip_and_garbage():
    assert inflate(gzip.compress(b'{"a": 1}'), limit=100) == b'{"a": 1}'
    with pytest.raises(PayloadError, match="not valid gzip"):
        inflate(b"definitely not gzip", limit=100)
    with pytest.raises(PayloadError, match="truncated"):
        inflate(gzip.compress(b"x" * 1000)[:20], limit=10_000)


def test_nul_and_lone_surrogates_become_replacement_characters():
    accepted, rejected = check([row(path="/a\x00b?q=1", user_agent="x\ud800y", user_id="ok😀")])
    assert rejected == []
    assert accepted[0][2] == "/a\ufffdb?q=1"
    assert accepted[0][7] == "x\ufffdy"
    assert accepted[0][8] == "ok😀"


def test_bodies_the_fast_parser_refuses_take_the_standard_rules():
    # A lone surrogate escape is legal JSON: stored as U+FFFD, not a refused batch.
    payload = parse_payload(b'{"requests": [{"user_agent": "x\\ud800y"}]}', max_batch=10)
    assert payload["requests"][0]["user_agent"] == "x\ud800y"
    # NaN and integers past 64 bits parse, then the row rules refuse them by field.
    lenient = parse_payload(
        b'{"requests": [{"response_time": NaN, "status": 1' + b"0" * 30 + b"}]}", max_batch=10
    )
    _, rejected = check([row(response_time=lenient["requests"][0]["response_time"])])
    assert "response_time" in rejected[0]["error"]
    _, rejected = check([row(status=lenient["requests"][0]["status"])])
    assert "status" in rejected[0]["error"]
    # Nesting too deep for either parser is a clear 400, not a crash.
    with pytest.raises(PayloadError, match="Malformed JSON") as deep:
        parse_payload(b'{"requests": ' + b"[" * 100_000 + b"]" * 100_000 + b"}", max_batch=10)
    assert deep.value.status == 400


@pytest.mark.parametrize(
    ("sent", "staged"),
    [
        # What the middleware sends is staged as it is.
        ("2026-06-01T10:00:00.123456+00:00", "2026-06-01T10:00:00.123456+00:00"),
        ("2026-06-01T10:00:00+00:00", "2026-06-01T10:00:00+00:00"),
        # Anything else is rewritten to that form.
        ("2026-06-01T10:00:00Z", "2026-06-01T10:00:00+00:00"),
        ("2026-06-01 10:00:00+00:00", "2026-06-01T10:00:00+00:00"),
        ("2026-06-01T10:00:00,123456+00:00", "2026-06-01T10:00:00.123456+00:00"),
        ("2026-06-01T12:00:00.5+02:00", "2026-06-01T10:00:00.500000+00:00"),
        ("2026-W23-1T10:00:00+00:00", "2026-06-01T10:00:00+00:00"),
        ("2026-06-01T10:00:00", "2026-06-01T10:00:00+00:00"),
    ],
)
def test_timestamps_are_staged_as_utc_iso_text(sent, staged):
    accepted, rejected = check([row(created_at=sent)])
    assert rejected == []
    assert accepted[0][0] == staged


@pytest.mark.parametrize(
    ("sent", "message"),
    [
        ("2026-13-01T10:00:00+00:00", "not an ISO 8601"),
        ("2026-06-01T25:00:00.000000+00:00", "not an ISO 8601"),
        ("1999-12-31T23:59:59.999999+00:00", "before 2000"),
        ("2026-06-02T12:00:01+00:00", "more than a day in the future"),
    ],
)
def test_timestamps_in_the_usual_shape_are_still_checked(sent, message):
    _, rejected = check([row(created_at=sent)])
    assert message in rejected[0]["error"]


def test_a_row_with_several_bad_fields_names_every_problem():
    bad = row(status=700, method="FETCH", created_at="soon", response_time=-3, user_id=[1])
    del bad["path"]
    _, rejected = check([row(), bad])
    assert rejected[0]["index"] == 1
    problems = rejected[0]["error"].split("; ")
    assert [p.split(":")[0] for p in problems] == [
        "created_at", "path", "method", "status", "response_time", "user_id"
    ]  # fmt: skip
