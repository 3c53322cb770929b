"""Masking captured headers, query parameters and bodies, whatever the client did: the
defaults of docs/capture.md and the key's own patterns, applied in the check step, so a
secret never reaches the hot table, the files, the staging table or a log.

The client masks too; the server never trusts that it did (a client that forgot, a raw
POST, a published client's future version). A key's patterns are managed by
server.keys.masks; what makes one valid is server.rules.compile_mask.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from urllib.parse import parse_qsl, urlencode

import orjson
from sqlalchemy import select

from server.models import key_masks
from server.rules import MASK_KINDS, compile_mask

MASKED = "[masked]"
# Headers masked whole by name, and any whose name holds one of these words.
SECRET_HEADERS = frozenset(
    {"authorization", "cookie", "set-cookie", "proxy-authorization", "x-api-key", "x-auth-token"}
)
SECRET_HEADER_WORDS = ("secret", "token", "password", "key")
# JSON and form fields, and query parameters, named like these (lower-cased, contained).
SECRET_FIELD_WORDS = (
    "password", "secret", "token", "api_key", "apikey", "authorization", "card", "cvv", "ssn",
)  # fmt: skip
FORM_TYPES = ("application/x-www-form-urlencoded",)


@dataclass(frozen=True)
class Masks:
    """A key's patterns on top of the defaults: regular expressions searched in the
    lower-cased name of a header, a body field or a query parameter."""

    header: tuple[re.Pattern, ...] = ()
    field: tuple[re.Pattern, ...] = ()
    query: tuple[re.Pattern, ...] = ()

    def secret_header(self, name: str) -> bool:
        name = name.lower()
        return (
            name in SECRET_HEADERS
            or any(word in name for word in SECRET_HEADER_WORDS)
            or any(p.search(name) for p in self.header)
        )

    def secret_field(self, name: str, *, query: bool = False) -> bool:
        name = str(name).lower()
        own = self.query if query else self.field
        return any(word in name for word in SECRET_FIELD_WORDS) or any(p.search(name) for p in own)


DEFAULT = Masks()


def key_masks_of(conn, key_id: int) -> Masks:
    """The key's own patterns (a stored pattern that no longer compiles is skipped)."""
    found: dict[str, list] = {kind: [] for kind in MASK_KINDS}
    rows = conn.execute(
        select(key_masks.c.kind, key_masks.c.pattern).where(key_masks.c.key_id == key_id)
    )
    for kind, pattern in rows:
        try:
            found[kind].append(compile_mask(kind, pattern))
        except ValueError:
            continue
    return Masks(tuple(found["header"]), tuple(found["field"]), tuple(found["query"]))


def mask_headers(headers: list, masks: Masks) -> list:
    return [[name, MASKED if masks.secret_header(name) else value] for name, value in headers]


def mask_query(query: str | None, masks: Masks) -> str | None:
    """A query string with the values of secret parameters masked (order kept)."""
    if not query:
        return query
    pairs = parse_qsl(query, keep_blank_values=True)
    masked = [(k, MASKED if masks.secret_field(k, query=True) else v) for k, v in pairs]
    return urlencode(masked, safe="[]")


def mask_body(body: str | None, body_type: str | None, masks: Masks) -> str | None:
    """A text body with its secret fields masked: JSON at any depth, a form, or (for any
    other text) `name=value` and `"name": value` pairs found by pattern."""
    if not body:
        return body
    kind = (body_type or "").split(";")[0].strip().lower()
    if kind == "application/json" or kind.endswith("+json") or body.lstrip()[:1] in "{[":
        # orjson first (a third of the time of json's loads and dumps for a 4 KiB body);
        # what it refuses (NaN, integers past 64 bits) goes through json, both ways.
        try:
            return orjson.dumps(_mask_json(orjson.loads(body), masks)).decode()
        except (orjson.JSONDecodeError, orjson.JSONEncodeError):
            pass
        try:
            return json.dumps(_mask_json(json.loads(body), masks), ensure_ascii=False)
        except (ValueError, RecursionError):
            pass  # not JSON after all (or cut short): masked as text below
    if kind in FORM_TYPES:
        return mask_query(body, masks)
    return _mask_text(body, masks)


def _mask_json(value, masks: Masks):
    if isinstance(value, dict):
        return {
            k: MASKED if masks.secret_field(k) and v is not None else _mask_json(v, masks)
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [_mask_json(v, masks) for v in value]
    return value


# `"name": value` (a string or any scalar) and `name=value` (up to & ; , space or quote).
_JSON_PAIR = re.compile(r'("([^"\\]{1,200})"\s*:\s*)("(?:[^"\\]|\\.)*"|[^,}\]\s]+)')
_PLAIN_PAIR = re.compile(r"(?<![\w-])([\w.-]{1,200})(\s*=\s*)([^&;,\s\"']+)")


def _mask_text(body: str, masks: Masks) -> str:
    def json_pair(match: re.Match) -> str:
        if masks.secret_field(match.group(2)):
            return f'{match.group(1)}"{MASKED}"'
        return match.group(0)

    def plain_pair(match: re.Match) -> str:
        if masks.secret_field(match.group(1)):
            return f"{match.group(1)}{match.group(2)}{MASKED}"
        return match.group(0)

    return _PLAIN_PAIR.sub(plain_pair, _JSON_PAIR.sub(json_pair, body))
