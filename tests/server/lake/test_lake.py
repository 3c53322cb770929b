"""The columnar store: export, compaction, single flight, deletion, S3, many processes.

Counts are checked against the rows each test sent, read back through the data API and
by plain SQL over the stored files (never through the code that wrote them).
"""

from __future__ import annotations

import multiprocessing
import re
import shutil
import threading
import time
from datetime import UTC, datetime, timedelta

import duckdb
import pytest
from sqlalchemy import func, select, update

from bench.services import free_port
from server.keys.api_keys import lookup_key
from server.lake import catalog, compaction, export
from server.lake.compaction import remove_retired
from server.lake.export import flush, run_export, trim_hot
from server.lake.lock import single_flight
from server.lake.models import lake_files, requests
from server.lake.source import open_rows
from server.lake.storage import get_storage
from server.lake.summaries import SUFFIX
from server.stats import summaries as dash_summaries
from server.stats.filters import window_for
from tests.conftest import sqlite_stack
from tests.helpers import post_batch, row


@pytest.fixture(autouse=True)
def every_batch_asks_for_an_export(monkeypatch):
    """These tests follow each batch's request for an export: no once-a-second limit on
    the asks (server.ingest.pipeline.ask_for_export, tested in test_queue.py)."""
    from server.ingest import pipeline

    monkeypatch.setattr(pipeline, "EXPORT_ASK_SECONDS", 0.0)


def send(
    stack, key, count: int, *, tag: str = "x", when: datetime | None = None, ip: str = "8.8.8.8"
) -> None:
    when = when or datetime.now(UTC)
    rows = [
        row(path=f"/v1/{tag}/{i}", created_at=(when - timedelta(seconds=i)).isoformat(),
            ip_address=ip)
        for i in range(count)
    ]  # fmt: skip
    for start in range(0, count, 5000):
        response = post_batch(stack.client, key, rows[start : start + 5000])
        assert response.status_code == 201, response.get_json()
    stack.process_jobs()


def key_id_of(stack, key) -> int:
    with stack.engine.connect() as conn:
        return lookup_key(conn, key)


def stored_ids(key_id: int) -> list[int]:
    """Every stored row's id for the key (hot and in files), as readers see them."""
    with open_rows(key_id) as rows:
        return [r[0] for r in rows.query("SELECT id FROM {rows} ORDER BY id").fetchall()]


def plain_file_count(stack, key_id: int | None = None) -> int:
    """Rows in the key's live files, counted by plain SQL over the files themselves."""
    storage = get_storage()
    with stack.engine.connect() as conn:
        files = [storage.url(f.path) for f in catalog.live_files(conn, key_id)]
    if not files:
        return 0
    found = duckdb.connect().execute(
        f"SELECT count(*) FROM read_parquet({files!r})"
        + (f" WHERE key_id = {key_id}" if key_id else "")
    )
    return found.fetchone()[0]


def hot_count(stack, key_id: int) -> int:
    with stack.engine.connect() as conn:
        return conn.execute(
            select(func.count()).select_from(requests).where(requests.c.key_id == key_id)
        ).scalar_one()


def test_rows_that_name_no_hostname_are_exported(stack):
    """A key whose rows in a month all lack a hostname (an OpenTelemetry span without
    server.address): its file lists no hostname, and the export does not stop there."""
    key = stack.new_key()
    rows = [row(hostname=None, path=f"/v1/bare/{i}") for i in range(20)]
    assert post_batch(stack.client, key, rows).status_code == 201
    stack.process_jobs()
    key_id = key_id_of(stack, key)
    flush()  # (the batch's own ask for an export may have run it already)
    assert plain_file_count(stack, key_id) == 20
    with stack.engine.connect() as conn:
        assert [f.hostnames for f in catalog.live_files(conn, key_id)] == [()]
    send(stack, key, 5, tag="named")  # and the next export goes on
    flush()
    assert plain_file_count(stack, key_id) == 25


