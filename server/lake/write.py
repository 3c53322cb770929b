"""Writing request rows: what the web does with an accepted batch, and what a worker does
with a staged one. Enrichment (user agent, country, privacy level, users numbered, the
columns derived from the path and time) and the write into the hot table live here once.
"""

from __future__ import annotations

from collections import namedtuple
from datetime import datetime

from server import geo
from server import useragents as useragent
from server.db import copy_rows, is_postgres
from server.lake.layout import WRITE_NAMES
from server.lake.users import number_users
from server.queue import enqueue_export
from server.rules import api_version, epoch_micros, template_path

# Readers and writers of the hot table: a write holds this PostgreSQL advisory lock
# shared for its transaction; the export takes it exclusively for an instant to find a
# boundary no transaction still writes below (worker.export.seal).
LAKE_WRITE_LOCK = 72_045_812

# One enriched row: the layout's columns a writer supplies, in order (server.lake.layout).
LakeRow = namedtuple("LakeRow", WRITE_NAMES)


def build_row(
    key_id: int,
    created_at: datetime | str,
    hostname: str | None,
    path: str,
    method: str,
    status: int,
    response_time: int,
    ip_address: str | None,
    location: str | None,
    user_id: str | None,
    framework: str | None,
    user_agent: str | None,
    browser: str | None,
    os_family: str | None,
    device: str | None,
    bot: bool,
    user_number: int | None,
) -> tuple:
    """A stored row with everything derived from it (time, endpoint, route, version).

    `user_number` is the user's number (server.lake.users.number_users), None without one.
    """
    micros = epoch_micros(created_at)
    endpoint = template_path(path)
    return (
        key_id, micros, micros // 3_600_000_000, hostname, method, path, endpoint,
        f"{method} {endpoint}", api_version(path), status, response_time, ip_address,
        location, user_id, user_number, user_agent, browser, os_family, device, bool(bot),
        framework,
    )  # fmt: skip


def prepare(engine, batches: list):
    """What enriching `batches` needs from the database, fetched (and new entries
    committed) in short transactions of its own: (their user agents resolved to rows,
    their users numbered: server.lake.users).

    `batches` holds (key id, privacy level, staged rows: server.ingest.ROW_FIELDS).
    """
    agents = {r[7] for _k, _l, rows in batches for r in rows if r[7]}
    who = set()
    for key_id, level, rows in batches:
        # The IP counts only at privacy level 0 (the address is dropped after lookup).
        names = (
            {_user(r[6], r[8]) for r in rows} if level == 0 else {_user(None, r[8]) for r in rows}
        )
        who.update((key_id, name) for name in names)
    return useragent.resolve(engine, agents), number_users(engine, who)


def _user(ip: str | None, user_id: str | None) -> str:
    """server.rules.user_key for a validated row (server.ingest): its texts are already
    strings within MAX_TEXT, so the rule is this one expression (per row, it counts)."""
    return ip or user_id or ""


NO_AGENT = (None, None, None, False)


def enrich(key_id, framework, privacy_level, staged, agents, users) -> list[tuple]:
    """Staged rows (see server.ingest.ROW_FIELDS) -> rows ready to store (LakeRow order):
    what build_row makes of each, written out in this loop (a call per row costs a fifth
    of it).

    `users` maps (key id, user key) to the user's number (server.lake.users.number_users).
    """
    rows = []
    append = rows.append
    lookup = geo.country
    parts = {ua: (a.browser, a.os, a.device, bool(a.is_bot)) for ua, a in agents.items()}
    numbers = {name: n for (k, name), n in users.items() if k == key_id}
    locate = privacy_level < 2
    keep_ip = privacy_level == 0  # level 1: the address was needed for the country only
    for created_at, hostname, path, method, status, rt, ip, ua, user_id in staged:
        location = lookup(ip) if ip is not None and locate else None
        if not keep_ip:
            ip = None
        browser, os_family, device, is_bot = parts.get(ua, NO_AGENT)
        micros = epoch_micros(created_at)
        endpoint = template_path(path)
        append((
            key_id, micros, micros // 3_600_000_000, hostname, method, path, endpoint,
            f"{method} {endpoint}", api_version(path), status, rt, ip, location, user_id,
            numbers.get(ip or user_id), ua, browser, os_family, device, is_bot, framework,
        ))  # fmt: skip
    return rows


def store_enriched(engine, rows: list[tuple]) -> None:
    """Write rows that are already enriched (the demo seeder, loaders): the batch's write,
    in one transaction, then an export request like the one a batch makes."""
    with engine.begin() as conn:
        store_rows(conn, rows)
    enqueue_export()


def store_rows(conn, rows: list[tuple]) -> None:
    """Rows (LakeRow order) into the hot table, in the caller's transaction.

    On PostgreSQL, COPY (4x faster than INSERT, bench/README.md) under the shared write
    lock, so the export can tell which rows are complete.
    """
    if not rows:
        return
    if not is_postgres(conn):
        _insert_requests(conn, rows)
        return
    conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock_shared({LAKE_WRITE_LOCK})")
    copy_rows(conn, "requests", WRITE_NAMES, rows)


def _insert_requests(conn, rows: list[tuple]) -> None:
    """SQLite: one executemany on the driver (its write lock serialises it with the export)."""
    marks = ", ".join("?" * len(WRITE_NAMES))
    conn.connection.dbapi_connection.cursor().executemany(
        f"INSERT INTO requests ({', '.join(WRITE_NAMES)}) VALUES ({marks})", rows
    )
