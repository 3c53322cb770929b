"""The pure pieces: row formatting, answer classification, Retry-After parsing."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from email.utils import format_datetime

import pytest
from api_analytics.records import RowFormatter, encode_payload
from api_analytics.transport import Transport, classify, parse_retry_after


def test_rows_decode_headers_and_format_utc_timestamps():
    formatter = RowFormatter()
    created = 1_764_218_712.123456
    record = (
        created,
        12.34567,
        "POST",
        "/v1/users",
        201,
        b"Api.Example.com:443",
        b"ua/1",
        "::1",
        "u",
    )
    [row] = formatter.to_rows([record])
    assert row == {
        "hostname": "api.example.com",
        "ip_address": "::1",
        "path": "/v1/users",
        "user_agent": "ua/1",
        "method": "POST",
        "status": 201,
        "response_time": 12.346,
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
    record = (0.0, 1, "GET", "/", 200, "Custom-Host", "Custom UA", None, None)
    [row] = RowFormatter().to_rows([record])
    assert (row["hostname"], row["user_agent"]) == ("Custom-Host", "Custom UA")


def test_payload_is_compact_json():
    body = encode_payload("k", "FastAPI", 1, ['{"path":"/é"}'])
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
