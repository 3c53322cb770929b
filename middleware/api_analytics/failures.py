"""The `exception` and `validation_errors` fields of a row, formatted in the flusher.

An exception arrives as `capture.exception_info` read it; its frames are classified here
(the app's own code or not) and their files made relative to the working directory.
Validation errors are read from what the framework answered: a 400 or 422 JSON body in
one of the shapes below, or Django REST framework's error data (with its codes).
"""

from __future__ import annotations

import json
import os
import re
import sysconfig
from typing import Any

MAX_VALIDATION = 100
_LIBRARY_DIRS = ("site-packages", "dist-packages")
# Where a value was sent, as the frameworks name it.
LOCATIONS = {
    "body": "body", "json": "body", "form": "body", "files": "body", "data": "body",
    "json_or_form": "body", "query": "query", "querystring": "query", "path": "path",
    "view_args": "path", "match_info": "path", "header": "header", "headers": "header",
    "cookie": "cookie", "cookies": "cookie",
}  # fmt: skip
_MISSING_MESSAGES = ("missing data for required field.", "this field is required.",
                     "field required")  # fmt: skip


def _not_app_dirs() -> tuple[str, ...]:
    paths = sysconfig.get_paths()
    dirs = {os.path.normpath(paths[name]) for name in ("stdlib", "platstdlib") if name in paths}
    dirs.add(os.path.dirname(os.path.abspath(__file__)))  # this package's own frames
    return tuple(d + os.sep for d in dirs)


_NOT_APP = _not_app_dirs()
_files: dict[tuple[str, str], tuple[str, bool]] = {}


def frame_file(filename: str) -> tuple[str, bool]:
    """(the file as the row shows it, whether it is the app's own code)."""
    cwd = os.getcwd()
    found = _files.get((cwd, filename))
    if found is None:
        path = os.path.abspath(filename)
        if filename.startswith("<") or not os.path.isfile(path):
            # <frozen ...>, <string>, code a framework compiled itself (Sanic's): not a
            # file of the app.
            found = (filename[-255:], False)
        else:
            parts = path.split(os.sep)
            in_app = not (any(part in _LIBRARY_DIRS for part in parts) or path.startswith(_NOT_APP))
            shown = path[len(cwd) + 1 :] if path.startswith(cwd + os.sep) else path
            found = (shown[-255:], in_app)
        if len(_files) >= 4096:
            _files.clear()
        _files[(cwd, filename)] = found
    return found


def exception_value(info: tuple) -> dict:
    type_name, message, frames = info
    stack = []
    for filename, line, function in frames:
        shown, in_app = frame_file(filename)
        stack.append({"file": shown, "line": line, "function": function[:255],
                      "in_app": in_app})  # fmt: skip
    return {"type": type_name[:255], "message": message, "stack": stack}


def validation_errors(error: Any) -> list[dict] | None:
    """[{location, type}] from a 400/422 body (bytes), a framework's error data, or the
    (location, type) pairs an adapter read already; None when it holds none in a known
    shape."""
    if isinstance(error, list):
        return _entries(error)
    if isinstance(error, bytes | bytearray):
        if error.lstrip()[:1] != b"{":
            return None
        try:
            error = json.loads(error)
        except ValueError:
            return None
    if not isinstance(error, dict):
        return None
    for read in (_fastapi, _litestar, _webargs, _falcon, _fields):
        found = read(error)
        if found:
            return _entries(found)
    return None


def _entries(found: list) -> list[dict] | None:
    return [
        {"location": str(location)[:255], "type": str(kind or "invalid")[:100]}
        for location, kind in found[:MAX_VALIDATION]
    ] or None


def _each(doc: dict, key: str, read: Any) -> list | None:
    """`read(entry)` of every entry of the list `doc[key]`; None if one is not an entry
    of that shape (`read` returns None)."""
    entries = doc.get(key)
    if not isinstance(entries, list) or not entries:
        return None
    found = []
    for entry in entries:
        pair = read(entry) if isinstance(entry, dict) else None
        if pair is None:
            return None
        found.append(pair)
    return found