def test_export_moves_rows_once_and_trims_the_hot_table(stack):
    stack.config.LAKE_EXPORT_SECONDS = 3600  # only explicit exports
    key = stack.new_key()
    send(stack, key, 500)
    key_id = key_id_of(stack, key)
    assert plain_file_count(stack, key_id) == 0 and hot_count(stack, key_id) == 500
    ids = stored_ids(key_id)
    assert len(ids) == len(set(ids)) == 500

    assert flush()["exported"] >= 500
    assert plain_file_count(stack, key_id) == 500
    assert stored_ids(key_id) == ids  # the same rows, once: files plus hot rows past them
    assert flush()["exported"] == 0  # nothing new, nothing twice
    # Exported rows stay hot for the grace period (a reader may still use the old
    # boundary); after it, they go. (The trim may take earlier tests' rows: PostgreSQL's
    # database is the session's.)
    trim_hot(stack.engine, stack.config)
    assert hot_count(stack, key_id) == 500
    stack.config.LAKE_GRACE_SECONDS = 0
    assert trim_hot(stack.engine, stack.config) >= 500
    assert hot_count(stack, key_id) == 0
    assert stored_ids(key_id) == ids
    response = stack.client.get("/api/data", headers={"X-AUTH-TOKEN": key})
    assert len(response.get_json()) == 500


def test_an_export_waits_for_enough_rows_or_time(stack):
    stack.config.LAKE_EXPORT_SECONDS = 3600
    stack.config.LAKE_EXPORT_ROWS = 300
    key = stack.new_key()
    key_id = key_id_of(stack, key)
    send(stack, key, 100)
    assert run_export()["exported"] == 0  # 100 rows, exported minutes ago: not yet
    send(stack, key, 250, tag="y")
    stack.process_jobs()
    run_export()
    assert plain_file_count(stack, key_id) == 350
    stack.config.LAKE_EXPORT_SECONDS = 0
    send(stack, key, 10, tag="z")
    run_export()
    assert plain_file_count(stack, key_id) == 360


def test_compaction_merges_small_files_without_changing_a_row(stack, monkeypatch):
    stack.config.LAKE_EXPORT_SECONDS = 3600
    key = stack.new_key()
    key_id = key_id_of(stack, key)
    last_month = (datetime.now(UTC).replace(day=1) - timedelta(days=3)).replace(hour=12)
    # Ten exports into this month and three into last month: one file each.
    monkeypatch.setattr(compaction, "compact", lambda *a, **k: 0)
    for i in range(10):
        send(stack, key, 20, tag=f"now{i}")
        flush()
    for i in range(3):
        send(stack, key, 20, tag=f"old{i}", when=last_month)
        flush()
    monkeypatch.undo()
    with stack.engine.connect() as conn:
        before = catalog.live_files(conn, key_id)
    assert len(before) == 13
    ids = stored_ids(key_id)

    merged = compaction.compact(stack.engine, stack.config)
    with stack.engine.connect() as conn:
        after = catalog.live_files(conn, key_id)
    # The current month's ten small files made a full tier (eight or more of a size) and
    # were merged; last month, closed, was merged whole.
    months = {}
    for f in after:
        months.setdefault(f.month, []).append(f)
    this_month = compaction.current_month()
    assert len(months[this_month]) == 1 and merged == 10 + 3
    assert len([m for m in months if m != this_month]) == 1
    assert len(next(v for m, v in months.items() if m != this_month)) == 1
    assert stored_ids(key_id) == ids
    assert plain_file_count(stack, key_id) == 260
    # Replaced files stay readable for the grace period, then leave storage.
    names = {name for name, _ in get_storage().list(f"k{key_id}/")}
    assert {f.path for f in before} <= names
    stack.config.LAKE_GRACE_SECONDS = 0
    remove_retired(stack.engine, stack.config)
    names = {name for name, _ in get_storage().list(f"k{key_id}/")}
    assert names == {name for f in after for name in f.names}
    # The closed month's file has its digest beside it.
    assert all(f.summary for f in after if f.month != this_month)


