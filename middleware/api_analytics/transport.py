"""One HTTP POST of an encoded batch to the server, and what its answer means."""

from __future__ import annotations

import http.client
import json
import ssl
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from time import time
from urllib.parse import urlsplit

from . import __version__

INGEST_PATH = "/api/log-request"
_MAX_ANSWER_BYTES = 64 * 1024
_MAX_RETRY_AFTER = 3600.0
_USER_AGENT = f"api-analytics-middleware/{__version__}"


@dataclass(frozen=True)
class Outcome:
    """What to do with a batch after one attempt.

    kind is "sent", "retry" (connection error, 5xx, 408, 429), "too_large" (413) or
    "refused" (any other answer: the batch will never be accepted as it is).
    """

    kind: str
    status: int | None = None
    detail: str = ""
    retry_after: float | None = None
    rejected: int = 0


class Transport:
    """Posts gzip-compressed JSON bodies to `{server_url}/api/log-request`."""

    def __init__(self, server_url: str) -> None:
        parts = urlsplit(server_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("server_url must be an http:// or https:// URL with a host")
        self._https = parts.scheme == "https"
        self._host = parts.hostname
        self._port = parts.port  # may raise ValueError for a bad port: callers validate
        self.path = parts.path.rstrip("/") + INGEST_PATH
        self._ssl_context = ssl.create_default_context() if self._https else None

    def _connect(self, timeout: float) -> http.client.HTTPConnection:
        if self._https:
            return http.client.HTTPSConnection(
                self._host, self._port, timeout=timeout, context=self._ssl_context
            )
        return http.client.HTTPConnection(self._host, self._port, timeout=timeout)

    def post(self, body: bytes, batch_id: str, timeout: float) -> Outcome:
        """Send one gzip body; never raises for network or server trouble."""
        headers = {
            "Content-Type": "application/json",
            "Content-Encoding": "gzip",
            "User-Agent": _USER_AGENT,
            # Stable across retries of the same batch, so a server may de-duplicate.
            "Idempotency-Key": batch_id,
        }
        # A fresh connection per batch: a kept-alive socket the server closed while we
        # waited would fail after sending, and retrying then could store rows twice.
        conn = self._connect(timeout)
        try:
            conn.request("POST", self.path, body=body, headers=headers)
            response = conn.getresponse()
            answer = response.read(_MAX_ANSWER_BYTES)
            return classify(response.status, response.getheader("Retry-After"), answer)
        except (OSError, http.client.HTTPException) as exc:
            return Outcome("retry", detail=type(exc).__name__)
        finally:
            conn.close()


def classify(status: int, retry_after: str | None, answer: bytes) -> Outcome:
    """Map a server answer onto what the flusher should do with the batch."""
    if 200 <= status < 300:
        return Outcome("sent", status, rejected=_rejected_count(answer))
    if status == 429 or status == 408 or status >= 500:
        return Outcome("retry", status, retry_after=parse_retry_after(retry_after))
    if status == 413:
        return Outcome("too_large", status, detail=_message(answer))
    return Outcome("refused", status, detail=_message(answer))


def parse_retry_after(value: str | None) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or HTTP date)."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            seconds = parsedate_to_datetime(value).timestamp() - time()
        except (TypeError, ValueError, IndexError):
            return None
    if seconds != seconds:  # NaN
        return None
    return min(max(seconds, 0.0), _MAX_RETRY_AFTER)


def _decode_answer(answer: bytes) -> object:
    try:
        return json.loads(answer)
    except ValueError:
        return None


def _message(answer: bytes) -> str:
    """The server's `message`, else the start of its answer, kept short for a log line."""
    data = _decode_answer(answer)
    if isinstance(data, dict) and isinstance(data.get("message"), str):
        text = data["message"]
    else:
        text = answer.decode("utf-8", "replace")
    text = " ".join(text.split())
    return text[:200] + ("…" if len(text) > 200 else "")


def _rejected_count(answer: bytes) -> int:
    data = _decode_answer(answer)
    if isinstance(data, dict) and isinstance(data.get("rejected"), list):
        return len(data["rejected"])
    return 0
