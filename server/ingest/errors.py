"""Error groups: exceptions grouped by a fingerprint, as Sentry groups them.

The fingerprint is the exception's type, its top in-app frame (the application's own
code nearest the raise; the top frame when none is the app's), the route, and the message
with its numbers, hex and UUIDs normalised, so "order 1881 not found" and "order 77 not
found" are one group. Each group keeps its first and latest occurrence and a state: open,
resolved or ignored. A resolved group that occurs again after it was resolved opens again,
marked as a regression. Counts are never kept here: rows carry their group's id, and the
engine counts them under any filter (server.stats.errors).
"""

from __future__ import annotations

import hashlib
import re

from sqlalchemy import case, or_, select, update

from server.db import dialect_insert, relax_commit
from server.models import error_groups

# Normalised out of a message: UUIDs, long hex, numbers (with their decimals), quoted text.
_UUID = re.compile(r"\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b", re.I)
_HEX = re.compile(r"\b(?=[0-9a-f]*\d)[0-9a-f]{12,}\b", re.I)
_NUMBER = re.compile(r"\d+(?:\.\d+)?")
_QUOTED = re.compile(r"'[^']{0,200}'|\"[^\"]{0,200}\"")
STATES = ("open", "resolved", "ignored")
# A group's stored last occurrence moves when it is at least this far behind (µs), so a
# group that fails all the time is written once a minute, not by every batch; its exact
# last occurrence is counted from the rows (server.stats.errors).
LAST_SEEN_STEP = 60_000_000


def normalise(message: str | None) -> str:
    if not message:
        return ""
    text = _UUID.sub("{uuid}", message)
    text = _HEX.sub("{hex}", text)
    text = _QUOTED.sub("{str}", text)
    return _NUMBER.sub("{n}", text)[:1024]


def top_frame(stack: list) -> str | None:
    """The frame the fingerprint uses: "file in function" (no line: a line moves with
    every edit of the file above it)."""
    if not stack:
        return None
    in_app = [frame for frame in stack if frame[3]]
    file, _line, function, _in_app = (in_app or stack)[-1]
    return f"{file} in {function}"


def shown_frame(stack: list) -> str | None:
    """The top in-app frame as the group shows it: "file:line in function"."""
    if not stack:
        return None
    in_app = [frame for frame in stack if frame[3]]
    file, line, function, _in_app = (in_app or stack)[-1]
    return f"{file}:{line} in {function}"


def fingerprint(exception: dict, route: str) -> str:
    parts = (exception["type"], top_frame(exception["stack"]) or "", route,
             normalise(exception["message"]))  # fmt: skip
    return hashlib.sha256("\x1f".join(parts).encode("utf-8", "surrogatepass")).hexdigest()


def group_ids(engine, key_id: int, occurrences: dict[str, tuple]) -> dict[str, int]:
    """{fingerprint: group id} for a batch's exceptions, creating new groups, moving a
    group's first occurrence back and its last one on (to the minute: LAST_SEEN_STEP),
    and opening again a resolved group that occurs after it was resolved (a regression),
    in a short transaction of its own: one read of the batch's groups, one upsert of those
    it changes, one update per regression.

    `occurrences` maps a fingerprint to (exception, route, first µs, last µs) of the batch.
    """
    if not occurrences:
        return {}
    g = error_groups.c
    with engine.begin() as conn:
        relax_commit(conn)  # the rows' own commit, later, makes this one durable too
        found = _found(conn, key_id, occurrences)
        rows = []
        for print_, (exception, route, first, last) in sorted(occurrences.items()):
            was = found.get(print_)
            if was is None or first < was.first_seen or last >= was.last_seen + LAST_SEEN_STEP:
                rows.append({"key_id": key_id, "fingerprint": print_, "type": exception["type"],
                             "message": normalise(exception["message"]),
                             "frame": shown_frame(exception["stack"]), "route": route,
                             "first_seen": first, "last_seen": last, "state": "open",
                             "regressions": 0})  # fmt: skip
        if rows:
            statement = dialect_insert(conn, error_groups)
            new = statement.excluded
            # In SQL, so two batches at once never move a time back.
            conn.execute(
                statement.on_conflict_do_update(
                    index_elements=["key_id", "fingerprint"],
                    set_={
                        "last_seen": case(
                            (new.last_seen > g.last_seen, new.last_seen), else_=g.last_seen
                        ),
                        "first_seen": case(
                            (new.first_seen < g.first_seen, new.first_seen), else_=g.first_seen
                        ),
                    },  # fmt: skip
                    where=or_(new.last_seen > g.last_seen, new.first_seen < g.first_seen),
                ),
                rows,
            )
            found = _found(conn, key_id, occurrences)
        for print_, (_exception, _route, _first, last) in sorted(occurrences.items()):
            group = found[print_]
            if group.state != "resolved" or (group.resolved_at or 0) >= last:
                continue
            conn.execute(
                update(error_groups)
                .where(g.id == group.id, g.state == "resolved")
                .values(state="open", regressed_at=last, regressions=g.regressions + 1)
            )
    return {print_: row.id for print_, row in found.items()}


def _found(conn, key_id: int, occurrences: dict) -> dict:
    g = error_groups.c
    return {
        row.fingerprint: row
        for row in conn.execute(
            select(g.id, g.fingerprint, g.state, g.resolved_at, g.first_seen, g.last_seen).where(
                g.key_id == key_id, g.fingerprint.in_(sorted(occurrences))
            )
        )
    }