def test_the_current_months_files_merge_one_after_another(stack, monkeypatch):
    """Compaction does not sort the current month's rows again (the sort was most of its
    cost): each file is in time order, and the merged file holds them one after another,
    the file of the oldest row first. No row changes."""
    stack.config.LAKE_EXPORT_SECONDS = 3600
    key = stack.new_key()
    key_id = key_id_of(stack, key)
    now = datetime.now(UTC).replace(microsecond=0)
    base = max(now - timedelta(minutes=10), now.replace(day=1, hour=0, minute=2, second=0))
    monkeypatch.setattr(compaction, "compact", lambda *a, **k: 0)
    # Eight files of 30 rows a second apart, each overlapping the next in time, exported
    # out of time order.
    for i in [5, 2, 7, 0, 4, 1, 6, 3]:
        send(stack, key, 30, tag=f"f{i}", when=base + timedelta(seconds=10 * i))
        flush()
    monkeypatch.undo()
    ids = stored_ids(key_id)
    assert compaction.compact(stack.engine, stack.config) == compaction.FAN_IN
    with stack.engine.connect() as conn:
        (merged,) = catalog.live_files(conn, key_id)
    found = (
        duckdb.connect()
        .execute(
            f"SELECT epoch_us(created_at) FROM read_parquet('{get_storage().url(merged.path)}')"
        )
        .fetchall()
    )
    start = int(base.timestamp()) * 1_000_000
    expected = [start + 1_000_000 * (10 * i - j) for i in range(8) for j in reversed(range(30))]
    assert [t for (t,) in found] == expected
    assert expected != sorted(expected)  # not sorted again as a whole
    assert stored_ids(key_id) == ids


@pytest.mark.parametrize(
    "old_suffix",
    [".digest.parquet", ".digest2.parquet", ".digest3.parquet", ".digest4.parquet",
     ".digest5.parquet"],
    ids=["before-families", "time-ordered", "before-user-ids-and-places", "before-endpoints",
         "route-order"],
)  # fmt: skip
def test_compaction_replaces_a_digest_of_an_older_layout(stack, old_suffix):
    """A closed month's file whose digest predates today's layout is rewritten with a
    current digest (its rows sorted again); the old pair stays readable for the grace
    period. Meanwhile a digest older than today's parts answers nothing (it lacks parts
    today's readers ask for); one with today's parts (v5, its file in the route order
    before the user order) answers."""
    stack.config.LAKE_EXPORT_SECONDS = 3600
    key = stack.new_key()
    key_id = key_id_of(stack, key)
    last_month = (datetime.now(UTC).replace(day=1) - timedelta(days=3)).replace(hour=12)
    send(stack, key, 30, tag="old", when=last_month)
    flush()
    with stack.engine.connect() as conn:
        (closed,) = catalog.live_files(conn, key_id)
    assert closed.summary.endswith(SUFFIX)
    # Make it look like an earlier release's: its digest under the old name.
    storage = get_storage()
    old_name = closed.path.removesuffix(".parquet") + old_suffix
    staged = storage.staging / "old-digest.parquet"
    shutil.copy(storage.url(closed.summary), staged)
    storage.put(staged, old_name)
    storage.delete([closed.summary])
    with stack.engine.begin() as conn:
        conn.execute(
            update(lake_files).where(lake_files.c.id == closed.id).values(summary=old_name)
        )
    ids = stored_ids(key_id)
    with open_rows(key_id) as rows:
        covered = dash_summaries.covered(rows.snapshot.files, window_for("all"))
    assert [f.id for f in covered] == ([closed.id] if old_suffix == ".digest5.parquet" else [])
    single = duckdb.connect(config={"threads": 1})

    def in_file(f) -> list[tuple]:
        return single.execute(
            "SELECT * REPLACE (epoch_us(created_at) AS created_at) "
            f"FROM read_parquet('{storage.url(f.path)}')"
        ).fetchall()

    before = in_file(closed)
    compaction.compact(stack.engine, stack.config)
    with stack.engine.connect() as conn:
        (new,) = catalog.live_files(conn, key_id)
    assert new.id != closed.id and new.summary.endswith(SUFFIX)
    assert stored_ids(key_id) == ids
    assert in_file(new) == before  # the same rows in the same order
    with open_rows(key_id) as rows:
        covered = dash_summaries.covered(rows.snapshot.files, window_for("all"))
    assert [f.id for f in covered] == [new.id]
    names = {name for name, _ in storage.list(f"k{key_id}/")}
    assert {closed.path, old_name} <= names  # in its grace period
    stack.config.LAKE_GRACE_SECONDS = 0
    remove_retired(stack.engine, stack.config)
    assert {name for name, _ in storage.list(f"k{key_id}/")} == set(new.names)


