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
from dataclasses import dataclass, field
from itertools import repeat

import orjson

from server.ingest import consumers, errors, geo
from server.ingest.columns import Batch
from server.lake import agents as agent_table
from server.lake.layout import HOUR_MICROS
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
    return f"{batch.methods[index]} {template_path(batch.paths[index])}"


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
        if batch.extras is None:
            continue
        occurrences, seen = _occurrences(batch)
        groups.setdefault(key_id, {}).update(errors.group_ids(engine, key_id, occurrences))
        consumers.record(engine, key_id, seen)
    return Lookups(agent_table.resolve(engine, strings), users, groups)


def _occurrences(batch: Batch) -> tuple[dict, dict]:
    """({fingerprint: (exception, route, first µs, last µs)}, {consumer id: (name, group,
    first µs, last µs)}) of a batch's rows with optional fields."""
    occurrences: dict[str, tuple] = {}
    seen: dict[str, tuple] = {}
    for index, found in enumerate(batch.extras):
        if not found:
            continue
        moment = batch.micros[index]
        exception = found.get("exception")
        if exception:
            route = route_of(batch, index)
            print_ = errors.fingerprint(exception, route)
            _, _, first, last = occurrences.get(print_, (None, None, moment, moment))
            occurrences[print_] = (exception, route, min(first, moment), max(last, moment))
        consumer = found.get("consumer")
        if consumer:
            name, group, first, last = seen.get(consumer["id"], (None, None, moment, moment))
            if moment >= last or name is None:
                name, group = consumer["name"] or name, consumer["group"] or group
            seen[consumer["id"]] = (name, group, min(first, moment), max(last, moment))
    return occurrences, seen


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
    return _with_extras(key_id, batch, lookups, given)


def _with_extras(key_id: int, batch: Batch, lookups: Lookups, given: dict) -> Stored:
    """The rows of a batch with optional fields, and their details and payloads."""
    n = len(batch)
    consumer, group, error_group, detail = [None] * n, [None] * n, [None] * n, [None] * n
    details, payloads = [], []
    groups = lookups.groups.get(key_id, {})
    for index, found in enumerate(batch.extras):
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
        moment = batch.micros[index]
        head = (key_id, moment, moment // HOUR_MICROS, detail[index])
        route = route_of(batch, index)
        if exception or invalid:
            if exception:
                error_group[index] = groups.get(errors.fingerprint(exception, route))
            details.append((
                *head, route, batch.statuses[index], error_group[index],
                exception["type"] if exception else None,
                exception["message"] if exception else None,
                _json(exception["stack"]) if exception else None,
                _json(invalid) if invalid else None,
            ))  # fmt: skip
        if captured:
            payloads.append((*head, _json(found.get("request")), _json(found.get("response"))))
    given |= {"consumer": consumer, "consumer_group": group, "error_group": error_group,
              "detail": detail}  # fmt: skip
    return Stored(rows_by_name(given), details, payloads)


def _json(value) -> str | None:
    return None if value is None else orjson.dumps(value).decode()


def enrich(engine, key_id: int, framework: str | None, batch: Batch) -> Stored:
    """look_up, then stored_rows: one batch of one key (the web's)."""
    return stored_rows(key_id, framework, batch, look_up(engine, [(key_id, batch)]))
