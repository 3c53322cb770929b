"""The optional fields of a logged request (docs/capture.md): its consumer, exception,
validation errors and captured request and response, and the service, release and route
template that OpenTelemetry spans name (server.ingest.otlp, README.md: OpenTelemetry),
checked (a bad one refuses its row, named) and masked again with the key's patterns before
anything is staged or stored.

A row's checked extras are one dict, `{"consumer": ..., "exception": ..., ...}` holding
only the fields it had; a staged row carries it as a tenth element.
"""

from __future__ import annotations

from server.ingest.fields import RowError, storable
from server.ingest.masking import Masks, mask_body, mask_headers, mask_query

EXTRA_FIELDS = (
    "consumer",
    "exception",
    "validation_errors",
    "request",
    "response",
    "service",
    "release",
    "route",
)
MAX_MESSAGE = 1024
MAX_FRAMES = 50
MAX_VALIDATION = 100
MAX_HEADERS = 100
MAX_HEADER_VALUE = 8192
MAX_QUERY = 8192
MAX_BODY = 64 * 1024
OMITTED = frozenset({"binary", "streamed", "sampled_out", "dropped"})


def extras_of(row: dict, masks: Masks) -> dict | None:
    """The row's optional fields, checked and masked; None when it has none. Raises
    RowError naming every bad one (never quoting what was sent: it may be a secret)."""
    found, problems = {}, []
    for name in EXTRA_FIELDS:
        value = row.get(name)
        if value is None:
            continue
        # A label as every OpenTelemetry span carries them (plain text within its limit) is
        # taken inline: a call per label of every span was a third of an export's CPU.
        limit = LABEL_LIMITS.get(name)
        if (
            limit
            and value.__class__ is str
            and 0 < len(value) <= limit
            and value.isascii()
            and "\x00" not in value
        ):
            found[name] = value
            continue
        try:
            found[name] = CHECKS[name](value, masks)
        except RowError as exc:
            problems.append(f"{name}: {exc}")
    if problems:
        raise RowError("; ".join(problems))
    return found or None


def _text(value, what: str, limit: int, *, required: bool = False) -> str | None:
    if value is None and not required:
        return None
    if not isinstance(value, str) or (required and not value):
        raise RowError(f"{what} must be {'a non-empty ' if required else 'a '}string")
    if len(value) > limit:
        raise RowError(f"{what} is longer than {limit} characters")
    return storable(value)


def consumer(value, _masks: Masks) -> dict:
    """A string id, or {"id", "name", "group"}."""
    if isinstance(value, str | int) and not isinstance(value, bool):
        value = {"id": str(value)}
    if not isinstance(value, dict):
        raise RowError("must be a string id or an object with an id")
    return {
        "id": _text(value.get("id"), "its id", 255, required=True),
        "name": _text(value.get("name"), "its name", 255),
        "group": _text(value.get("group"), "its group", 100),
    }


def exception(value, _masks: Masks) -> dict:
    if not isinstance(value, dict):
        raise RowError("must be an object with a type")
    stack = value.get("stack") or []
    if not isinstance(stack, list):
        raise RowError("its stack must be a list of frames")
    if len(stack) > MAX_FRAMES:
        raise RowError(f"its stack has {len(stack)} frames; at most {MAX_FRAMES}")
    return {
        "type": _text(value.get("type"), "its type", 255, required=True),
        "message": _text(value.get("message"), "its message", MAX_MESSAGE),
        "stack": [_frame(frame, index) for index, frame in enumerate(stack)],
    }


def _frame(frame, index: int) -> list:
    """[file, line, function, in_app]."""
    if not isinstance(frame, dict):
        raise RowError(f"its frame {index} must be an object")
    line = frame.get("line")
    if isinstance(line, bool) or not isinstance(line, int) or line < 0:
        raise RowError(f"its frame {index}'s line must be a whole number")
    in_app = frame.get("in_app")
    if not isinstance(in_app, bool):
        raise RowError(f"its frame {index}'s in_app must be true or false")
    return [
        _text(frame.get("file"), f"its frame {index}'s file", 255, required=True),
        line,
        _text(frame.get("function"), f"its frame {index}'s function", 255) or "",
        in_app,
    ]


def validation_errors(value, _masks: Masks) -> list:
    """[[location, type], ...]."""
    if not isinstance(value, list):
        raise RowError("must be a list")
    if len(value) > MAX_VALIDATION:
        raise RowError(f"has {len(value)} entries; at most {MAX_VALIDATION}")
    found = []
    for index, entry in enumerate(value):
        if not isinstance(entry, dict):
            raise RowError(f"entry {index} must be an object")
        found.append(
            [
                _text(entry.get("location"), f"entry {index}'s location", 255, required=True),
                _text(entry.get("type"), f"entry {index}'s type", 100) or "invalid",
            ]
        )
    return found


def exchange(value, masks: Masks) -> dict:
    """A captured request or response, masked."""
    if not isinstance(value, dict):
        raise RowError("must be an object")
    headers = value.get("headers") or []
    if not isinstance(headers, list) or len(headers) > MAX_HEADERS:
        raise RowError(f"its headers must be a list of at most {MAX_HEADERS} [name, value] pairs")
    pairs = []
    for pair in headers:
        if not (isinstance(pair, list | tuple) and len(pair) == 2):
            raise RowError("its headers must be [name, value] pairs")
        name = _text(pair[0], "a header's name", 255, required=True)
        pairs.append([name.lower(), _text(pair[1], "a header's value", MAX_HEADER_VALUE) or ""])
    body_type = _text(value.get("body_type"), "its body_type", 255)
    size = value.get("body_size")
    if size is not None and (isinstance(size, bool) or not isinstance(size, int) or size < 0):
        raise RowError("its body_size must be a whole number of bytes")
    omitted = value.get("body_omitted")
    if omitted is not None and omitted not in OMITTED:
        raise RowError(f"its body_omitted must be one of {', '.join(sorted(OMITTED))}")
    body = _text(value.get("body"), "its body", MAX_BODY)
    return {
        "headers": mask_headers(pairs, masks),
        "query": mask_query(_text(value.get("query"), "its query", MAX_QUERY), masks),
        "body": mask_body(body, body_type, masks),
        "body_type": body_type,
        "body_size": size,
        "body_truncated": bool(value.get("body_truncated")),
        "body_omitted": omitted,
    }


def _label(limit: int):
    """A short text stored as it is (a service, a release, a route template)."""

    def check(value, _masks: Masks) -> str:
        if not isinstance(value, str) or not value:
            raise RowError("must be a non-empty string")
        if len(value) > limit:
            raise RowError(f"is longer than {limit} characters")
        return storable(value)

    return check


LABEL_LIMITS = {"service": 255, "release": 100, "route": 255}

CHECKS = {
    "consumer": consumer,
    "exception": exception,
    "validation_errors": validation_errors,
    "request": exchange,
    "response": exchange,
    **{name: _label(limit) for name, limit in LABEL_LIMITS.items()},
}
