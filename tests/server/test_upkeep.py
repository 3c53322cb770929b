"""Retention deletes exactly what it should (old requests, idle keys, old pings) and no more.

Requests live in the columnar store's monthly files: retention drops a file wholly older
than the cutoff and rewrites one that straddles it, and what it removes is gone from
storage once the grace period is over.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, select, update

from server.db import metadata, utcnow
from server.ingest_health import record as ingest_health
from server.keys.api_keys import lookup_key
from server.lake import catalog
from server.lake.compaction import remove_retired
from server.lake.export import flush
from server.lake.layout import DETAILS, PAYLOADS
from server.lake.source import open_rows
from server.lake.storage import get_storage
from server.models import api_keys, pings
from server.monitors.checks import store_ping
from server.monitors.probe import Outcome
from server.monitors.store import create_monitor
from server.upkeep import Cutoffs, apply_retention, plan_retention
from tests.conftest import postgres_stack, sqlite_stack
from tests.helpers import days_ago, post_batch, row


@pytest.fixture(params=["sqlite", "postgres"])
def fresh_stack(request, tmp_path):
    """Retention acts on the whole database, so each run gets a database of its own."""
    if request.param == "sqlite":
        return sqlite_stack(tmp_path, LAKE_GRACE_SECONDS=0)
    url = request.getfixturevalue("fresh_pg_url")
    return postgres_stack(url, request.getfixturevalue("redis_url"), tmp_path, LAKE_GRACE_SECONDS=0)


def ingest(stack, key, *ages_in_days):
    rows = [row(created_at=days_ago(age), path=f"/v1/{i}") for i, age in enumerate(ages_in_days)]
    response = post_batch(stack.client, key, rows)
    assert response.status_code == 201 and response.get_json()["accepted"] == len(rows)


def add_monitor(stack, key_id, *ping_ages_in_days) -> int:
    with stack.engine.begin() as conn:
        monitor_id = create_monitor(conn, key_id, f"http://1.1.1.1/{key_id}", "GET", 10)["id"]
    for age in ping_ages_in_days:
        moment = utcnow() - timedelta(days=age)
        store_ping(stack.engine, monitor_id, moment, moment, Outcome(200, 5, None))
    return monitor_id


def key_rows(stack, key_id) -> dict[str, int]:
    """How many rows each per-key table holds for the key; "requests" counts the stored
    requests wherever they are (hot or in files), "lake_files" the live files."""
    with stack.engine.connect() as conn:
        counts = {
            table.name: conn.execute(
                select(func.count()).select_from(table).where(table.c.key_id == key_id)
            ).scalar_one()
            for table in metadata.sorted_tables
            if "key_id" in table.c and table.name != "lake_files"
        }
        counts["lake_files"] = len(catalog.live_files(conn, key_id))
    with open_rows(key_id) as rows:
        counts["requests"] = rows.query("SELECT count(*) FROM {rows}").fetchone()[0]
    return counts


def stored_before(key_id: int, cutoff) -> int:
    with open_rows(key_id) as rows:
        return rows.query("SELECT count(*) FROM {rows} WHERE created_at < ?", [cutoff]).fetchone()[
            0
        ]


def files_on_storage(key_id: int) -> set[str]:
    return {name for name, _mtime in get_storage().list(f"k{key_id}/")}


def ping_count(stack, monitor_id) -> int:
    with stack.engine.connect() as conn:
        query = select(func.count()).select_from(pings).where(pings.c.monitor_id == monitor_id)
        return conn.execute(query).scalar_one()


def idle_since(stack, key_id, days, demo=False):
    with stack.engine.begin() as conn:
        conn.execute(
            update(api_keys)
            .where(api_keys.c.id == key_id)
            .values(last_active_at=utcnow() - timedelta(days=days), is_demo=demo)
        )


def test_retention_deletes_exactly_what_it_should(fresh_stack):
    stack = fresh_stack
    keys = {name: stack.new_key() for name in ("active", "idle", "demo")}
    with stack.engine.connect() as conn:
        ids = {name: lookup_key(conn, key) for name, key in keys.items()}
    ingest(stack, keys["active"], 400, 380, 366, 364, 10, 0)
    ingest(stack, keys["idle"], 300, 2)
    ingest(stack, keys["demo"], 400, 1)
    stack.process_jobs()
    flush()  # every row into the columnar store's files
    # The batches' ingest health counts written now, not by the flusher thread between
    # `before` and `after` below (a loaded machine showed one counted in between).
    ingest_health.flush()
    active_monitor = add_monitor(stack, ids["active"], 120, 91, 89, 1)
    idle_monitor = add_monitor(stack, ids["idle"], 1)
    idle_since(stack, ids["idle"], 200)
    idle_since(stack, ids["demo"], 200, demo=True)
    before = {name: key_rows(stack, key_id) for name, key_id in ids.items()}
    assert before["active"]["requests"] == 6
    assert any(n for t, n in before["active"].items() if t not in ("requests", "monitors"))

    cutoffs = Cutoffs.from_config(stack.config)
    plan = plan_retention(stack.engine, cutoffs)
    assert plan == {"keys": [ids["idle"]], "idle_key_requests": 2, "requests": 4, "pings": 2}
    assert {name: key_rows(stack, k) for name, k in ids.items()} == before  # a plan deletes nothing

    old_files = {
        f.path
        for f in _files(stack, ids["active"])
        if f.min_us < cutoffs.requests.timestamp() * 1e6
    }
    assert old_files

    # Tiny batches, so several transactions are needed and each must pick up where it left.
    counts = apply_retention(stack.engine, cutoffs, batch_size=2)
    assert counts == {"keys": 1, "requests": 4, "pings": 2, "details": 0, "payloads": 0}
    # Whole files older than the cutoff were dropped and a straddling one rewritten; once
    # the grace period is over (0 here), none of the old files is left in storage.
    remove_retired(stack.engine, stack.config)
    assert not old_files & files_on_storage(ids["active"])
    assert files_on_storage(ids["idle"]) == set()

    after = {name: key_rows(stack, key_id) for name, key_id in ids.items()}
    assert after["idle"] == dict.fromkeys(before["idle"], 0)
    with stack.engine.connect() as conn:
        assert (
            conn.execute(select(api_keys.c.id).where(api_keys.c.id == ids["idle"])).first() is None
        )
        assert lookup_key(conn, keys["active"]) == ids["active"]
        assert lookup_key(conn, keys["demo"]) == ids["demo"]
    assert stored_before(ids["active"], cutoffs.requests) == 0
    assert stored_before(ids["demo"], cutoffs.requests) == 0
    # Only requests aged out; everything else of kept keys stays.
    same = ("requests", "lake_files")
    assert {k: v for k, v in after["active"].items() if k not in same} == {
        k: v for k, v in before["active"].items() if k not in same
    }
    assert after["active"]["requests"] == 3 and after["demo"]["requests"] == 1
    assert ping_count(stack, active_monitor) == 2
    assert ping_count(stack, idle_monitor) == 0

    # A second pass finds nothing left to do.
    assert apply_retention(stack.engine, cutoffs) == {
        "keys": 0, "requests": 0, "pings": 0, "details": 0, "payloads": 0
    }  # fmt: skip


def test_details_go_with_their_requests_and_payloads_sooner(fresh_stack):
    """An exception's details are kept as long as its request (RETENTION_DAYS); captured
    headers and bodies only PAYLOAD_RETENTION_DAYS (14)."""
    stack = fresh_stack
    key = stack.new_key()
    with stack.engine.connect() as conn:
        key_id = lookup_key(conn, key)
    frame = {"file": "app.py", "line": 1, "function": "f", "in_app": True}
    failed = {"type": "KeyError", "message": "'x'", "stack": [frame]}
    captured = {"headers": [["accept", "json"]], "body": "{}", "body_type": "application/json"}
    rows = [
        row(created_at=days_ago(400), path="/old-failure", status=500, exception=failed),
        row(created_at=days_ago(20), path="/failure", status=500, exception=failed,
            request=captured),
        row(created_at=days_ago(5), path="/recent-capture", request=captured),
        row(created_at=days_ago(0), path="/plain"),
    ]  # fmt: skip
    assert post_batch(stack.client, key, rows).status_code == 201
    stack.process_jobs()
    flush()

    def left(dataset) -> list[str]:
        with open_rows(key_id) as found:
            paths = dict(
                found.query("SELECT detail, path FROM {rows} WHERE detail IS NOT NULL").fetchall()
            )
        with open_rows(key_id, dataset=dataset) as found:
            details = found.query("SELECT detail FROM {rows}").fetchall()
            return sorted(paths.get(d, "gone") for (d,) in details)

    assert left(DETAILS) == ["/failure", "/old-failure"]
    assert left(PAYLOADS) == ["/failure", "/recent-capture"]
    counts = apply_retention(stack.engine, Cutoffs.from_config(stack.config), batch_size=2)
    assert counts == {"keys": 0, "requests": 1, "pings": 0, "details": 1, "payloads": 1}
    assert left(DETAILS) == ["/failure"]
    assert left(PAYLOADS) == ["/recent-capture"]


def test_recent_activity_keeps_a_key(fresh_stack):
    stack = fresh_stack
    key = stack.new_key()
    with stack.engine.connect() as conn:
        key_id = lookup_key(conn, key)
    ingest(stack, key, 5)
    stack.process_jobs()
    idle_since(stack, key_id, 181)  # KEY_INACTIVE_DAYS is 182
    assert apply_retention(stack.engine, Cutoffs.from_config(stack.config))["keys"] == 0
    assert key_rows(stack, key_id)["requests"] == 1


def test_the_command_shows_then_applies(fresh_stack):
    stack = fresh_stack
    key = stack.new_key()
    with stack.engine.connect() as conn:
        key_id = lookup_key(conn, key)
    ingest(stack, key, 400, 1)
    stack.process_jobs()
    flush()
    runner = stack.app.test_cli_runner()

    dry = runner.invoke(args=["retention", "--dry-run"])
    assert dry.exit_code == 0, dry.output
    assert "nothing is deleted" in dry.output
    assert "before" in dry.output and "(365 days): 1\n" in dry.output
    assert key_rows(stack, key_id)["requests"] == 2

    real = runner.invoke(args=["retention"])
    assert real.exit_code == 0, real.output
    assert "deleted 0 idle keys, 1 stored requests, 0 pings" in real.output
    assert key_rows(stack, key_id)["requests"] == 1


def _files(stack, key_id):
    with stack.engine.connect() as conn:
        return catalog.live_files(conn, key_id)
