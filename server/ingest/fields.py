"""Validation of ingest payloads: pure functions, no I/O, so they are cheap to test."""

from __future__ import annotations

import json
import math
import socket
import zlib
from datetime import UTC, datetime, timedelta
from functools import lru_cache

import orjson

METHODS = frozenset(
    {"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS", "CONNECT", "TRACE"}
)
MAX_TEXT = 255
MAX_RESPONSE_TIME_MS = 24 * 3600 * 1000  # a day: anything longer is a clock bug, not a request
EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)
FUTURE_SLACK = timedelta(days=1)
TEXT_FIELDS = ("hostname", "user_agent", "user_id")

# Staged row layout: a list, to keep the staging payload small.
ROW_FIELDS = (
    "created_at",
    "hostname",
    "path",
    "method",
    "status",
    "response_time",
    "ip_address",
    "user_agent",
    "user_id",
)


class PayloadError(Exception):
    """The whole payload is refused; status is the HTTP code to answer."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class RowError(ValueError):
    """One row is refused; the message says which field and why."""


def inflate(body: bytes, limit: int) -> bytes:
    """Gunzip a body, refusing it (413) as soon as it would exceed `limit` bytes.

    Decompressing in bounded steps means a gzip bomb costs at most `limit` bytes.
    """
    decompressor = zlib.decompressobj(wbits=31)
    try:
        out = decompressor.decompress(body, limit + 1)
        if len(out) > limit or decompressor.unconsumed_tail:
            raise PayloadError(413, f"Body is over the {limit} byte limit once decompressed.")
        out += decompressor.flush()
    except zlib.error as exc:
        raise PayloadError(400, f"Body is not valid gzip: {exc}") from None
    if len(out) > limit:
        raise PayloadError(413, f"Body is over the {limit} byte limit once decompressed.")
    if not decompressor.eof:
        raise PayloadError(400, "Body is not valid gzip: the stream is truncated.")
    return out


def parse_payload(body: bytes, *, max_batch: int) -> dict:
    """Decode and check the envelope of an ingest payload (not its rows)."""
    try:
        payload = orjson.loads(body)
    except orjson.JSONDecodeError:
        # orjson is stricter than JSON as clients write it (lone surrogates, NaN, integers
        # past 64 bits): such a body takes the standard parser, and its rules and messages.
        try:
            payload = json.loads(body)
        except (UnicodeDecodeError, ValueError) as exc:
            raise PayloadError(400, f"Malformed JSON: {exc}") from None
        except RecursionError:
            raise PayloadError(400, "Malformed JSON: nested too deeply.") from None
    if not isinstance(payload, dict):
        raise PayloadError(400, "The body must be a JSON object.")
    rows = payload.get("requests")
    if rows is None:
        raise PayloadError(400, "Missing 'requests': a list of logged requests is required.")
    if not isinstance(rows, list):
        raise PayloadError(400, "'requests' must be a list.")
    if not rows:
        raise PayloadError(400, "'requests' is empty: nothing to store.")
    if len(rows) > max_batch:
        raise PayloadError(
            413, f"Too many rows: {len(rows)} in one batch, the limit is {max_batch}."
        )
    level = payload.get("privacy_level", 0)
    if isinstance(level, bool) or level not in (0, 1, 2):
        raise PayloadError(400, "'privacy_level' must be 0, 1 or 2.")
    framework = payload.get("framework")
    if framework is not None and not isinstance(framework, str):
        raise PayloadError(400, "'framework' must be a string.")
    return payload


def validate_rows(rows: list, privacy_level: int, now: datetime) -> tuple[list, list]:
    """Split rows into (staged rows, rejections); rejections are {"index", "error"}."""
    accepted, rejected = [], []
    latest = now + FUTURE_SLACK
    for index, row in enumerate(rows):
        try:
            accepted.append(_validate_row(row, privacy_level, latest))
        except RowError as exc:
            rejected.append({"index": index, "error": str(exc)})
    return accepted, rejected


def _validate_row(row, privacy_level: int, latest: datetime) -> list:
    """One row as a staged list (ROW_FIELDS); raises RowError naming every bad field."""
    if not isinstance(row, dict):
        raise RowError("row must be a JSON object")
    try:
        return _staged_row(row, privacy_level, latest)
    except RowError:
        # The fast path stops at the first problem; the caller needs to hear of all.
        raise RowError("; ".join(_problems(row, latest))) from None


def _problems(row: dict, latest: datetime) -> list[str]:
    """Every field's refusal, in ROW_FIELDS order."""
    checks = (
        lambda: _created_at(row.get("created_at"), latest),
        lambda: _text(row.get("hostname"), "hostname"),
        lambda: _path(row.get("path")),
        lambda: _method(row.get("method")),
        lambda: _status(row.get("status")),
        lambda: _response_time(row.get("response_time")),
        lambda: _text(row.get("user_agent"), "user_agent"),
        lambda: _user_id(row.get("user_id")),
    )
    problems = []
    for check in checks:
        try:
            check()
        except RowError as exc:
            problems.append(str(exc))
    return problems


