"""Turning buffered request tuples into the JSON rows the server ingests.

The request path stores a plain tuple and leaves every decode, parse and format to
the flusher thread, so the host API pays only for an append.
"""

from __future__ import annotations

import json
import time
from typing import Any, NamedTuple
from urllib.parse import urlsplit


class Record(NamedTuple):
    """One request as buffered on the request path.

    `hostname` and `user_agent` may still be the raw header bytes; `to_rows` decodes them.
    """

    created: float  # time.time() when the request arrived
    response_time: float  # milliseconds
    method: str
    path: str | None
    status: int
    hostname: bytes | str | None
    user_agent: bytes | str | None
    ip_address: str | None
    user_id: str | None


_SEPARATORS = (",", ":")
_MAX_CACHED_HOSTS = 1024


class RowFormatter:
    """Formats records into rows, caching the per-second timestamp and host parsing."""

    def __init__(self) -> None:
        self._second = -1
        self._second_text = ""
        self._hosts: dict[bytes, str | None] = {}

    def created_at(self, created: float) -> str:
        """ISO 8601 in UTC with an explicit offset and microseconds."""
        second = int(created)
        if second != self._second:
            self._second = second
            self._second_text = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
        micros = int((created - second) * 1_000_000)
        return f"{self._second_text}.{micros:06d}+00:00"

    def hostname(self, host: bytes) -> str | None:
        """The host part of a Host header, lower-cased, without port or brackets."""
        cached = self._hosts.get(host, False)
        if cached is not False:
            return cached
        try:
            name = urlsplit("//" + host.decode("latin-1")).hostname
        except ValueError:
            name = None
        if len(self._hosts) >= _MAX_CACHED_HOSTS:
            self._hosts.clear()
        self._hosts[host] = name
        return name

    def to_rows(self, records: list[Record]) -> list[dict[str, Any]]:
        rows = []
        append = rows.append
        for created, elapsed, method, path, status, host, agent, ip, user_id in records:
            if type(host) is bytes:
                host = self.hostname(host)
            if type(agent) is bytes:
                agent = agent.decode("latin-1")
            append(
                {
                    "hostname": host,
                    "ip_address": ip,
                    "path": path,
                    "user_agent": agent,
                    "method": method,
                    "status": status,
                    "response_time": round(elapsed, 3),
                    "user_id": user_id,
                    "created_at": self.created_at(created),
                }
            )
        return rows


def encode_payload(
    api_key: str, framework: str, privacy_level: int, rows: list[dict[str, Any]]
) -> bytes:
    """The ingest body as compact UTF-8 JSON."""
    payload = {
        "api_key": api_key,
        "framework": framework,
        "privacy_level": privacy_level,
        "requests": rows,
    }
    return json.dumps(payload, separators=_SEPARATORS, ensure_ascii=False).encode()
