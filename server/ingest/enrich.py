"""The enrich step: an accepted batch becomes rows to store.

Each row gains its country (from its address, server.ingest.geo), its user agent's
browser, OS, device and bot flag (server.lake.agents), its user's number
(server.lake.users) and, by the privacy level, loses its address; the derived columns
follow from the layout (server.lake.layout.stored_rows). It works a column at a time,
for the web's batches (before their 201) and a worker's staged ones alike.

Two halves: `look_up` writes new user agents and users in short transactions of its own
(SQLite has one writer: a worker does it before its batch transaction takes the write
lock), `stored_rows` only computes.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import repeat

from server.ingest import geo
from server.ingest.columns import Batch
from server.lake import agents as agent_table
from server.lake.layout import stored_rows as rows_by_name
from server.lake.users import number_names


@dataclass(frozen=True)
class Lookups:
    """What enriching some batches needs from the database: each user agent's row, and
    each key's users by name -> number (shared caches: read, never change)."""

    agents: dict
    users: dict[int, dict[str, int]]


def who(batch: Batch) -> list:
    """Each row's user: its address (only kept at privacy level 0), else its user id."""
    if batch.level == 0:
        return [ip or uid for ip, uid in zip(batch.ips, batch.user_ids, strict=True)]
    return batch.user_ids


def look_up(engine, batches: list[tuple[int, Batch]]) -> Lookups:
    """Resolve the batches' user agents and number their users, committing new ones."""
    strings: set = set()
    names: dict[int, set] = {}
    for key_id, batch in batches:
        strings.update(batch.agents)
        names.setdefault(key_id, set()).update(who(batch))
    strings -= {None, ""}
    users = {key: number_names(engine, key, found - {None, ""}) for key, found in names.items()}
    return Lookups(agent_table.resolve(engine, strings), users)


def stored_rows(key_id: int, framework: str | None, batch: Batch, lookups: Lookups) -> list:
    """The batch's rows as stored (server.lake.layout.WRITE_NAMES order)."""
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
    return rows_by_name(
        {
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
        }
    )


def enrich(engine, key_id: int, framework: str | None, batch: Batch) -> list:
    """look_up, then stored_rows: one batch of one key (the web's)."""
    return stored_rows(key_id, framework, batch, look_up(engine, [(key_id, batch)]))
