"""The check step: an ingest batch checked column by column when every row is in the shape
the published clients send, row by row (server.ingest.fields) otherwise; either way an
accepted batch is one list per field (`Batch`).

Why columns: the web checks and enriches every batch before its 201, and a function call
per field of every row was most of its CPU (bench/README.md). A column is checked with a
few passes in C (its types as one set, its distinct values once, a regular expression over
the joined timestamps), and the stored rows are zipped from the columns. Anything a row
might need refused or repaired for (a bad field, text to truncate or mend, a number sent
as text, an odd timestamp) sends the whole batch through the row-by-row rules instead, so
both ways store exactly the same rows (tests/server/ingest/test_columns.py holds them to it).
"""

from __future__ import annotations

import math
import re
from datetime import datetime
from itertools import repeat
from operator import add, is_not, itemgetter, mul

from server.ingest.capture import EXTRA_FIELDS, extras_of
from server.ingest.fields import (
    EARLIEST,
    FUTURE_SLACK,
    MAX_RESPONSE_TIME_MS,
    MAX_TEXT,
    METHODS,
    ROW_FIELDS,
    RowError,
    validate_rows,
)
from server.ingest.masking import DEFAULT
from server.rules import epoch_micros, first_address, minute_epoch, normalise_ip

NoneType = type(None)
# UTC timestamps as clients write them, one per line: to the second, the millisecond (our
# middleware) or the microsecond (Python's isoformat). The date, hour and minute are
# checked once per distinct minute, by datetime itself.
_CANONICAL = (
    "[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-5][0-9](?:\\.[0-9]{3}(?:[0-9]{3})?)?\\+00:00"
)
_TIMES = re.compile(f"(?:{_CANONICAL}\n)*{_CANONICAL}")
_EARLIEST = epoch_micros(EARLIEST)
# Slices of such a timestamp: its minute, seconds, and fraction (by its length: to the
# millisecond, 29 characters; to the microsecond, 32), with the fraction's unit.
_MINUTE = itemgetter(slice(16))
_SECONDS = itemgetter(slice(17, 19))
_FRACTIONS = {29: (itemgetter(slice(20, 23)), 1_000), 32: (itemgetter(slice(20, 26)), 1)}


def check(rows: list, privacy_level: int, now: datetime, masks=DEFAULT) -> tuple[Batch, list]:
    """(The accepted rows, the refusals as {"index", "error"}): column by column if the
    batch allows it (it then refuses nothing), else row by row. A row's optional fields
    (server.ingest.capture) are checked row by row, and masked with `masks` (or what the
    function `masks()` returns)."""
    read: list = []

    def masked(row: dict) -> dict | None:
        if not read:  # the key's patterns, read once, only for a batch that needs them
            read.append(masks() if callable(masks) else masks)
        return extras_of(row, read[0])

    batch = Batch.take(rows, privacy_level, now, masked)
    if batch is not None:
        return batch, []
    accepted, rejected = validate_rows(rows, privacy_level, now, extras=masked)
    return Batch.from_staged(accepted, privacy_level), rejected


