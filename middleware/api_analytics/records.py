"""Turning buffered request tuples into the JSON rows the server ingests.

The request path stores a plain tuple and leaves every decode, parse and format to
the flusher thread, so the host API pays only for an append.
"""

from __future__ import annotations

import json
import time
import zlib
from json.encoder import encode_basestring  # type: ignore[attr-defined]
from typing import Any, NamedTuple
from urllib.parse import urlsplit

from .capture import Extra
from .extras import extras_json, warn_once


class Record(NamedTuple):
    """One request as buffered on the request path.

    `hostname` and `user_agent` may still be the raw header bytes; `to_rows` decodes them
    (a hostname given as bytes is a Host header: its port is dropped; as str, it is kept
    as it is, as a user's mapper returned it).
    """

    started: float  # perf_counter() when the request arrived
    finished: float  # perf_counter() when its last body chunk was sent
    method: str
    path: str | None
    status: int | str  # a WSGI status line ("200 OK") is parsed by the flusher
    hostname: bytes | str | None
    user_agent: bytes | str | None
    ip_address: str | None
    user_id: str | None
    extra: Extra | None  # the optional fields, if the request has any (api_analytics.capture)


_MAX_CACHED = 4096
# ".000+00:00" ... ".999+00:00": created_at has millisecond precision, looked up not formatted.
_MILLIS = [f".{ms:03d}+00:00" for ms in range(1000)]
_WHOLE_MS = [str(ms) for ms in range(1000)]  # response times, looked up not formatted


def _json_string(value: object) -> str:
    """A JSON string literal for str values, null for anything else."""
    return encode_basestring(value) if type(value) is str else "null"


class RowFormatter:
    """Formats records straight into JSON text, caching what repeats between requests.

    Hostnames, user agents and methods come from a small set, so their JSON literals are
    cached; timestamps share their formatted second. This keeps the flusher's CPU per
    record at a couple of microseconds, which matters: it runs on the host API's core.
    """

    def __init__(self) -> None:
        self._second = -1
        self._second_text = ""
        self._hosts: dict[bytes | str, str] = {}
        self._agents: dict[bytes | str, str] = {}
        self._methods: dict[str, str] = {}
        self._heads: dict[tuple, str] = {}

    def _second_prefix(self, second: int) -> str:
        if second != self._second:
            self._second = second
            self._second_text = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
        return self._second_text

    @staticmethod
    def hostname(host: bytes) -> str | None:
        """The host part of a Host header, lower-cased, without port or brackets."""
        try:
            return urlsplit("//" + host.decode("latin-1")).hostname
        except ValueError:
            return None

    def _literal(self, cache: dict, value: bytes | str, convert) -> str:
        literal = cache.get(value)
        if literal is None:
            literal = _json_string(convert(value) if type(value) is bytes else value)
            if len(cache) >= _MAX_CACHED:
                cache.clear()
            cache[value] = literal
        return literal

    def _head(self, key: tuple) -> str:
        """A row up to its response_time: the fields that repeat between requests."""
        path, ip, user_id, agent, status, host, method = key
        host_json = "null" if host is None else self._literal(self._hosts, host, self.hostname)
        agent_json = "null" if agent is None else self._literal(self._agents, agent, _latin1)
        head = (
            f'{{"hostname":{host_json},"user_agent":{agent_json},'
            f'"method":{self._literal(self._methods, method, _latin1)},'
            f'"ip_address":{"null" if ip is None else encode_basestring(ip)},'
            f'"user_id":{"null" if user_id is None else encode_basestring(user_id)},'
            f'"path":{"null" if path is None else encode_basestring(path)},'
            f'"status":{_status_json(status)},"response_time":'
        )
        if len(self._heads) >= _MAX_CACHED:
            self._heads.clear()
        self._heads[key] = head
        return head

    def to_json(
        self, records: list[Record], clock_offset: float = 0.0, leading: str = "", closing: str = ""
    ) -> str:
        """The records as JSON objects in the ingest row format, separated by commas,
        between `leading` and `closing`.

        `clock_offset` turns the records' perf_counter readings into wall-clock time:
        time() - perf_counter(), read when the batch is encoded.

        ip_address, path and user_id are str or None here (the middleware checks what
        mappers return); hostname and user agent may still be raw header bytes. The
        keys come in the order that lets one cached string cover everything but the
        two timings, and each row is three pieces of one list joined once at the end:
        about 0.35 us a record (bench: a few per mille of a hello-world request).
        """
        parts = [leading]
        append = parts.append
        heads = self._heads
        millis = _MILLIS
        whole_ms = _WHOLE_MS
        # Milliseconds are counted from a base second near the batch, so they stay small
        # (multi-digit integers cost several times as much to divide and subtract).
        base = int(records[0][0] + clock_offset) if records else 0
        shift = clock_offset - base
        second_now = None
        low = high = 0.0  # the millisecond [low, high) the current stamp is for
        stamp = head = ""
        last_key = None
        for started, finished, method, path, status, host, agent, ip, user_id, extra in records:
            # The fields that differ most between requests first: a mismatch stops early.
            key = (path, ip, user_id, agent, status, host, method)
            if key != last_key:  # requests in a row often share everything but timings
                last_key = key
                head = heads.get(key)
                if head is None:
                    head = self._head(key)
            append(head)
            # Whole milliseconds, rounded: what the server stores.
            elapsed = int((finished - started) * 1000.0 + 0.5)
            append(whole_ms[elapsed] if 0 <= elapsed < 1000 else str(elapsed))
            ms = (started + shift) * 1000.0  # wall-clock ms since `base`
            if not low <= ms < high:  # a busy API logs several requests a millisecond
                # To the microsecond first, as datetime rounds, then down to the ms.
                whole = round(ms * 1000.0) // 1000
                low = whole - 0.0005
                high = whole + 0.9995
                second = whole // 1000
                if second != second_now:
                    prefix = self._second_prefix(base + second)
                    second_now = second
                stamp = f',"created_at":"{prefix}{millis[whole - second * 1000]}"}},'
            append(stamp if extra is None else stamp[:-2] + self._extras(extra) + "},")
        if len(parts) > 1:
            parts[-1] = parts[-1][:-1]  # no comma after the last row
        append(closing)
        return "".join(parts)

    def _extras(self, extra: Extra) -> str:
        """The row's optional fields as JSON, formatted once (a batch that outgrew the size
        limit formats its rest again), after which what was captured is let go."""
        text = extra.text
        if text is None:
            try:
                text = extras_json(extra)
            except Exception as exc:  # one row's optional fields must not lose the batch
                reason = f"failed ({type(exc).__name__})"
                warn_once(extra.settings, "formatting a row's extras", reason)
                text = ""
            extra.text = text
            extra.exception = extra.error_body = extra.validation = None
            extra.consumer = extra.request = extra.response = None
        return text

    def to_rows(self, records: list[Record], clock_offset: float = 0.0) -> list[dict[str, Any]]:
        """The rows as dicts (what the server will decode)."""
        return json.loads(f"[{self.to_json(records, clock_offset)}]")


