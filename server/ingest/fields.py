"""The fields of a logged request, declared once, and their rules: each row checked on its
own (the column-by-column fast path, server.ingest.columns, stores the same rows).

Pure functions, no I/O, so they are cheap to test."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import orjson

from server.rules import normalise_ip

METHODS = frozenset(
    {"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS", "CONNECT", "TRACE"}
)
MAX_TEXT = 255
MAX_RESPONSE_TIME_MS = 24 * 3600 * 1000  # a day: anything longer is a clock bug, not a request
EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)
FUTURE_SLACK = timedelta(days=1)


class PayloadError(Exception):
    """The whole payload is refused; status is the HTTP code to answer."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class RowError(ValueError):
    """One row is refused; the message says which field and why."""


def validate_rows(rows: list, privacy_level: int, now: datetime, extras=None) -> tuple[list, list]:
    """Split rows into (staged rows, rejections); rejections are {"index", "error"}.

    `extras(row)` checks a row's optional fields (server.ingest.capture): a dict of
    them becomes the staged row's tenth element; RowError refuses the row too.
    """
    accepted, rejected = [], []
    latest = now + FUTURE_SLACK
    for index, row in enumerate(rows):
        problems, staged, found = [], None, None
        try:
            staged = _validate_row(row, privacy_level, latest)
        except RowError as exc:
            problems.append(str(exc))
        if extras is not None and isinstance(row, dict):
            try:
                found = extras(row)
            except RowError as exc:
                problems.append(str(exc))
        if problems:
            rejected.append({"index": index, "error": "; ".join(problems)})
            continue
        if found:
            staged.append(found)
        accepted.append(staged)
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
    """Every field's refusal, in FIELDS order."""
    problems = []
    for field in FIELDS:
        if field.check is None:
            continue
        try:
            field.check(row.get(field.name), latest)
        except RowError as exc:
            problems.append(str(exc))
    return problems


def _staged_row(row: dict, privacy_level: int, latest: datetime) -> list:
    """The row as a staged list (ROW_FIELDS order); raises RowError at the first bad field.

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


@dataclass(frozen=True)
class Field:
    """One field of a logged request: its name in the payload (and in a staged row, whose
    values come in this order) and its rule, value -> stored value or RowError. The
    address has no rule: one that is not an address is dropped, the row kept."""

    name: str
    check: Callable | None


FIELDS = (
    Field("created_at", _created_at),
    Field("hostname", lambda value, _latest: _text(value, "hostname")),
    Field("path", lambda value, _latest: _path(value)),
    Field("method", lambda value, _latest: _method(value)),
    Field("status", lambda value, _latest: _status(value)),
    Field("response_time", lambda value, _latest: _response_time(value)),
    Field("ip_address", None),
    Field("user_agent", lambda value, _latest: _text(value, "user_agent")),
    Field("user_id", lambda value, _latest: _user_id(value)),
)
# A staged row is a list in this order, to keep the staging payload small.
ROW_FIELDS = tuple(field.name for field in FIELDS)


def encode_rows(rows: list) -> bytes:
    """Staged rows (ROW_FIELDS lists) as the staging table keeps them."""
    return orjson.dumps(rows)


def decode_rows(payload: bytes) -> list:
    return orjson.loads(payload)