def _staged_row(row: dict, privacy_level: int, latest: datetime) -> list:
    """The row as a staged list; raises RowError at the first bad field.

    Each field takes an inline test for the shape every well-behaved client sends and
    falls back to its checker (the rules and messages) otherwise: a 1,000-row batch is
    validated on every ingest request, so the common case is kept to a few comparisons.
    """
    get = row.get
    created_at = _created_at(get("created_at"), latest)
    hostname = get("hostname")
    if not _short_plain(hostname):
        hostname = _text(hostname, "hostname")
    path = get("path")
    if not (path.__class__ is str and 0 < len(path) <= MAX_TEXT and _plain(path)):
        path = _path(path)
    method = get("method")
    if not (method.__class__ is str and method in METHODS):
        method = _method(method)
    status = get("status")
    if not (status.__class__ is int and 100 <= status <= 599):
        status = _status(status)
    rt = get("response_time")
    if rt.__class__ is float and 0 <= rt <= MAX_RESPONSE_TIME_MS:
        rt = round(rt)
    elif not (rt.__class__ is int and 0 <= rt <= MAX_RESPONSE_TIME_MS):
        rt = _response_time(rt)
    ip = None if privacy_level == 2 else normalise_ip(get("ip_address"))
    user_agent = get("user_agent")
    if not _short_plain(user_agent):
        user_agent = _text(user_agent, "user_agent")
    user_id = get("user_id")
    if not (_short_plain(user_id) and user_id):
        user_id = _user_id(user_id)
    return [created_at, hostname, path, method, status, rt, ip, user_agent, user_id]


def _plain(value: str) -> bool:
    """ASCII without NUL: stored exactly as sent, nothing for storable() to do."""
    return value.isascii() and "\x00" not in value


def _short_plain(value) -> bool:
    return value.__class__ is str and len(value) <= MAX_TEXT and _plain(value)


def _canonical_utc(value) -> bool:
    """Is this text already what _created_at returns: `YYYY-MM-DDTHH:MM:SS[.ffffff]+00:00`?"""
    return (
        value.__class__ is str
        and ((len(value) == 32 and value[19] == ".") or (len(value) == 25 and value[19] == "+"))
        and value.endswith("+00:00")
        and value[4] == value[7] == "-"
        and value[10] == "T"
        and value[13] == value[16] == ":"
    )


def _created_at(value, latest: datetime) -> str:
    if _canonical_utc(value):
        # What the middleware sends: only the date's validity and range to check.
        try:
            moment = datetime.fromisoformat(value)
        except ValueError:
            moment = None
        if moment is not None and EARLIEST <= moment <= latest:
            return value
    if not isinstance(value, str):
        raise RowError("created_at: required, an ISO 8601 timestamp")
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise RowError(f"created_at: not an ISO 8601 timestamp: {value[:40]!r}") from None
    # Old clients send local time without an offset; we take it as UTC.
    moment = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    if moment < EARLIEST:
        raise RowError("created_at: before 2000-01-01")
    if moment > latest:
        raise RowError("created_at: more than a day in the future")
    return moment.isoformat()


