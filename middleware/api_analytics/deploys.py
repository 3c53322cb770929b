"""`Config.app_version`: the flusher tells the server of a deploy (version, time, hostname)
at its first send and whenever the value changes in the running process.

Each is a POST of `{server_url}/api/deploys` with `only_if_changed`, the key in the
X-AUTH-TOKEN header: the server records it only when the version differs from the last
one recorded for the key and hostname, so every worker of an app, and every restart with
the same version, makes one marker. The hostname is the one the rows carry (the API's,
from the Host header or `get_hostname`), so the release comparison finds the rows; one
deploy per hostname the process has served, at most MAX_HOSTS.

Runs in the flusher thread only; the request path pays nothing for it.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterable
from typing import Any

from . import __version__
from .records import RowFormatter

logger = logging.getLogger(__name__)

MAX_VERSION = 100
MAX_HOSTS = 20
RETRY_MAX = 300.0  # seconds between attempts while the server cannot be reached


def check_version(value: Any) -> str | None:
    """The version as sent (stripped), None when unset; ValueError names what is wrong."""
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip():
        raise ValueError("app_version must be a non-empty string (or None)")
    value = value.strip()
    if len(value) > MAX_VERSION:
        raise ValueError(f"app_version must be at most {MAX_VERSION} characters")
    if any(ord(c) < 32 for c in value):
        raise ValueError("app_version must not hold control characters")
    return value


def _host(raw: bytes | str | None) -> str | None:
    """A record's hostname as its row will carry it (records.RowFormatter)."""
    return RowFormatter.hostname(raw) if type(raw) is bytes else raw


class Announcer:
    """What has been told to the server of the app's version, and what is still to tell."""

    def __init__(self, api_key: str, framework: str) -> None:
        self._api_key = api_key
        self._framework = framework
        self._config: Any = None
        self.version: str | None = None
        self._since = 0.0  # wall-clock time the version was first seen
        self._hosts: set[str | None] = set()  # hostnames served (at most MAX_HOSTS)
        self._raw: set[bytes | str] = set()  # the raw values they were read from
        self._told: set[str | None] = set()  # those the current version was told for
        self._retry_at = 0.0
        self._failures = 0
        self._warned: set[str] = set()
        # A key a header cannot carry is refused by the server anyway: never send it.
        self._sendable = api_key.isascii() and api_key.isprintable()

    def follow(self, config: Any) -> None:
        """Read the version from `config` from now on (its value now dates the first)."""
        if config is self._config:
            return
        self._config = config
        self._read(time.time())

    def _read(self, now: float) -> None:
        try:
            version = check_version(getattr(self._config, "app_version", None))
        except ValueError as exc:
            self._warn_once(str(exc), "API Analytics: %s; no deploy is reported", exc)
            version = None
        if version != self.version:
            self.version, self._since, self._told = version, now, set()
            self._retry_at = self._failures = 0

    def see(self, raw_hosts: Iterable[bytes | str]) -> None:
        """Note the hostnames of the records sent so far (while a version is set): the raw
        values the row formatter cached, a handful, rather than each record's (that cost
        the flusher 4-5 % more CPU a batch, bench/client_reports.py)."""
        hosts = self._hosts
        if self.version is None or len(hosts) >= MAX_HOSTS:
            return
        seen = self._raw
        for raw in list(raw_hosts):
            if raw in seen:
                continue
            if len(hosts) >= MAX_HOSTS or len(seen) >= 4 * MAX_HOSTS:
                break
            seen.add(raw)
            hosts.add(_host(raw))

    def announce(self, transport: Any, timeout: float) -> None:
        """POST a deploy for each hostname not told of the current version yet."""
        if self._config is None:
            return
        self._read(time.time())
        if self.version is None or not self._sendable or time.monotonic() < self._retry_at:
            return
        for host in list(self._hosts - self._told):
            outcome = transport.post_deploy(self._body(host), self._api_key, timeout)
            if outcome.kind == "retry":
                self._failures += 1
                self._retry_at = time.monotonic() + min(RETRY_MAX, 2.0**self._failures)
                return
            self._told.add(host)
            if outcome.kind != "sent":  # 4xx: this version will not be recorded as sent
                self._warn_once(
                    f"refused {outcome.status}",
                    "API Analytics server did not record the deploy of app_version (HTTP %s: "
                    "%s); data is still sent",
                    outcome.status,
                    outcome.detail,
                )
        self._failures = 0

    def _body(self, host: str | None) -> bytes:
        moment = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(self._since))
        millis = int(self._since * 1000) % 1000
        return json.dumps({
            "version": self.version,
            "time": f"{moment}.{millis:03d}+00:00",
            "hostname": host,
            "only_if_changed": True,
            "description": f"app_version, reported by api-analytics-middleware/{__version__} "
            f"({self._framework})",
        }).encode()  # fmt: skip

    def _warn_once(self, what: str, message: str, *args: Any) -> None:
        if what not in self._warned:
            self._warned.add(what)
            logger.warning(message, *args)