def _status_json(status: object) -> str:
    """The status as a JSON number; whatever the app sent that is no integer becomes null
    (the server then rejects that one row, and says so) rather than breaking the batch.

    A WSGI status line ("404 Not Found", as `start_response` and Falcon give it) is parsed
    here rather than on the request path: this runs once per distinct row head.
    """
    if type(status) is str:
        status = status[:3] if status[:3].isdigit() and status[3:4] in ("", " ") else None
    try:
        return str(int(status))  # type: ignore[call-overload]
    except (TypeError, ValueError, OverflowError):
        return "null"


def host_name(host: str | None) -> str | None:
    """The hostname of a Host header value, as the flusher stores it: lower-cased,
    without port or brackets (what the default hostname mappers return)."""
    return None if host is None else RowFormatter.hostname(host.encode("latin-1", "replace"))


def _latin1(value: bytes) -> str:
    return value.decode("latin-1")


def payload_frame(api_key: str, framework: str, privacy_level: int) -> tuple[str, str]:
    """The text before and after the rows of an ingest body."""
    key = encode_basestring(api_key)
    head = f'{{"api_key":{key},"framework":{encode_basestring(framework)},'
    head += f'"privacy_level":{int(privacy_level)},"requests":['
    return head, "]}"


def encode_payload(api_key: str, framework: str, privacy_level: int, rows: str) -> bytes:
    """The ingest body as compact UTF-8 JSON, from rows already encoded as JSON text."""
    head, tail = payload_frame(api_key, framework, privacy_level)
    return (head + rows + tail).encode("utf-8", "replace")


def encode_batches(
    formatter: RowFormatter, frame: tuple[str, str], records: list[Record], max_bytes: int,
    chunk: int, extras_chunk: int, gzip: tuple,
) -> list[tuple[list[Record], bytes]]:  # fmt: skip
    """The records as gzip-compressed ingest bodies, each of at most `max_bytes` of JSON
    (a single record may be more): [(records, body), ...].

    The default batch (1,000 records) is formatted in one stretch and compressed in one
    call: every zlib call hands the GIL to the event loop and takes it back, and on a core
    shared with the event loop each hand-over cost the host more than the latency it saved
    (measured with bench/middleware.py). Larger batches (max_batch up to 5,000) go `chunk`
    records at a time, so a request waits behind about half a millisecond of formatting at
    most. Rows with optional fields (a captured body is kilobytes) go `extras_chunk` at a
    time, so the text in hand stays small enough for the CPU caches the host API shares.
    """
    head, tail = frame
    # Records hold perf_counter readings; the wall clock is read here, once a batch.
    clock_offset = time.time() - time.perf_counter()
    count = len(records)
    step = extras_chunk if any(record[9] is not None for record in records) else chunk
    batches = []
    first = 0
    while first < count:
        compressor = zlib.compressobj(*gzip)
        parts = []
        size = 0
        start = first
        while start < count:
            end = min(start + step, count)
            text = formatter.to_json(
                records[start:end], clock_offset, head if start == first else ",",
                tail if end >= count else "",
            )  # fmt: skip
            # "replace": a lone surrogate from a mapper must not make the batch unsendable.
            data = text.encode("utf-8", "replace")
            if size + len(data) > max_bytes and end - first > 1:
                if start == first:  # one chunk alone is too large: take fewer records
                    step = max(1, (end - start) // 2)
                    continue
                break  # the rest goes in the next batch (its extras formatted already)
            parts.append(compressor.compress(data))
            size += len(data)
            start = end
        if start < count:
            parts.append(compressor.compress(tail.encode()))
        parts.append(compressor.flush())
        batches.append((records[first:start], b"".join(parts)))
        first = start
    return batches
