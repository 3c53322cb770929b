"""The enrich step: an accepted batch becomes rows to store.

Each row gains its country (from its address, server.ingest.geo), its user agent's
browser, OS, device and bot flag (server.lake.agents), its user's number
(server.lake.users) and, by the privacy level, loses its address; the derived columns
follow from the layout (server.lake.layout.stored_rows). A row with optional fields
(docs/capture.md) also gains its consumer, its exception's error group
(server.ingest.errors) and, for its exception, validation errors and captures, rows of the
details and payloads datasets, linked by a `detail` id. It works a column at a time,
for the web's batches (before their 201) and a worker's staged ones alike.

Two halves: `look_up` writes new user agents, users, error groups and consumers in short
transactions of its own (SQLite has one writer: a worker does it before its batch
transaction takes the write lock), `stored_rows` only computes.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from itertools import repeat

import orjson

from server.ingest import consumers, errors, geo
from server.ingest.columns import Batch
from server.lake import agents as agent_table
from server.lake.layout import HOUR_MICROS, WRITE_NAMES
from server.lake.layout import stored_rows as rows_by_name
from server.lake.users import number_names
from server.rules import template_path


@dataclass(frozen=True)
class Lookups:
    """What enriching some batches needs from the database: each user agent's row, each
    key's users by name -> number (shared caches: read, never change), and each key's
    error groups by fingerprint."""

    agents: dict
    users: dict[int, dict[str, int]]
    groups: dict[int, dict[str, int]] = field(default_factory=dict)


@dataclass
class Stored:
    """A batch's rows for each dataset (server.lake.layout.DATASETS), ready to write."""

    requests: list
    details: list = field(default_factory=list)
    payloads: list = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.requests)

    def extend(self, other: Stored) -> None:
        self.requests += other.requests
        self.details += other.details
        self.payloads += other.payloads


def who(batch: Batch) -> list:
    """Each row's user: its address (only kept at privacy level 0), else its user id."""
    if batch.level == 0:
        return [ip or uid for ip, uid in zip(batch.ips, batch.user_ids, strict=True)]
    return batch.user_ids


def route_of(batch: Batch, index: int) -> str:
    """The row's route: its method and template (the route its span named, if any)."""
    found = batch.extras[index] if batch.extras is not None else None
    template = (found and found.get("route")) or template_path(batch.paths[index])
    return f"{batch.methods[index]} {template}"


def look_up(engine, batches: list[tuple[int, Batch]]) -> Lookups:
    """Resolve the batches' user agents, number their users, group their exceptions and
    record their consumers, committing what is new."""
    strings: set = set()
    names: dict[int, set] = {}
    for key_id, batch in batches:
        strings.update(batch.agents)
        names.setdefault(key_id, set()).update(who(batch))
    strings -= {None, ""}
    users = {key: number_names(engine, key, found - {None, ""}) for key, found in names.items()}
    groups: dict[int, dict[str, int]] = {}
    for key_id, batch in batches:
        if batch.extras is not None:
            found = _group_and_record(engine, key_id, _Rows.of_batch(batch))
            groups.setdefault(key_id, {}).update(found)
    return Lookups(agent_table.resolve(engine, strings), users, groups)


@dataclass
class _Rows:
    """What linking rows to their optional fields reads: each row's extras, time (µs),
    status, and route (asked only of rows with an exception or a capture)."""

    extras: list
    micros: list
    statuses: list
    route: Callable[[int], str]

    @classmethod
    def of_batch(cls, batch: Batch) -> _Rows:
        return cls(batch.extras, batch.micros, batch.statuses, partial(route_of, batch))


def _group_and_record(engine, key_id: int, rows: _Rows) -> dict[str, int]:
    """Group the rows' exceptions (server.ingest.errors) and record their consumers
    (server.ingest.consumers): {fingerprint: group id}."""
    occurrences: dict[str, tuple] = {}
    seen: dict[str, tuple] = {}
    for index, found in enumerate(rows.extras):
        if not found:
            continue
        moment = rows.micros[index]
        exception = found.get("exception")
        if exception:
            route = rows.route(index)
            print_ = errors.fingerprint(exception, route)
            _, _, first, last = occurrences.get(print_, (None, None, moment, moment))
            occurrences[print_] = (exception, route, min(first, moment), max(last, moment))
        consumer = found.get("consumer")
        if consumer:
            name, group, first, last = seen.get(consumer["id"], (None, None, moment, moment))
            if moment >= last or name is None:
                name, group = consumer["name"] or name, consumer["group"] or group
            seen[consumer["id"]] = (name, group, min(first, moment), max(last, moment))
    groups = errors.group_ids(engine, key_id, occurrences)
    consumers.record(engine, key_id, seen)
    return groups