def test_a_closed_months_file_is_in_week_user_and_route_order(stack):
    """Compaction writes a closed month's file sorted by week, user number, route and time
    (so a user click skips row groups and reads one run of rows a week), the current
    month's in time order."""
    stack.config.LAKE_EXPORT_SECONDS = 3600
    key = stack.new_key()
    key_id = key_id_of(stack, key)
    day = (datetime.now(UTC).replace(day=1) - timedelta(days=20)).replace(hour=10, minute=30)
    # Two users the same day (so the same week), their routes and hours interleaved, then
    # a week later each again.
    later = day + timedelta(days=7)
    one, two = "11.0.0.1", "11.0.0.2"
    for tag, ip, when in [("b", one, day), ("a", two, day + timedelta(hours=1)),
                          ("a", one, day + timedelta(hours=2)), ("c", two, later),
                          ("a", one, later + timedelta(hours=2))]:  # fmt: skip
        send(stack, key, 15, tag=tag, when=when, ip=ip)
    send(stack, key, 15, tag="b")
    send(stack, key, 15, tag="a", when=datetime.now(UTC) + timedelta(minutes=1))
    flush()
    compaction.compact(stack.engine, stack.config)
    storage = get_storage()
    with stack.engine.connect() as conn:
        files = {f.month: f for f in catalog.live_files(conn, key_id)}
    this_month = compaction.current_month()
    assert len(files) == 2
    single = duckdb.connect(config={"threads": 1})

    def in_file(f) -> list[tuple]:
        return single.execute(
            "SELECT hour // 168, ux, route, epoch_us(created_at), id, ip_address "
            f"FROM read_parquet('{storage.url(f.path)}')"
        ).fetchall()

    closed = in_file(next(f for m, f in files.items() if m != this_month))
    assert len(closed) == 75
    assert closed == sorted(closed)
    assert closed != sorted(closed, key=lambda r: (r[0], r[2], r[3], r[4]))  # not route first
    assert closed != sorted(closed, key=lambda r: (r[3], r[4]))  # not time order
    # The first week: each user's rows together, and within them by route ("a" before "b").
    week = [(r[5], r[2][len("GET /v1/") :][0]) for r in closed[:45]]
    by_user = [week[:30], week[30:]] if week[0][0] == one else [week[15:], week[:15]]
    assert by_user == [[(one, "a")] * 15 + [(one, "b")] * 15, [(two, "a")] * 15]
    current = in_file(files[this_month])
    assert current == sorted(current, key=lambda r: (r[3], r[4]))
    assert current != sorted(current)  # "b" came first