class Batch:
    """Accepted rows as one list per field (server.ingest.fields.FIELDS), with each row's
    time in epoch microseconds; `by_column` when they were checked column by column."""

    def __init__(
        self,
        level: int,
        created: list,
        micros: list,
        columns: dict,
        by_column: bool = True,
        extras: list | None = None,
    ) -> None:
        self.level = level
        self.by_column = by_column
        # Each row's optional fields (a dict, or None), when any row has some.
        self.extras = extras
        self.created = created
        self.micros = micros
        self.hostnames = columns["hostname"]
        self.paths = columns["path"]
        self.methods = columns["method"]
        self.statuses = columns["status"]
        self.times = columns["response_time"]
        self.ips = columns["ip_address"]
        self.agents = columns["user_agent"]
        self.user_ids = columns["user_id"]

    @classmethod
    def take(cls, rows: list, level: int, now: datetime, extras=None) -> Batch | None:
        """The rows as columns, or None if any row needs the row-by-row rules. A batch
        with optional fields (docs/capture.md) has them checked and masked row by row,
        by `extras(row)`; one that refuses a row sends the batch row by row."""
        if not rows or {row.__class__ for row in rows} != {dict}:
            return None
        get = dict.get
        columns = {name: list(map(get, rows, repeat(name))) for name in ROW_FIELDS}
        created = columns.pop("created_at")
        # Rows of OpenTelemetry spans (server.ingest.spans.SpanRows) come with their times.
        given = getattr(rows, "micros", None)
        micros = _micros(created, now) if given is None else _given_micros(given, created, now)
        if micros is None:
            return None
        for name, column_check in _CHECKS:
            value = column_check(columns[name])
            if value is False:
                return None
            if value is not True:
                columns[name] = value
        if level == 2:
            columns["ip_address"] = [None] * len(rows)
        else:
            ips = _addresses(columns["ip_address"])
            if ips is None:
                return None
            columns["ip_address"] = ips
        found = None
        if any(
            any(map(is_not, map(get, rows, repeat(name)), repeat(None))) for name in EXTRA_FIELDS
        ):
            if extras is None:
                return None
            labels = getattr(rows, "labels", None)
            try:
                found = list(map(extras, rows)) if labels is None else _shared(rows, labels, extras)
            except RowError:
                return None
        return cls(level, created, micros, columns, extras=found)

    @classmethod
    def from_staged(cls, staged: list, level: int) -> Batch:
        """Rows checked one by one (or read back from staging), as staged lists."""
        extras = None
        if any(len(row) > len(ROW_FIELDS) for row in staged):
            extras = [
                row[len(ROW_FIELDS)] if len(row) > len(ROW_FIELDS) else None for row in staged
            ]
            staged = [row[: len(ROW_FIELDS)] for row in staged]
        if staged:
            columns = dict(zip(ROW_FIELDS, map(list, zip(*staged, strict=True)), strict=True))
        else:
            columns = {name: [] for name in ROW_FIELDS}
        created = columns.pop("created_at")
        micros = list(map(epoch_micros, created))
        return cls(level, created, micros, columns, by_column=False, extras=extras)

    def __len__(self) -> int:
        return len(self.micros)

    def staged(self) -> list:
        """The rows as the row-by-row rules stage them (ROW_FIELDS order)."""
        created = list(map(_staged_time, self.created))
        columns = (created, self.hostnames, self.paths, self.methods, self.statuses,
                   self.times, self.ips, self.agents, self.user_ids)  # fmt: skip
        rows = list(map(list, zip(*columns, strict=True)))
        if self.extras is not None:
            for row, found in zip(rows, self.extras, strict=True):
                if found:
                    row.append(found)
        return rows


def _micros(created: list, now: datetime) -> list | None:
    """Epoch microseconds of UTC timestamps as clients write them (_CANONICAL), or
    None if any is not one or falls outside 2000-01-01 .. a day from now."""
    try:
        joined = "\n".join(created)
    except TypeError:
        return None
    # A newline inside a value would pass the pattern as two timestamps: counted out.
    if joined.count("\n") != len(created) - 1 or _TIMES.fullmatch(joined) is None:
        return None
    minutes = {}
    for minute in {stamp[:16] for stamp in created}:
        try:
            minutes[minute] = minute_epoch(minute) * 1_000_000
        except ValueError:  # no such date, hour or minute
            return None
    lengths = set(map(len, created))
    if len(lengths) == 1 and (size := lengths.pop()) in _FRACTIONS:  # C all along
        fraction, unit = _FRACTIONS[size]
        units = map(int, map(add, map(_SECONDS, created), map(fraction, created)))
        if unit != 1:
            units = map(mul, units, repeat(unit))
        micros = list(map(add, map(minutes.__getitem__, map(_MINUTE, created)), units))
    else:
        micros = [
            minutes[s[:16]] + int(s[17:19]) * 1_000_000
            + (int(s[20:-6].ljust(6, "0")) if s[19] == "." else 0)
            for s in created
        ]  # fmt: skip
    if min(micros) < _EARLIEST or max(micros) > epoch_micros(now + FUTURE_SLACK):
        return None
    return micros


