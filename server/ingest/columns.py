"""An accepted ingest batch, checked and enriched column by column when every row is in
the shape the published clients send, row by row (server.ingest) otherwise.

Why columns: the web checks and enriches every batch before its 201, and a function call
per field of every row was most of its CPU (bench/README.md). A column is checked with a
few passes in C (its types as one set, its distinct values once, a regular expression over
the joined timestamps), and the stored rows are zipped from the columns. Anything a row
might need refused or repaired for (a bad field, text to truncate or mend, a number sent
as text, an odd timestamp) sends the whole batch through the row-by-row rules instead, so
both ways store exactly the same rows (tests/server/test_ingest_batch.py holds them to it).
"""

from __future__ import annotations

import math
import re
from datetime import datetime
from itertools import repeat
from operator import add, floordiv, itemgetter, mul

from server import geo
from server import useragents as useragent
from server.ingest import (
    EARLIEST,
    FUTURE_SLACK,
    MAX_RESPONSE_TIME_MS,
    MAX_TEXT,
    METHODS,
    ROW_FIELDS,
    first_address,
    normalise_ip,
    validate_rows,
)
from server.lake import write
from server.lake.users import number_names
from server.rules import api_version, epoch_micros, minute_epoch, template_path

NoneType = type(None)
HOUR_MICROS = 3_600_000_000
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


def accept(rows: list, privacy_level: int, now: datetime) -> tuple[Columns | Rows, list]:
    """(The accepted rows, the refusals as {"index", "error"}): column by column if the
    batch allows it (it then refuses nothing), else row by row."""
    batch = Columns.take(rows, privacy_level, now)
    if batch is not None:
        return batch, []
    accepted, rejected = validate_rows(rows, privacy_level, now)
    return Rows(accepted, privacy_level), rejected


class Rows:
    """Validated rows, one staged list each (server.ingest.ROW_FIELDS)."""

    def __init__(self, staged: list, privacy_level: int) -> None:
        self.rows = staged
        self.level = privacy_level

    def __len__(self) -> int:
        return len(self.rows)

    def staged(self) -> list:
        return self.rows

    def enrich(self, engine, key_id: int, framework: str | None) -> list[tuple]:
        """The rows as stored (server.lake.write), user agents and users resolved."""
        agents, users = write.prepare(engine, [(key_id, self.level, self.rows)])
        return write.enrich(key_id, framework, self.level, self.rows, agents, users)


class Columns:
    """Accepted rows as one list per field; the same rows Rows would hold."""

    def __init__(self, level: int, created: list, micros: list, columns: dict) -> None:
        self.level = level
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
    def take(cls, rows: list, level: int, now: datetime) -> Columns | None:
        """The rows as columns, or None if any row needs the row-by-row rules."""
        if not rows or {row.__class__ for row in rows} != {dict}:
            return None
        get = dict.get
        columns = {name: list(map(get, rows, repeat(name))) for name in ROW_FIELDS}
        created = columns.pop("created_at")
        micros = _micros(created, now)
        if micros is None:
            return None
        for name, check in _CHECKS:
            value = check(columns[name])
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
        return cls(level, created, micros, columns)

    def __len__(self) -> int:
        return len(self.micros)

    def staged(self) -> list:
        """The rows as the row-by-row rules stage them (ROW_FIELDS order)."""
        created = list(map(_staged_time, self.created))
        columns = (created, self.hostnames, self.paths, self.methods, self.statuses,
                   self.times, self.ips, self.agents, self.user_ids)  # fmt: skip
        return list(map(list, zip(*columns, strict=True)))

    def enrich(self, engine, key_id: int, framework: str | None) -> list[tuple]:
        """The rows as stored (LakeRow order): what server.lake.write.enrich makes of the
        staged rows, a column at a time."""
        n = len(self)
        ips = self.ips
        locations = geo.countries(ips) if self.level < 2 else [None] * n
        if self.level != 0:
            ips = [None] * n  # level 1: the address was needed for the country only
        known = set(self.agents)
        known.discard(None)
        known.discard("")
        agents = useragent.resolve(engine, known)
        # Each part of an agent by its string; no agent, no parts (write.NO_AGENT).
        browser = {None: None, "": None} | {ua: a.browser for ua, a in agents.items()}
        system = {None: None, "": None} | {ua: a.os for ua, a in agents.items()}
        device = {None: None, "": None} | {ua: a.device for ua, a in agents.items()}
        bot = {None: False, "": False} | {ua: bool(a.is_bot) for ua, a in agents.items()}
        who = self.user_ids
        if self.level == 0:
            who = [ip or uid for ip, uid in zip(ips, who, strict=True)]
        names = set(who)
        names.discard(None)
        names.discard("")
        users = number_names(engine, key_id, names)
        endpoints = list(map(template_path, self.paths))
        routes = [f"{m} {endpoint}" for m, endpoint in zip(self.methods, endpoints, strict=True)]
        agent = self.agents
        return list(
            zip(repeat(key_id), self.micros, map(floordiv, self.micros, repeat(HOUR_MICROS)),
                self.hostnames, self.methods, self.paths, endpoints, routes,
                map(api_version, self.paths), self.statuses, self.times, ips, locations,
                self.user_ids, map(users.get, who), agent, map(browser.__getitem__, agent),
                map(system.__getitem__, agent), map(device.__getitem__, agent),
                map(bot.__getitem__, agent), repeat(framework))
        )  # fmt: skip


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


def _staged_time(stamp: str) -> str:
    """A timestamp as the row-by-row rules stage it (server.ingest._created_at): one to the
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
    """Each value's first valid address (server.ingest.normalise_ip), looked up once per
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
