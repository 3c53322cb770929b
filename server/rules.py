"""Rules the worker and the dashboard share: endpoint templates, API versions, users, time and
response-time buckets. The worker stores what they compute on every row; the dashboard
labels and explains with the same functions, so the two can never disagree."""

from __future__ import annotations

import math
import re
import socket
from bisect import bisect_right
from datetime import UTC, datetime
from functools import lru_cache

HOUR = 3600
DAY = 86400

# Dimensions a click can filter the whole dashboard by (a share link fixes some of them).
CLICK_DIMS = (
    "endpoint",
    "version",
    "status",
    "status_class",
    "location",
    "browser",
    "os",
    "device",
    "user",
    # A client-sent user id (the hosted original's "User ID" panel), a named consumer and
    # its group (docs/capture.md), an exception's error group.
    "user_id",
    "consumer",
    "consumer_group",
    "error_group",
    # The service that answered and its release (OpenTelemetry's service.name and
    # service.version, server.ingest.otlp).
    "service",
    "release",
)
MAX_TEXT = 255

# --- paths -----------------------------------------------------------------------------------
_UUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
_HEX = re.compile(r"^(?=.*\d)[0-9a-fA-F]{16,}$")
_NUMBER = re.compile(r"^\d+$")
# Long opaque tokens (base64 ids, slugs with many digits); short words stay as they are.
_TOKEN = re.compile(r"^(?=(?:.*\d){4})[A-Za-z0-9_\-]{16,}$")
_VERSION = re.compile(r"^v\d+$", re.IGNORECASE)


def strip_query(path: str) -> str:
    return path.split("?", 1)[0].split("#", 1)[0] or "/"


def _is_id(segment: str) -> bool:
    return bool(
        _NUMBER.match(segment)
        or _UUID.match(segment)
        or _HEX.match(segment)
        or _TOKEN.match(segment)
    )


@lru_cache(maxsize=100_000)  # paths repeat; the regexes are the costly part of enrichment
def template_path(path: str) -> str:
    """`/v1/users/123?x=1` -> `/v1/users/{id}`: no query string, ids replaced by {id}."""
    bare = strip_query(path)
    return "/".join("{id}" if _is_id(s) else s for s in bare.split("/"))[:MAX_TEXT]


@lru_cache(maxsize=100_000)
def api_version(path: str) -> str:
    """The first path segment like `v1`/`V2`, lower-cased, or '' when there is none."""
    for segment in strip_query(path).split("/"):
        if _VERSION.match(segment):
            return segment.lower()[:16]
    return ""


def endpoint_label(path: str, keep_params: bool, keep_ids: bool) -> str:
    """The path an endpoint is shown as, under the dashboard's two path options.

    The stats planner writes the same rule in SQL (server.stats.conditions.label_sql);
    tests hold the two to each other.
    """
    bare, sep, query = path.partition("?")
    shown = bare if keep_ids else template_path(bare)
    return shown + sep + query if keep_params and sep else shown


# --- addresses ---------------------------------------------------------------------------------


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


# --- users -----------------------------------------------------------------------------------


def user_key(ip_address: str | None, user_id: str | None) -> str:
    """Who made a request: the IP address, or the user id where there is no IP ('' if neither)."""
    if ip_address:
        return str(ip_address)[:MAX_TEXT]
    return (user_id or "")[:MAX_TEXT]


# --- time ------------------------------------------------------------------------------------


@lru_cache(maxsize=4_096)
def minute_epoch(minute: str) -> int:
    return int(datetime.fromisoformat(minute).replace(tzinfo=UTC).timestamp())


def epoch_micros(created_at: datetime | str) -> int:
    """Epoch microseconds of a datetime or of ISO 8601 UTC text.

    Staged rows carry `YYYY-MM-DDTHH:MM:SS[.ffffff]+00:00` (server.ingest); rows of a
    batch share their minutes, so that part is parsed once and cached.
    """
    if created_at.__class__ is not str:
        moment = created_at if created_at.tzinfo else created_at.replace(tzinfo=UTC)
        delta = moment - EPOCH
        return (delta.days * DAY + delta.seconds) * 1_000_000 + delta.microseconds
    if created_at[16:17] == ":" and created_at.endswith("+00:00"):
        seconds = minute_epoch(created_at[:16]) + int(created_at[17:19])
        fraction = created_at[20:-6] if created_at[19:20] == "." else ""
        return seconds * 1_000_000 + (int(fraction.ljust(6, "0")[:6]) if fraction else 0)
    return epoch_micros(datetime.fromisoformat(created_at))


EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def month_of(epoch_seconds: int) -> int:
    """The UTC month holding a moment, as YYYYMM (the columnar store's partitions)."""
    moment = datetime.fromtimestamp(epoch_seconds, UTC)
    return moment.year * 100 + moment.month


# --- response-time histogram ---------------------------------------------------------------
# Display buckets: 0-15 ms one each, then about 33 % wider each, so bucket 63 starts near
# 3 hours. Percentiles are computed from exact response times, not from these.
HIST_BUCKETS = 64
EXACT_BUCKETS = 16
HIST_BASE = 1.33


def _lower_bounds() -> tuple[int, ...]:
    bounds = list(range(EXACT_BUCKETS))
    for i in range(EXACT_BUCKETS, HIST_BUCKETS):
        bounds.append(max(bounds[-1] + 1, math.ceil(EXACT_BUCKETS * HIST_BASE ** (i - 16))))
    return tuple(bounds)


HIST_LOWER = _lower_bounds()
# The exclusive upper bound of each bucket (the last one is open; this is only for display).
HIST_UPPER = (*HIST_LOWER[1:], math.ceil(HIST_LOWER[-1] * HIST_BASE))


def rt_bucket(response_time: int) -> int:
    """The histogram bucket of a response time in milliseconds."""
    if response_time < EXACT_BUCKETS:
        return max(0, int(response_time))
    return bisect_right(HIST_LOWER, response_time) - 1


# --- masking patterns ------------------------------------------------------------------------
# A key's own patterns (server.keys.masks), applied by ingest's masking on top of the
# defaults (server.ingest.masking): what each kind names, and how long one may be.
MASK_KINDS = ("header", "field", "query")
MAX_MASK_PATTERN = 200


def compile_mask(kind: str, pattern: str) -> re.Pattern:
    """A key's masking pattern, checked: a regular expression searched in the lower-cased
    name of a header, a body field or a query parameter. Raises ValueError naming the
    problem."""
    if kind not in MASK_KINDS:
        raise ValueError(f"'kind' must be one of {', '.join(MASK_KINDS)}, not {kind!r}.")
    if not isinstance(pattern, str) or not pattern.strip():
        raise ValueError("'pattern' is empty: give a regular expression, e.g. 'session'.")
    if len(pattern) > MAX_MASK_PATTERN:
        raise ValueError(
            f"'pattern' is {len(pattern)} characters long; at most {MAX_MASK_PATTERN}."
        )
    if "\x00" in pattern:
        raise ValueError("'pattern' holds a NUL character; write it as \\x00 if you mean it.")
    try:
        return re.compile(pattern.strip().lower())
    except re.error as exc:
        raise ValueError(f"'pattern' is not a regular expression: {exc}.") from None
