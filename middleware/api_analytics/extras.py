"""A row's optional fields (docs/capture.md) as JSON, made in the flusher thread.

From the `Extra` the request path kept: formatted, masked and cut to the server's limits.
"""

from __future__ import annotations

import json
import logging
from json.encoder import encode_basestring  # type: ignore[attr-defined]
from typing import Any

from .capture import BodyCopy, Captured, Extra, Settings, Side
from .failures import exception_value, validation_errors
from .masking import mask_body, mask_headers, mask_query

logger = logging.getLogger(__name__)

MAX_QUERY = 8192
MAX_BODY_CHARS = 64 * 1024  # what the server accepts, after masking may have grown it
_dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode


def _string(value: str | None) -> str:
    return "null" if value is None else encode_basestring(value)


def extras_json(extra: Extra) -> str:
    """The optional fields as JSON members to append to a row (`,"exception":{...}`), or
    "" when none applies. Built as text: it runs for every captured request, and the
    JSON encoder's dicts cost twice as much."""
    settings = extra.settings
    extra.settle()
    parts = []
    if extra.consumer is not None:
        consumer = consumer_value(extra.consumer, settings)
        if type(consumer) is dict:
            parts.append(
                f'"consumer":{{"id":{_string(consumer["id"])},"name":{_string(consumer["name"])},'
                f'"group":{_string(consumer["group"])}}}'
            )
        elif consumer is not None:
            parts.append('"consumer":' + _string(consumer))
    if extra.exception is not None:
        parts.append('"exception":' + _dumps(exception_value(extra.exception)))
    error = extra.validation if extra.validation is not None else extra.error_body
    if error is not None:
        found = validation_errors(error.data() if isinstance(error, BodyCopy) else error)
        if found:
            parts.append('"validation_errors":' + _dumps(found))
    if extra.request is not None:
        parts.append('"request":' + side_json(extra.request, "request", settings))
    if extra.response is not None:
        parts.append('"response":' + side_json(extra.response, "response", settings))
    return "," + ",".join(parts) if parts else ""


def consumer_value(consumer: Any, settings: Settings) -> str | dict | None:
    """A consumer id, or {"id", "name", "group"} cut to the server's limits; None (and one
    warning) for an id the server would refuse."""
    if isinstance(consumer, dict):
        found = {"id": _id(consumer.get("id"))}
        for key, limit in (("name", 255), ("group", 100)):
            value = consumer.get(key)
            found[key] = value[:limit] if isinstance(value, str) and value else None
        if found["id"] is not None:
            return found
    elif (identity := _id(consumer)) is not None:
        return identity
    warn_once(settings, "get_consumer", "returned no id of 1 to 255 characters")
    return None


def _id(value: Any) -> str | None:
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    return value if isinstance(value, str) and 0 < len(value) <= 255 else None


def side_json(side: Side | Captured, kind: str, settings: Settings) -> str:
    """A captured request or response as a JSON object, masked."""
    if type(side) is Side:
        side = side.settle()
    headers, query, content_type, body, copied, chunks, size, omitted = side
    text = "{"
    if headers is not None:
        text += '"headers":' + mask_headers(headers, settings)
    if kind == "request":
        query = _decoded(query)
        query = mask_query(query, settings.query_masks)[:MAX_QUERY] if query else None
        text += ('"query":' if headers is None else ',"query":') + _string(query)
    if body is not False:
        if text != "{":
            text += ","
        body_type = _media_type(content_type)
        body, size, truncated, omitted = body_fields(side, kind, body_type, settings)
        text += (
            f'"body":{_string(body)},"body_type":{_string(body_type)},'
            f'"body_size":{"null" if size is None else size},'
            f'"body_truncated":{"true" if truncated else "false"},"body_omitted":{_string(omitted)}'
        )
    return text + "}"


def body_fields(side: Captured, kind: str, body_type: str | None, settings: Settings) -> tuple:
    """(body, body_size, body_truncated, body_omitted) of a captured side."""
    _headers, _query, _type, data, copied, chunks, size, omitted = side
    body = None
    truncated = False
    if type(data) is bytes:  # a copy was taken
        if size is None or copied > size:
            size = copied
        if omitted is None and copied:
            if kind == "response" and chunks > 1:
                omitted = "streamed"
            else:
                if len(data) > settings.body_max:
                    data = data[: settings.body_max]
                truncated = size > len(data)
                body = _body_text(data, kind, body_type, settings)
                if body is None:
                    omitted = "dropped"
    elif size is None and data is True:
        size = 0  # logged, yet no body went by
    if size == 0 and omitted in ("binary", "streamed"):
        omitted = None  # nothing was there to leave out
    return body, size, truncated, omitted


def _body_text(data: bytes, kind: str, body_type: str | None, settings: Settings) -> str | None:
    """The body after the user's `mask_body` (None: it dropped the body) and our masking."""
    text = data.decode("utf-8", "replace")
    callback = settings.mask_body
    if callback is not None:
        try:
            text = callback(kind, text)
        except Exception as exc:
            warn_once(settings, "mask_body", f"raised {type(exc).__name__}; the body is dropped")
            return None
        if text is None:
            return None
        if not isinstance(text, str):
            warn_once(settings, "mask_body", "returned no string; the body is dropped")
            return None
    return mask_body(text, body_type, settings)[:MAX_BODY_CHARS]


def _media_type(content_type: Any) -> str | None:
    if not content_type:
        return None
    found = _media_types.get(content_type)
    if found is None:
        found = _decoded(content_type).partition(";")[0].strip().lower()[:255] or ""
        if len(_media_types) >= 1024:
            _media_types.clear()
        _media_types[content_type] = found
    return found or None


_media_types: dict[Any, str] = {}  # an API answers with a few content types


def _decoded(value: Any) -> str | None:
    if value is None or type(value) is str:
        return value
    return bytes(value).decode("latin-1")


def warn_once(settings: Settings, what: str, reason: str) -> None:
    """One warning for each kind of failure of a Config's callbacks (type only: never a
    value that could hold a secret)."""
    if what in settings.warned:
        return
    settings.warned.add(what)
    logger.warning("API Analytics: %s %s; further failures of it are not logged", what, reason)