def test_deleting_a_key_leaves_nothing_of_it_in_any_file(stack):
    stack.config.LAKE_EXPORT_SECONDS = 3600
    gone, kept = stack.new_key(), stack.new_key()
    send(stack, gone, 200, tag="gone")
    send(stack, kept, 50, tag="kept")
    flush()
    send(stack, gone, 30, tag="gone2")  # hot rows too
    gone_id, kept_id = key_id_of(stack, gone), key_id_of(stack, kept)
    assert get_storage().list(f"k{gone_id}/")

    response = stack.client.delete("/api/data", headers={"X-AUTH-TOKEN": gone})
    assert response.status_code == 204
    assert get_storage().list(f"k{gone_id}/") == []
    with stack.engine.connect() as conn:
        assert catalog.key_files(conn, gone_id) == []
    assert hot_count(stack, gone_id) == 0
    # No stored file holds a row of the deleted key, whatever its name (digests hold no
    # key column: they live under their key's prefix, checked empty above).
    storage = get_storage()
    for name, _ in storage.list():
        if name.endswith(SUFFIX):
            continue
        found = duckdb.connect().execute(
            f"SELECT count(*) FROM read_parquet('{storage.url(name)}') WHERE key_id = {gone_id}"
        )
        assert found.fetchone()[0] == 0, name
    assert len(stored_ids(kept_id)) == 50


def test_a_key_deleted_while_its_rows_are_exported_leaves_no_file(stack, monkeypatch):
    """The export has written the key's file when the key is deleted: it must not publish
    it, and must remove it from storage."""
    stack.config.LAKE_EXPORT_SECONDS = 3600
    key = stack.new_key()
    send(stack, key, 40)
    key_id = key_id_of(stack, key)
    storage = get_storage()
    real_put = type(storage).put

    def put_then_delete(self, local, name):
        size = real_put(self, local, name)
        if name.startswith(f"k{key_id}/"):
            response = stack.client.delete("/api/data", headers={"X-AUTH-TOKEN": key})
            assert response.status_code == 204
        return size

    monkeypatch.setattr(type(storage), "put", put_then_delete)
    flush()
    monkeypatch.undo()
    assert storage.list(f"k{key_id}/") == []
    with stack.engine.connect() as conn:
        assert catalog.key_files(conn, key_id) == []


