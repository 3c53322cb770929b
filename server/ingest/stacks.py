"""A stack trace as text (an OpenTelemetry exception event's `exception.stacktrace`) read
into frames in the shape of docs/capture.md: oldest call first, the frame that raised
last, at most 50, each with its file, line, function and whether it is the app's own.

Each language prints its own format: Python's traceback (oldest call first), and Java,
Kotlin, Node, Go, .NET and Ruby (the frame that raised first). A line no format reads is
skipped; a text none reads gives no frames, and the exception keeps its type and message.
"""

from __future__ import annotations

import re

MAX_FRAMES = 50
MAX_TEXT = 255

# Python: `  File "app/main.py", line 31, in pay`.
_PYTHON = re.compile(r'^\s*File "(?P<file>[^"]+)", line (?P<line>\d+)(?:, in (?P<function>.+))?$')
# Java, Kotlin, Scala: `\tat com.shop.Pay.charge(Pay.java:42)`.
_JAVA = re.compile(r"^\s*at (?P<function>[\w$.<>/]+)\((?P<file>[^:()]+)(?::(?P<line>\d+))?\)$")
# Node: `    at charge (/app/pay.js:20:11)` or `    at /app/pay.js:20:11`.
_NODE = re.compile(
    r"^\s*at (?:(?P<function>.+?) \()?(?P<file>[^()\s][^()]*?):(?P<line>\d+):\d+\)?$"
)
# .NET: `   at Shop.Pay.Charge() in /app/Pay.cs:line 42`.
_DOTNET = re.compile(r"^\s*at (?P<function>[^ ]+\(.*?\))(?: in (?P<file>.+):line (?P<line>\d+))?$")
# Ruby: `/app/pay.rb:42:in 'charge'` (or with a backquote, as before Ruby 3.4).
_RUBY = re.compile(r"^\s*(?P<file>[^:\s][^:]*):(?P<line>\d+):in [`'](?P<function>[^']+)'$")
# Go: a function line, then `\t/app/main.go:12 +0x1d`.
_GO_FILE = re.compile(r"^\t(?P<file>[^ ]+\.go):(?P<line>\d+)(?: \+0x[0-9a-f]+)?$")
_GO_FUNCTION = re.compile(r"^(?P<function>[\w./*()\[\]-]+)\(.*\)$")

# Code that is not the app's: libraries and each language's standard library.
_NOT_APP_FILES = re.compile(
    r"site-packages|dist-packages|/lib/python\d|node_modules|^node:|^internal/"
    r"|/usr/local/go/src/|/go/pkg/mod/|/gems/|/rubygems/|<frozen "
)
_NOT_APP_FUNCTIONS = re.compile(
    r"^(?:java|javax|jdk|sun|com\.sun|kotlin|kotlinx|scala|System|Microsoft)\."
)


def frames_of(text: str | None) -> list[dict]:
    """The frames a stack trace names, oldest call first (docs/capture.md), the last 50."""
    if not text:
        return []
    lines = text.splitlines()
    frames = _python(lines)
    if not frames:
        frames = _innermost_first(lines)
        frames.reverse()
    return frames[-MAX_FRAMES:]


def _frame(file: str, line, function: str | None) -> dict:
    function = function or ""
    in_app = not (_NOT_APP_FILES.search(file) or _NOT_APP_FUNCTIONS.match(function))
    # A long path keeps its end: the file's name says more than the directories above it.
    file = file if len(file) <= MAX_TEXT else "..." + file[-(MAX_TEXT - 3) :]
    return {"file": file, "line": int(line or 0), "function": function[:MAX_TEXT],
            "in_app": in_app}  # fmt: skip


def _python(lines: list[str]) -> list[dict]:
    frames = []
    for line in lines:
        found = _PYTHON.match(line)
        if found:
            frames.append(_frame(found["file"], found["line"], found["function"]))
        elif frames and line.startswith(("During handling", "The above exception")):
            # A chained exception: the one printed last is the one that escaped.
            frames = []
    return frames


def _innermost_first(lines: list[str]) -> list[dict]:
    """Frames of the formats that print the frame that raised first; only the first
    exception's (a Java "Caused by:" section is another exception's)."""
    frames = []
    function = None
    for line in lines:
        if line.startswith("Caused by:") and frames:
            break
        go = _GO_FILE.match(line)
        if go and function is not None:
            frames.append(_frame(go["file"], go["line"], function))
            function = None
            continue
        go_function = _GO_FUNCTION.match(line)
        function = go_function["function"] if go_function else None
        for pattern in (_JAVA, _DOTNET, _NODE, _RUBY):
            found = pattern.match(line)
            if found and found["file"] is not None:
                frames.append(_frame(found["file"], found["line"], found["function"]))
                break
    return frames
