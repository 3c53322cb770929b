"""Masking captured headers, query strings and bodies before anything leaves the process.

Runs in the flusher thread. The defaults are docs/capture.md's (the server applies them
again, and the key's own patterns, whatever the client did); a `Config` adds its own
`mask_headers`, `mask_body_fields` and `mask_query_params` patterns.
"""

from __future__ import annotations

import json
import re
from json.encoder import encode_basestring  # type: ignore[attr-defined]
from typing import Any
from urllib.parse import unquote_plus

from .capture import Settings

MASKED = "[masked]"
_MASKED = encode_basestring(MASKED)
SECRET_HEADERS = frozenset(
    {"authorization", "cookie", "set-cookie", "proxy-authorization", "x-api-key", "x-auth-token"}
)
SECRET_HEADER_WORDS = ("secret", "token", "password", "key")
SECRET_FIELD_WORDS = (
    "password", "secret", "token", "api_key", "apikey", "authorization", "card", "cvv", "ssn",
)  # fmt: skip
FORM_TYPE = "application/x-www-form-urlencoded"


def secret_header(name: str, settings: Settings) -> bool:
    return (
        name in SECRET_HEADERS
        or any(word in name for word in SECRET_HEADER_WORDS)
        or any(p.search(name) for p in settings.header_masks)
    )


def secret_field(name: Any, patterns: tuple[re.Pattern, ...]) -> bool:
    name = str(name).lower()
    return any(word in name for word in SECRET_FIELD_WORDS) or any(p.search(name) for p in patterns)


def mask_headers(headers: Any, settings: Settings) -> str:
    """The headers as a JSON array of [name, value] pairs, names lower-cased, secrets
    masked, within the server's limits (100 pairs, names of 255 and values of 8,192
    characters).

    `headers` is a list or tuple of (name, value) pairs, or a WSGI environ (Django's META)
    whose HTTP_* and CONTENT_* keys are the headers.
    """
    environ = type(headers) is dict
    names = settings.environ_names if environ else settings.header_names
    values = settings.header_values
    pairs = []
    for name, value in headers.items() if environ else headers:
        known = names.get(name)
        if known is None:
            known = _decide_name(name, environ, settings)
            if len(names) >= 1024:
                names.clear()
            names[name] = known
        start, masked = known
        if not start or not (value or not environ):
            continue
        if masked:
            pairs.append(start)
        else:
            # Values repeat too (content types, hosts, agents): their JSON is looked up.
            # A masked value never gets here, so no secret is kept beyond its request.
            kind = type(value)
            text = values.get(value) if kind is bytes or kind is str else None
            if text is None:
                text = encode_basestring(_text(value)[:8192])
                if (kind is bytes or kind is str) and len(value) <= 256:
                    if len(values) >= 1024:
                        values.clear()
                    values[value] = text
            pairs.append(start + text + "]")
        if len(pairs) == 100:
            break
    return "[" + ",".join(pairs) + "]"


def _decide_name(name: Any, environ: bool, settings: Settings) -> tuple[str, bool]:
    """What is decided once a header name: its pair's start, or all of it when masked."""
    lowered = _environ_name(name) if environ else _text(name).lower()[:255]
    if lowered is None:
        return ("", False)
    if secret_header(lowered, settings):
        return (f"[{encode_basestring(lowered)},{_MASKED}]", True)
    return (f"[{encode_basestring(lowered)},", False)


def _environ_name(key: str) -> str | None:
    """A header's name from its WSGI environ key; None for a key that is no header."""
    if key.startswith("HTTP_"):
        return key[5:].replace("_", "-").lower()[:255]
    if key in ("CONTENT_TYPE", "CONTENT_LENGTH"):
        return key.replace("_", "-").lower()
    return None


def mask_query(query: str, patterns: tuple[re.Pattern, ...]) -> str:
    """A query string (or form body) with the values of secret parameters masked; every
    other byte is kept as it was sent."""
    parts = query.split("&")
    changed = False
    for index, part in enumerate(parts):
        name, equals, _value = part.partition("=")
        if equals and secret_field(unquote_plus(name), patterns):
            parts[index] = f"{name}={MASKED}"
            changed = True
    return "&".join(parts) if changed else query


def mask_body(text: str, body_type: str | None, settings: Settings) -> str:
    """A text body with its secret fields masked: JSON at any depth, a form by field
    name, any other text (or JSON cut at the size limit) by `name=value` and
    `"name": value` pairs."""
    patterns = settings.field_masks
    if body_type == FORM_TYPE:
        return mask_query(text, patterns)
    if not patterns and "\\" not in text:
        # No escape could hide a name and no own pattern applies: a body that holds
        # none of the secret words has nothing to mask (the common case, and the cheap one).
        lowered = text.lower()
        for word in SECRET_FIELD_WORDS:
            if word in lowered:
                break
        else:
            return text
    start = text.lstrip()[:1]
    if start in ("{", "[") or (body_type or "").endswith("json"):
        try:
            parsed = json.loads(text)
        except ValueError:
            pass
        else:
            masked, changed = _mask_json(parsed, patterns)
            return json.dumps(masked, ensure_ascii=False) if changed else text
    return _mask_text(text, patterns)


def _mask_json(value: Any, patterns: tuple[re.Pattern, ...]) -> tuple[Any, bool]:
    if isinstance(value, dict):
        changed = False
        out = {}
        for key, item in value.items():
            if item is not None and secret_field(key, patterns):
                out[key], changed = MASKED, True
            else:
                out[key], inner = _mask_json(item, patterns)
                changed = changed or inner
        return out, changed
    if isinstance(value, list):
        items = [_mask_json(item, patterns) for item in value]
        return [item for item, _ in items], any(inner for _, inner in items)
    return value, False


# `"name": value` (a string, complete or cut off, or any scalar) and `name=value`.
_JSON_PAIR = re.compile(r'("([^"\\]{1,200})"\s*:\s*)("(?:[^"\\]|\\.)*"?|[^,}\]\s]+)')
_PLAIN_PAIR = re.compile(r"(?<![\w-])([\w.-]{1,200})(\s*=\s*)([^&;,\s\"'<]+)")


def _mask_text(text: str, patterns: tuple[re.Pattern, ...]) -> str:
    def json_pair(match: re.Match) -> str:
        if secret_field(match.group(2), patterns):
            return f'{match.group(1)}"{MASKED}"'
        return match.group(0)

    def plain_pair(match: re.Match) -> str:
        if secret_field(match.group(1), patterns):
            return f"{match.group(1)}{match.group(2)}{MASKED}"
        return match.group(0)

    return _PLAIN_PAIR.sub(plain_pair, _JSON_PAIR.sub(json_pair, text))


def _text(value: Any) -> str:
    """A header name or value as the framework gave it: bytes are latin-1 (HTTP's)."""
    if type(value) is str:
        return value
    if isinstance(value, bytes | bytearray):
        return bytes(value).decode("latin-1")
    return str(value)