def test_one_export_at_a_time(stack):
    """Exports started together store every row once (one runs, the others skip)."""
    stack.config.LAKE_EXPORT_SECONDS = 3600
    key = stack.new_key()
    send(stack, key, 300)
    key_id = key_id_of(stack, key)
    stack.config.LAKE_EXPORT_SECONDS = 0
    results = []
    threads = [threading.Thread(target=lambda: results.append(run_export())) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(r.get("exported", 0) for r in results) == 300
    assert plain_file_count(stack, key_id) == 300
    assert len(stored_ids(key_id)) == 300


def test_an_export_runs_beside_a_compaction_and_asks_for_one(stack):
    """A compaction in progress does not hold up the export (the hot table, which every
    read copies, stays small); each export that wrote files asks for a compaction, which
    merges the month's small files."""
    stack.config.LAKE_EXPORT_SECONDS = 0
    key = stack.new_key()
    key_id = key_id_of(stack, key)
    with single_flight("lake-compaction", stack.engine, stack.config, wait=True):
        for i in range(compaction.FAN_IN):
            send(stack, key, 20, tag=f"c{i}")  # its batch's export job runs here
            run_export()
            assert plain_file_count(stack, key_id) == 20 * (i + 1)
        with stack.engine.connect() as conn:
            assert len(catalog.live_files(conn, key_id)) == compaction.FAN_IN
        assert compaction.run_compaction() == {"skipped": "another compaction is running"}
    # The next export's request for a compaction merges them all.
    send(stack, key, 20, tag="last")
    stack.process_jobs()
    with stack.engine.connect() as conn:
        assert len(catalog.live_files(conn, key_id)) == 1
    assert plain_file_count(stack, key_id) == 20 * (compaction.FAN_IN + 1)


# --- several processes writing, exporting and reading at once (PostgreSQL) ----------------


def _writer(database_url: str, lake: str, key_id: int, batches: int, size: int) -> None:
    from server.config import Config, use_config
    from server.db import init_engine
    from server.lake.layout import stored_row
    from server.lake.users import number_users
    from server.lake.write import store_rows
    from server.queue import init_queue

    settings = use_config(Config.from_env({}, DATABASE_URL=database_url, LAKE_URL=lake))
    init_queue("")
    engine = init_engine(settings.DATABASE_URL)
    now = datetime.now(UTC)
    number = number_users(engine, {(key_id, "8.8.8.8")})[(key_id, "8.8.8.8")]
    for b in range(batches):
        rows = [
            stored_row(
                key_id=key_id,
                created_at=now - timedelta(seconds=i),
                hostname="h",
                path=f"/p/{b}/{i}",
                method="GET",
                status=200,
                response_time=5,
                ip_address="8.8.8.8",
                location="US",
                user_id=None,
                framework="FastAPI",
                user_agent="curl/8",
                browser="curl",
                os="Other",
                device="other",
                bot=False,
                ux=number,
            )
            for i in range(size)
        ]
        with engine.begin() as conn:
            store_rows(conn, rows)


def _exporter(database_url: str, lake: str, rounds: int) -> None:
    from server.config import Config, use_config
    from server.db import init_engine

    settings = use_config(
        Config.from_env({}, DATABASE_URL=database_url, LAKE_URL=lake, LAKE_EXPORT_SECONDS=0)
    )
    engine = init_engine(settings.DATABASE_URL)
    # Each lock as the jobs take it: one process's compaction runs beside the other's
    # export.
    for _ in range(rounds):
        with single_flight("lake-export", engine, settings, wait=True):
            export.export_pending(engine, settings, force=True)
        with single_flight("lake-compaction", engine, settings, wait=True):
            compaction.compact(engine, settings)


def _embedded_mix(database_url: str, lake: str, key_id: int, rounds: int) -> None:
    """One embedded (SQLite) process: a thread writes without pause while the main thread
    reads the key's rows and exports them, as the web's request threads and in-process
    jobs do."""
    from server.config import Config, use_config
    from server.db import init_engine
    from server.lake.layout import stored_row
    from server.lake.write import store_rows

    settings = use_config(
        Config.from_env({}, DATABASE_URL=database_url, LAKE_URL=lake, LAKE_EXPORT_SECONDS=0)
    )
    engine = init_engine(settings.DATABASE_URL)
    done = threading.Event()

    def write() -> None:
        batch = 0
        while not done.is_set():
            rows = [
                stored_row(
                    key_id=key_id,
                    created_at=datetime.now(UTC),
                    hostname="h",
                    path=f"/p/{batch}/{i}",
                    method="GET",
                    status=200,
                    response_time=5,
                    ip_address=None,
                    location="US",
                    user_id=f"u{i}",
                    framework="FastAPI",
                    user_agent="curl/8",
                    browser="curl",
                    os="Other",
                    device="other",
                    bot=False,
                    ux=None,
                )
                for i in range(20)
            ]
            with engine.begin() as conn:
                store_rows(conn, rows)
            batch += 1
            time.sleep(0.002)

    writer = threading.Thread(target=write)
    writer.start()
    seen = 0
    try:
        for n in range(rounds):
            with open_rows(key_id) as rows:
                count = rows.query("SELECT count(*) FROM {rows}").fetchone()[0]
            assert count >= seen, "a reader saw fewer rows than a reader before it"
            seen = count
            if n % 5 == 4:
                export.export_pending(engine, settings, force=True)
    finally:
        done.set()
        writer.join()


def test_embedded_reads_and_exports_beside_writes_in_one_process(tmp_path):
    """In the embedded mode the engine must not open the SQLite file itself: a second copy
    of SQLite in one process undid the application's locks, reset the write-ahead log's
    index under it, and the process died of a bus error."""
    stack = sqlite_stack(tmp_path)
    key_id = key_id_of(stack, stack.new_key())
    context = multiprocessing.get_context("spawn")
    mix = context.Process(
        target=_embedded_mix, args=(stack.config.DATABASE_URL, stack.config.LAKE_URL, key_id, 200)
    )
    mix.start()
    mix.join(300)
    assert mix.exitcode == 0, f"the embedded process ended with {mix.exitcode}"
    written = hot_count(stack, key_id)  # nothing trimmed the hot table
    assert written >= 20 * 10
    flush()
    ids = stored_ids(key_id)
    assert len(ids) == len(set(ids)) == written
    assert plain_file_count(stack, key_id) == written


@pytest.mark.postgres
def test_writers_exporters_and_readers_in_several_processes(pg_app):
    stack = pg_app
    key = stack.new_key()
    key_id = key_id_of(stack, key)
    url, lake = stack.config.DATABASE_URL, stack.config.LAKE_URL
    context = multiprocessing.get_context("spawn")
    writers = [context.Process(target=_writer, args=(url, lake, key_id, 20, 250)) for _ in range(3)]
    exporters = [context.Process(target=_exporter, args=(url, lake, 15)) for _ in range(2)]
    for p in writers + exporters:
        p.start()
    seen = []
    while any(p.is_alive() for p in writers):
        ids = stored_ids(key_id)
        assert len(ids) == len(set(ids)), "a reader saw a row twice"
        seen.append(len(ids))
    for p in writers + exporters:
        p.join(120)
        assert p.exitcode == 0
    assert seen == sorted(seen), "a reader saw fewer rows than a reader before it"
    flush()
    ids = stored_ids(key_id)
    assert len(ids) == len(set(ids)) == 3 * 20 * 250
    assert plain_file_count(stack, key_id) == 3 * 20 * 250


@pytest.mark.postgres
def test_more_than_65535_paths_under_one_endpoint(pg_app):
    """A click on an endpoint whose ids make 70,000+ distinct paths (one bind parameter per
    path used to fail on PostgreSQL), and on one of those raw paths."""
    from dash_app.panels import compute
    from server.stats.filters import Filters

    stack = pg_app
    key = stack.new_key()
    now = datetime.now(UTC)
    rows = [row(path=f"/items/{i}", created_at=now.isoformat()) for i in range(70_500)]
    for start in range(0, len(rows), 10_000):
        assert post_batch(stack.client, key, rows[start : start + 10_000]).status_code == 201
    stack.process_jobs()
    key_id = key_id_of(stack, key)
    flush()
    data = compute(key_id, Filters().with_click("endpoint", "GET /items/{id}"), now)
    assert data.summary["requests"] == 70_500
    one = compute(key_id, Filters(keep_ids=True).with_click("endpoint", "GET /items/69999"), now)
    assert one.summary["requests"] == 1
    ids = compute(key_id, Filters(keep_ids=True), now)
    assert int(ids.endpoints["n"].sum()) == 70_500


# --- S3 ----------------------------------------------------------------------------------


@pytest.fixture
def s3_stack(tmp_path, geoip_db):
    """The embedded stack with its files in a local S3 server (moto), not on disk."""
    boto3 = pytest.importorskip("boto3")
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    settings = {
        "S3_ENDPOINT_URL": endpoint,
        "S3_ACCESS_KEY_ID": "test",
        "S3_SECRET_ACCESS_KEY": "test",
        "S3_REGION": "us-east-1",
    }
    client = boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id="test",
        aws_secret_access_key="test",
        region_name="us-east-1",
    )
    client.create_bucket(Bucket="analytics")
    stack = sqlite_stack(tmp_path, GEOIP_DB=geoip_db, LAKE_URL="s3://analytics/store", **settings)
    yield stack, client
    server.stop()