def _fastapi(doc: dict) -> list | None:
    """FastAPI (pydantic): {"detail": [{"loc": ["body", "items", 0, "price"], "type": ...}]}."""
    return _each(doc, "detail", _fastapi_entry)


def _fastapi_entry(entry: dict) -> tuple | None:
    if not isinstance(entry.get("loc"), list | tuple):
        return None
    loc = [str(part) for part in entry["loc"]]
    if loc:
        loc[0] = LOCATIONS.get(loc[0], loc[0])
    return ".".join(loc) or "body", entry.get("type")


def _litestar(doc: dict) -> list | None:
    """Litestar: {"extra": [{"key": "items[0].price", "source": "body", "message": ...}]}."""
    return _each(doc, "extra", _litestar_entry)


def _litestar_entry(entry: dict) -> tuple | None:
    if not ("key" in entry or "source" in entry):
        return None
    source = LOCATIONS.get(str(entry.get("source") or "body"), "body")
    parts = [source]
    key = _INDEX.sub(r".\1", str(entry.get("key") or ""))
    if key and not (source == "body" and key == "data"):  # "data": the body itself
        parts.append(key)
    message = str(entry.get("message") or "")
    if missing := _MISSING_FIELD.search(message):
        parts.append(missing.group(1))
    return ".".join(parts), "type" if message.startswith("Expected `") else _kind(message)


_INDEX = re.compile(r"\[(\d+)\]")  # Litestar's "items[0].price"
_MISSING_FIELD = re.compile(r"missing required field `([^`]{1,200})`")


def _webargs(doc: dict) -> list | None:
    """webargs / flask-smorest: {"errors": {"json": {"price": ["Not a valid integer."]}}}."""
    errors = doc.get("errors")
    if not isinstance(errors, dict) or not errors:
        return None
    found = []
    for where, fields in errors.items():
        location = LOCATIONS.get(str(where))
        if location is None:
            return None
        if not _leaves(fields, location, found):
            return None
    return found


_REQUIRED = re.compile(r"^'([^']{1,200})' is a required property")
_UNEXPECTED = re.compile(r"\('([^']{1,200})' (?:was|were) unexpected\)")


def _falcon(doc: dict) -> list | None:
    """Falcon's media validation: {"title": ..., "description": <jsonschema's message>}."""
    description = doc.get("description")
    if not isinstance(description, str) or "validation" not in str(doc.get("title", "")).lower():
        return None
    if match := _REQUIRED.search(description):
        return [(f"body.{match.group(1)}", "missing")]
    if match := _UNEXPECTED.search(description):
        return [(f"body.{match.group(1)}", "extra_forbidden")]
    return [("body", "invalid")]


def _fields(doc: dict) -> list | None:
    """Django REST framework's shape, {"price": ["A valid integer is required."]} (nested
    for nested serializers); its messages carry a `code` when they are its ErrorDetails."""
    found: list = []
    return found if _leaves(doc, "body", found) else None


def _leaves(value: Any, location: str, found: list) -> bool:
    """Collect (location, type) of every list of messages under `value`; False when
    `value` is not a dict of such lists (or of dicts of them)."""
    if not isinstance(value, dict) or not value:
        return False
    for key, item in value.items():
        here = location if key in ("non_field_errors", "_schema") else f"{location}.{key}"
        if isinstance(item, list) and item and all(isinstance(m, str) for m in item):
            found.append((here, getattr(item[0], "code", None) or _kind(item[0])))
        elif isinstance(item, list) and item and all(isinstance(m, dict) for m in item):
            for index, entry in enumerate(item):  # a list serializer: one dict an item
                if entry and not _leaves(entry, f"{here}.{index}", found):
                    return False
        elif not _leaves(item, here, found):
            return False
    return True


def _kind(message: Any) -> str:
    text = str(message or "").strip().lower()
    if text in _MISSING_MESSAGES or text.startswith("missing") or "missing required" in text:
        return "missing"
    return "invalid"