def storable(value: str) -> str:
    """The string as sent, except what no database can hold.

    PostgreSQL text cannot contain NUL, and a lone UTF-16 surrogate (legal in
    JSON) is not UTF-8; both become U+FFFD rather than failing the whole batch.
    """
    if "\x00" in value:
        value = value.replace("\x00", "\ufffd")
    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            value = "".join("\ufffd" if "\ud800" <= ch <= "\udfff" else ch for ch in value)
    return value


def _text(value, name: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise RowError(f"{name}: must be a string")
    return storable(value[:MAX_TEXT])


def _path(value) -> str:
    if not isinstance(value, str) or not value:
        raise RowError("path: required, a non-empty string")
    return storable(value[:MAX_TEXT])


def _method(value) -> str:
    if not isinstance(value, str):
        raise RowError("method: required, a string such as 'GET'")
    method = value.upper()
    if method not in METHODS:
        raise RowError(f"method: unknown HTTP method {value[:16]!r}")
    return method


def _status(value) -> int:
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise RowError("status: required, an integer")
    if not 100 <= value <= 599:
        raise RowError(f"status: {int(value)} is outside 100-599")
    return value


def _response_time(value) -> int:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise RowError("response_time: required, a number of milliseconds")
    if not math.isfinite(value) or value < 0:
        raise RowError("response_time: must be a non-negative number")
    if value > MAX_RESPONSE_TIME_MS:
        raise RowError("response_time: more than a day")
    return round(value)


def _user_id(value) -> str | None:
    if value is None or value == "":
        return None
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise RowError("user_id: must be a string")
    return storable(str(value)[:MAX_TEXT])


def normalise_ip(value) -> str | None:
    """The first valid address in the value, or None.

    Clients often map X-Forwarded-For, which may hold a list and ports; an
    unparseable address is dropped rather than refusing the whole row.
    """
    if not isinstance(value, str) or not value or len(value) > 1024:
        return None
    return first_address(value)


@lru_cache(maxsize=65_536)  # the same clients call again and again
def first_address(value: str) -> str | None:
    """normalise_ip of a non-empty string of at most 1,024 characters."""
    for part in value.split(","):
        candidate = part.strip()
        if candidate.startswith("[") and "]" in candidate:
            candidate = candidate[1 : candidate.index("]")]
        elif candidate.count(":") == 1:
            candidate = candidate.split(":", 1)[0]
        address = canonical_ip(candidate)
        if address is not None:
            return address
    return None


def canonical_ip(text: str) -> str | None:
    """One address as PostgreSQL's inet prints it, or None if it is not one.

    inet_pton is strict (no leading zeros, no short IPv4 forms) and inet_ntop writes
    the text PostgreSQL's host() gives back (`::ffff:1.2.3.4`, where the ipaddress
    module writes `::ffff:102:304`), so both backends store and return the same text.
    An IPv6 zone (`fe80::1%eth0`, `%25eth0` in a URL) names an interface of the
    client's own machine: meaningless here, and refused by inet, so it is dropped.
    """
    try:
        return socket.inet_ntop(socket.AF_INET, socket.inet_pton(socket.AF_INET, text))
    except (OSError, ValueError):  # ValueError: NUL or a lone surrogate in the text
        pass
    try:
        packed = socket.inet_pton(socket.AF_INET6, text.partition("%")[0])
    except (OSError, ValueError):
        return None
    return socket.inet_ntop(socket.AF_INET6, packed)


def encode_rows(rows: list) -> bytes:
    return orjson.dumps(rows)


def decode_rows(payload: bytes) -> list:
    return orjson.loads(payload)