def test_the_store_on_s3(s3_stack):
    from dash_app.panels import compute
    from server.stats.filters import Filters

    stack, client = s3_stack
    stack.config.LAKE_EXPORT_SECONDS = 3600
    key = stack.new_key()
    send(stack, key, 120)
    key_id = key_id_of(stack, key)
    flush()
    send(stack, key, 30, tag="hot")
    objects = client.list_objects_v2(Bucket="analytics", Prefix=f"store/k{key_id}/")
    assert objects["KeyCount"] >= 1
    now = datetime.now(UTC)
    assert compute(key_id, Filters(period="all"), now).summary["requests"] == 150
    response = stack.client.get("/api/data", headers={"X-AUTH-TOKEN": key})
    assert len(response.get_json()) == 150
    assert stack.client.delete("/api/data", headers={"X-AUTH-TOKEN": key}).status_code == 204
    objects = client.list_objects_v2(Bucket="analytics", Prefix=f"store/k{key_id}/")
    assert objects["KeyCount"] == 0


def test_the_engine_keeps_to_its_memory_limit(tmp_path):
    from server.lake import engine

    stack = sqlite_stack(tmp_path, ENGINE_MEMORY_MB=123, ENGINE_THREADS=1)
    with engine.cursor(stack.config) as cur:
        limit = cur.execute("SELECT current_setting('memory_limit')").fetchone()[0]
        threads = cur.execute("SELECT current_setting('threads')").fetchone()[0]
    number, unit = limit.split()
    assert unit == "MiB" and float(number) * 2**20 == pytest.approx(123e6, rel=0.01)
    assert int(threads) == 1


