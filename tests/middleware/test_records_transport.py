"""The pure pieces: row formatting, answer classification, Retry-After parsing."""

from __future__ import annotations

import gzip
import json
import time
from datetime import UTC, datetime
from email.utils import format_datetime
from http import HTTPStatus

import pytest
from api_analytics.records import RowFormatter, encode_payload
from api_analytics.transport import Transport, classify, parse_retry_after


def test_rows_decode_headers_and_format_utc_timestamps():
    formatter = RowFormatter()
    created = 1_764_218_712.123456
    record = (
        created,
        created + 0.01234567,
        "POST",
        "/v1/users",
        201,
        b"Api.Example.com:443",
        b"ua/1",
        "::1",
        "u",
        None,  # no optional fields
    )
    [row] = formatter.to_rows([record])
    assert row == {
        "hostname": "api.example.com",
        "ip_address": "::1",
        "path": "/v1/users",
        "user_agent": "ua/1",
        "method": "POST",
        "status": 201,
        "response_time": 12,
        "user_id": "u",
        "created_at": row["created_at"],
    }
    parsed = datetime.fromisoformat(row["created_at"])
    assert parsed.tzinfo is not None and parsed.utcoffset().total_seconds() == 0
    assert 0 <= created - parsed.timestamp() < 1e-3  # millisecond precision


@pytest.mark.parametrize(
    ("header", "hostname"),
    [(b"[::1]:8000", "::1"), (b"EXAMPLE.org", "example.org"), (b"bad host[", None)],
)
def test_hostname_from_host_header(header, hostname):
    assert RowFormatter().hostname(header) == hostname


def test_mapper_strings_pass_through_unchanged():
    record = (0.0, 0.001, "GET", "/", 200, "Custom-Host", "Custom UA", None, None, None)
    [row] = RowFormatter().to_rows([record])
    assert (row["hostname"], row["user_agent"]) == ("Custom-Host", "Custom UA")


def test_payload_is_compact_json():
    body = encode_payload("k", "FastAPI", 1, '{"path":"/é"}')
    assert json.loads(body) == {
        "api_key": "k",
        "framework": "FastAPI",
        "privacy_level": 1,
        "requests": [{"path": "/é"}],
    }
    assert b" " not in body


@pytest.mark.parametrize(
    ("status", "kind"),
    [
        (201, "sent"),
        (200, "sent"),
        (429, "retry"),
        (500, "retry"),
        (503, "retry"),
        (408, "retry"),
        (413, "too_large"),
        (400, "refused"),
        (401, "refused"),
        (415, "refused"),
        (301, "refused"),
    ],
)
def test_classify(status, kind):
    assert classify(status, None, b'{"message": "m"}').kind == kind


def test_classify_reads_message_and_rejected_rows():
    refused = classify(401, None, b'{"message": "unknown API key"}')
    assert refused.detail == "unknown API key"
    sent = classify(201, None, b'{"accepted": 1, "rejected": [{"index": 0, "error": "x"}]}')
    assert sent.rejected == 1
    assert classify(400, None, b"<html>oops</html>").detail == "<html>oops</html>"


def test_retry_after_seconds_and_http_dates():
    assert parse_retry_after("7") == 7.0
    assert parse_retry_after(None) is None
    assert parse_retry_after("soon") is None
    assert parse_retry_after("-5") == 0.0
    assert parse_retry_after("999999") == 3600.0
    later = datetime.fromtimestamp(datetime.now(UTC).timestamp() + 30, UTC)
    assert 25 <= parse_retry_after(format_datetime(later, usegmt=True)) <= 30


@pytest.mark.parametrize("url", ["ftp://x", "localhost:8000", "http://", ""])
def test_transport_refuses_bad_urls(url):
    with pytest.raises(ValueError):
        Transport(url)


def test_transport_path_keeps_a_prefix():
    assert Transport("https://example.com/a/b/").path == "/a/b/api/log-request"


def _record(i: int) -> tuple:
    started = 1000.0 + i  # perf_counter readings
    return (started, started + 0.0016, "GET", f"/items/{i}", 200, b"api.example.com", b"ua/1",
            "10.0.0.1", None, None)  # fmt: skip


def _decode_batch(body: bytes) -> dict:
    return json.loads(gzip.decompress(body))