def _given_micros(micros: list, created: list, now: datetime) -> list | None:
    """Times given as epoch microseconds along with their text (OpenTelemetry spans, whose
    text is written from the same number), held to _micros' range; None if any row has no
    time or one out of range (the row-by-row rules then refuse it, naming it)."""
    if len(micros) != len(created) or None in created or not micros:
        return None
    if min(micros) < _EARLIEST or max(micros) > epoch_micros(now + FUTURE_SLACK):
        return None
    return micros


def _shared(rows: list, labels: list, extras) -> list:
    """Each row's optional fields, `extras(row)` once per distinct key of `labels` (rows
    whose optional fields are only those labels, the same dict for all of them) and for
    each row without a key (None)."""
    known: dict = {}
    found = []
    append = found.append
    for row, key in zip(rows, labels, strict=True):
        if key is None:
            append(extras(row))
            continue
        value = known.get(key, known)
        if value is known:
            value = known[key] = extras(row)
        append(value)
    return found


def _staged_time(stamp: str) -> str:
    """A timestamp as the row-by-row rules stage it (fields._created_at): one to the
    millisecond is written out as datetime.isoformat writes it."""
    if len(stamp) != 29:
        return stamp
    return stamp[:19] + "+00:00" if stamp[20:23] == "000" else stamp[:23] + "000+00:00"


def _texts(values: list, *, required: bool = False) -> bool:
    """Strings as stored (ASCII, no NUL, at most MAX_TEXT), or None where not required;
    a non-empty string where required."""
    if not {v.__class__ for v in values} <= ({str} if required else {str, NoneType}):
        return False
    distinct = set(values)
    distinct.discard(None)
    if not distinct:
        return True
    joined = "".join(distinct)
    return (
        joined.isascii()
        and "\x00" not in joined
        and max(map(len, distinct)) <= MAX_TEXT
        and not (required and "" in distinct)
    )


def _methods(values: list) -> bool:
    return {v.__class__ for v in values} == {str} and set(values) <= METHODS


def _statuses(values: list) -> bool:
    return {v.__class__ for v in values} == {int} and min(values) >= 100 and max(values) <= 599


def _response_times(values: list) -> list | bool:
    """Whole milliseconds (a float is rounded, as row by row), or False."""
    classes = {v.__class__ for v in values}
    if not classes <= {int, float}:
        return False
    if float in classes and not math.isfinite(sum(values)):
        return False
    if not (min(values) >= 0 and max(values) <= MAX_RESPONSE_TIME_MS):
        return False
    return list(map(round, values)) if float in classes else True


def _user_ids(values: list) -> list | bool:
    """As _texts; an empty id is no id (None), as row by row."""
    if not _texts(values):
        return False
    return [v or None for v in values] if "" in values else True


def _addresses(values: list) -> list | None:
    """Each value's first valid address (fields.normalise_ip), looked up once per
    distinct value; None if a value is not text (row by row handles those)."""
    classes = {v.__class__ for v in values}
    if classes == {str} and "" not in values and max(map(len, values)) <= 1024:
        return list(map(first_address, values))  # what normalise_ip does with each
    if not classes <= {str, NoneType}:
        return None
    found = {v: normalise_ip(v) for v in set(values)}
    return list(map(found.__getitem__, values))


_CHECKS = (
    ("hostname", _texts),
    ("path", lambda values: _texts(values, required=True)),
    ("method", _methods),
    ("status", _statuses),
    ("response_time", _response_times),
    ("user_agent", _texts),
    ("user_id", _user_ids),
)