def stored_rows(key_id: int, framework: str | None, batch: Batch, lookups: Lookups) -> Stored:
    """The batch's rows as stored, each dataset's in its layout's WRITE order."""
    n = len(batch)
    ips = batch.ips
    locations = geo.countries(ips) if batch.level < 2 else [None] * n
    if batch.level != 0:
        ips = [None] * n  # level 1: the address was needed for the country only
    found = lookups.agents
    # Each part of an agent by its string; no agent, no parts.
    browser = {None: None, "": None} | {ua: a.browser for ua, a in found.items()}
    system = {None: None, "": None} | {ua: a.os for ua, a in found.items()}
    device = {None: None, "": None} | {ua: a.device for ua, a in found.items()}
    bot = {None: False, "": False} | {ua: bool(a.is_bot) for ua, a in found.items()}
    numbers = lookups.users.get(key_id, {})
    agent = batch.agents
    given = {
        "key_id": repeat(key_id),
        "created_at": batch.micros,
        "hostname": batch.hostnames,
        "method": batch.methods,
        "path": batch.paths,
        "status": batch.statuses,
        "response_time": batch.times,
        "ip_address": ips,
        "location": locations,
        "user_id": batch.user_ids,
        "ux": map(numbers.get, who(batch)),
        "user_agent": agent,
        "browser": map(browser.__getitem__, agent),
        "os": map(system.__getitem__, agent),
        "device": map(device.__getitem__, agent),
        "bot": map(bot.__getitem__, agent),
        "framework": repeat(framework),
        "consumer": repeat(None),
        "consumer_group": repeat(None),
        "error_group": repeat(None),
        "detail": repeat(None),
    }
    if batch.extras is None:
        return Stored(rows_by_name(given))
    linked = _linked(key_id, _Rows.of_batch(batch), lookups.groups.get(key_id, {}))
    given |= linked.columns | _labelled(batch.extras)
    return Stored(rows_by_name(given), linked.details, linked.payloads)


# Optional fields stored as request columns (OpenTelemetry's, server.ingest.otlp): the
# route template stands in for the path's (server.lake.layout.stored_rows).
_LABELS = {"service": "service", "release": "release", "route": "endpoint"}


def _labelled(extras: list) -> dict:
    """The rows' service, release and route template, one column each, for those any
    row has."""
    columns = {}
    for name, column in _LABELS.items():
        values = [found.get(name) if found else None for found in extras]
        if any(value is not None for value in values):
            columns[column] = values
    return columns


@dataclass
class _Linked:
    columns: dict  # consumer, consumer_group, error_group, detail: one list each
    details: list
    payloads: list


def _linked(key_id: int, rows: _Rows, groups: dict[str, int]) -> _Linked:
    """The rows' consumer, consumer group, error group and detail id, and their details and
    payloads rows."""
    n = len(rows.micros)
    consumer, group, error_group, detail = [None] * n, [None] * n, [None] * n, [None] * n
    details, payloads = [], []
    for index, found in enumerate(rows.extras):
        if not found:
            continue
        if found.get("consumer"):
            consumer[index] = found["consumer"]["id"]
            group[index] = found["consumer"]["group"]
        exception, invalid = found.get("exception"), found.get("validation_errors")
        captured = found.get("request") or found.get("response")
        if not (exception or invalid or captured):
            continue
        detail[index] = secrets.randbits(63)  # links the row to its details and payloads
        moment = rows.micros[index]
        head = (key_id, moment, moment // HOUR_MICROS, detail[index])
        route = rows.route(index)
        if exception or invalid:
            if exception:
                error_group[index] = groups.get(errors.fingerprint(exception, route))
            details.append((
                *head, route, rows.statuses[index], error_group[index],
                exception["type"] if exception else None,
                exception["message"] if exception else None,
                _json(exception["stack"]) if exception else None,
                _json(invalid) if invalid else None,
            ))  # fmt: skip
        if captured:
            payloads.append((*head, _json(found.get("request")), _json(found.get("response"))))
    columns = {"consumer": consumer, "consumer_group": group, "error_group": error_group,
               "detail": detail}  # fmt: skip
    return _Linked(columns, details, payloads)


def with_extras(engine, key_id: int, requests: list[tuple], extras: list) -> Stored:
    """Request rows already built (WRITE_NAMES order: the demo's writer) with their
    optional fields (checked and masked: server.ingest.capture.extras_of), linked as a
    batch's are: their exceptions grouped, their consumers recorded, their details and
    payloads rows made."""
    at = {name: WRITE_NAMES.index(name) for name in (*_LINKED, "created_at", "status", "route")}
    micros = [r[at["created_at"]] for r in requests]
    rows = _Rows(extras, micros, [r[at["status"]] for r in requests],
                 lambda index: requests[index][at["route"]])  # fmt: skip
    linked = _linked(key_id, rows, _group_and_record(engine, key_id, rows))
    out = []
    for index, row in enumerate(requests):
        row = list(row)
        for name in _LINKED:
            row[at[name]] = linked.columns[name][index]
        out.append(tuple(row))
    return Stored(out, linked.details, linked.payloads)


_LINKED = ("consumer", "consumer_group", "error_group", "detail")


def _json(value) -> str | None:
    return None if value is None else orjson.dumps(value).decode()


def enrich(engine, key_id: int, framework: str | None, batch: Batch) -> Stored:
    """look_up, then stored_rows: one batch of one key (the web's)."""
    return stored_rows(key_id, framework, batch, look_up(engine, [(key_id, batch)]))