def test_batches_are_gzip_json_holding_every_record_once(monkeypatch):
    from api_analytics import core

    monkeypatch.setattr(core, "ENCODE_CHUNK", 100)
    client = core.Client("k", "http://127.0.0.1:9", 0)
    records = [_record(i) for i in range(250)]  # three encoding chunks
    offset = time.time() - time.perf_counter()
    [batch] = client._encode(records)
    payload = _decode_batch(batch.body)
    assert (payload["api_key"], payload["framework"], payload["privacy_level"]) == (
        "k", "FastAPI", 0,
    )  # fmt: skip
    rows = payload["requests"]
    assert [r["path"] for r in rows] == [f"/items/{i}" for i in range(250)]
    expected = RowFormatter().to_rows(records)
    for row, want, record in zip(rows, expected, records, strict=True):
        # perf_counter readings become wall-clock time with the offset read at encoding
        created = datetime.fromisoformat(row.pop("created_at")).timestamp()
        assert abs(created - (record[0] + offset)) < 0.01
        want.pop("created_at")
        assert row == want
        assert row["response_time"] == 2  # 1.6 ms, rounded to whole milliseconds


def test_a_body_over_the_size_limit_is_split_in_halves(monkeypatch):
    from api_analytics import core

    monkeypatch.setattr(core, "MAX_BODY_BYTES", 20_000)
    client = core.Client("k", "http://127.0.0.1:9", 0)
    records = [_record(i) for i in range(400)]  # ~80 kB of JSON
    batches = client._encode(records)
    assert len(batches) >= 4
    paths = [r["path"] for b in batches for r in _decode_batch(b.body)["requests"]]
    assert paths == [f"/items/{i}" for i in range(400)]
    assert all(len(gzip.decompress(b.body)) <= 20_000 for b in batches)


def test_created_at_across_seconds_and_out_of_order_records():
    offset = 1_764_218_711.75  # wall clock minus perf_counter
    starts = [100.2, 100.9999, 100.25, 99.1, 101.5004, 100.2]  # not in order: arrival order
    records = [(s, s + 0.004, "GET", "/", 200, b"h", None, None, None, None) for s in starts]
    rows = RowFormatter().to_rows(records, offset)
    for row, start in zip(rows, starts, strict=True):
        expected = datetime.fromtimestamp(start + offset, UTC)
        expected = expected.replace(microsecond=expected.microsecond // 1000 * 1000)
        assert datetime.fromisoformat(row["created_at"]) == expected
        assert row["created_at"].endswith("+00:00") and row["response_time"] == 4


def test_rows_in_a_row_that_differ_in_one_field_keep_their_own_values():
    base = (5.0, 5.0021, "GET", "/same", 200, b"h", b"ua", "10.0.0.1", None, None)
    changes = [{}, {4: 404}, {}, {7: "10.0.0.2"}, {8: "user"}, {6: None}, {2: "POST"}, {5: b"x"}]
    records = []
    for change in changes:
        record = list(base)
        for index, value in change.items():
            record[index] = value
        records.append(tuple(record))
    rows = RowFormatter().to_rows(records, 1_764_218_711.0)
    got = [(r["method"], r["status"], r["hostname"], r["user_agent"], r["ip_address"],
            r["user_id"], r["response_time"]) for r in rows]  # fmt: skip
    want = [(rec[2], rec[4], rec[5] and rec[5].decode(), rec[6] and rec[6].decode(), rec[7],
             rec[8], 2) for rec in records]  # fmt: skip
    assert got == want
    assert len({r["created_at"] for r in rows}) == 1


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        ("200 OK", 200),  # WSGI start_response and Falcon status lines
        ("404 Not Found", 404),
        ("503", 503),
        (HTTPStatus.IM_A_TEAPOT, 418),  # Falcon's resp.status may be an HTTPStatus
        ("OK 200", None),
        ("2000 Odd", None),
        ("", None),
        (None, None),
    ],
)
def test_status_lines_and_enums_become_the_status_number(status, expected):
    record = (1.0, 1.001, "GET", "/", status, "h", None, None, None, None)
    [row] = RowFormatter().to_rows([record])
    assert row["status"] == expected
    assert row["hostname"] == "h"  # a str hostname (a mapper's) is kept as it is


def test_a_servers_retry_after_is_kept_and_spread():
    """Never sooner than the server asked, and not every client at the same moment."""
    from api_analytics.core import Client

    client = Client("spread-key", "http://127.0.0.1:9", 0)
    delays = [client._retry_delay(1, 5.0) for _ in range(200)]
    assert min(delays) >= 5.0
    assert max(delays) <= 6.25
    assert len({round(d, 3) for d in delays}) > 100  # spread, not one moment
    backoffs = [client._retry_delay(3, None) for _ in range(200)]
    assert all(2.0 <= d <= 4.0 for d in backoffs)  # 1 s doubled twice, jittered down to half