def rows_in_files(output: str) -> int:
    found = re.search(r"([\d,]+) rows,", output)
    return int(found.group(1).replace(",", "")) if found else 0


def test_the_lake_command_and_health_report_the_export(stack):
    stack.config.LAKE_EXPORT_SECONDS = 3600
    key = stack.new_key()
    send(stack, key, 25)
    runner = stack.app.test_cli_runner()
    status = runner.invoke(args=["lake", "status"])
    assert status.exit_code == 0, status.output
    assert "hot rows waiting for the export: 25" in status.output
    before = rows_in_files(status.output)
    health = stack.client.get("/api/health").get_json()
    assert health["unexported_rows"] == 25 and health["status"] == "ok"
    done = runner.invoke(args=["lake", "export"])
    assert done.exit_code == 0 and "exported 25 rows" in done.output, done.output
    status = runner.invoke(args=["lake", "status"])
    # the stack is shared: other tests' keys may already have files in the store
    assert rows_in_files(status.output) == before + 25, status.output
    assert "waiting for the export: 0" in status.output
    assert stack.client.get("/api/health").get_json()["unexported_rows"] == 0


def test_health_names_a_stalled_export(stack, monkeypatch):
    from server.api.health import routes

    stack.config.LAKE_EXPORT_SECONDS = 3600
    key = stack.new_key()
    send(stack, key, 5)
    monkeypatch.setattr(routes, "EXPORT_STALLED_SECONDS", -1)
    health = stack.client.get("/api/health").get_json()
    assert health["status"] == "degraded"
    assert any("waited" in p and "lake export" in p for p in health["problems"])


def test_rows_after_the_hot_table_was_trimmed_empty_are_read_and_exported(stack):
    """Ids must only grow: a new row's id at or below the export boundary would never be
    read or exported (SQLite reuses freed ids without AUTOINCREMENT)."""
    stack.config.LAKE_EXPORT_SECONDS = 3600
    stack.config.LAKE_GRACE_SECONDS = 0
    key = stack.new_key()
    key_id = key_id_of(stack, key)
    send(stack, key, 30)
    flush()
    trim_hot(stack.engine, stack.config)
    assert hot_count(stack, key_id) == 0
    other = stack.new_key()  # and a deleted key's rows: their ids are freed too
    send(stack, other, 10, tag="gone")
    assert stack.client.delete("/api/data", headers={"X-AUTH-TOKEN": other}).status_code == 204
    send(stack, key, 7, tag="after")
    assert len(stored_ids(key_id)) == 37
    flush()
    assert plain_file_count(stack, key_id) == 37


def test_day_spans_cover_every_day_once_in_order():
    from server.lake.pages import day_spans

    days = [(10, 5), (9, 1), (7, 4), (3, 9), (2, 1)]
    assert day_spans(days, 6) == [(10, 9), (7, 3), (2, 2)]
    assert day_spans(days, 1) == [(d, d) for d, _n in days]
    assert day_spans(days, 1000) == [(10, 2)]
    assert day_spans([], 5) == []
