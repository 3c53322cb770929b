"""A key's rows as one relation for the engine: its Parquet files plus its hot rows.

Every reader (dashboard panels, explorer, CSV export, data API) goes through `open_rows`,
so each sees all stored rows exactly once: the files of one catalog snapshot, and the
hot rows past that snapshot's boundary, copied once into a temporary table of the
reader's own engine connection.
"""

from __future__ import annotations

import contextlib
import itertools
import tempfile
from dataclasses import dataclass, field, replace

from server.config import current_config
from server.db import get_engine, is_postgres
from server.lake import catalog, engine, fair, layout
from server.lake.engine import sql_str
from server.lake.storage import get_storage

_names = itertools.count()


@dataclass
class KeyRows:
    """One reader's view of one key: `relation` is SQL usable after FROM."""

    cursor: object
    snapshot: catalog.Snapshot
    relation: str
    hot_table: str
    hot_rows: int
    storage: object = None
    dataset: layout.Dataset = layout.REQUESTS
    # Other datasets of the same key on the same connection: {name: relation SQL}, named
    # `{details}`, `{payloads}` in queries.
    also: dict = field(default_factory=dict)
    # Answers already found in this unit of work, for questions asked again of the same
    # rows (server.stats.breakdowns.user_ids); shared with the views `without` makes.
    notes: dict = field(default_factory=dict)

    def without(self, files) -> KeyRows:
        """The same view but for `files` (which a caller answers from their summaries)."""
        skip = {f.path for f in files}
        keep = [f for f in self.snapshot.files if f.path not in skip]
        return replace(self, relation=_relation(keep, self.hot_table, self.storage, self.dataset))

    def only(self, files) -> KeyRows:
        """The same reader over `files` alone (no hot rows)."""
        columns = self.dataset.lake_select_list()
        parquet = read_files([self.storage.url(f.path) for f in files], self.dataset)
        return replace(self, relation=f"(SELECT {columns} FROM {parquet})")

    def url(self, name: str) -> str:
        return self.storage.url(name)

    def query(self, sql: str, params=None):
        """Run `sql` (which names the rows `{rows}`, and any other dataset opened with them
        by its name) on the reader's connection."""
        sql = sql.replace("{rows}", self.relation)
        for name, relation in self.also.items():
            sql = sql.replace("{" + name + "}", relation)
        return self.cursor.execute(sql, params or [])

    def frame(self, sql: str, params=None):
        """The result of `sql` as a pandas DataFrame (aggregated results only)."""
        return self.query(sql, params).df()


def copy_hot_rows(
    cur, table: str, where: str, db=None, dataset: layout.Dataset = layout.REQUESTS
) -> int:
    """Copy the dataset's hot rows matching `where` into the temporary table `table` of
    the engine connection `cur`; return how many.

    `where` is plain SQL on integer columns, the same in every database. On PostgreSQL
    the engine reads the attached database. On SQLite the application's own SQLite
    writes the rows as JSON, which the engine reads: the engine's SQLite extension
    carries a second copy of SQLite, and two copies opening one file in one process
    undo each other's locks (SQLite's "How To Corrupt" page, section 2.2). One of them
    then resets the write-ahead log's index while the other has it mapped, and the
    process dies of a bus error under concurrent writes (tests/server/test_lake.py).
    """
    db = db or get_engine()
    if is_postgres(db):
        cur.execute(
            f"CREATE TEMP TABLE {table} AS SELECT {dataset.hot_select_list()} "
            f"FROM {engine.HOT_DB}.{dataset.table} WHERE {where}"
        )
        return cur.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
    # SQLite writes the rows as one JSON array (in C, no Python object a value) and the
    # engine's JSON reader types them: 2.5x faster than through a pandas frame.
    pairs = ", ".join(f"'{c.name}', {c.name}" for c in dataset.columns)
    with db.connect() as conn:
        text, count = conn.connection.driver_connection.execute(
            f"SELECT json_group_array(json_object({pairs})), count(*) FROM {dataset.table} "
            f"WHERE {where}"
        ).fetchone()
    types = ", ".join(f"{c.name}: '{_raw_type(c)}'" for c in dataset.columns)
    spill = engine.spill_dir(current_config())
    with tempfile.NamedTemporaryFile("w", dir=spill, suffix=".json", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        cur.execute(
            f"CREATE TEMP TABLE {table} AS SELECT {dataset.hot_select_list()} FROM "
            f"read_json({sql_str(f.name)}, format = 'array', columns = {{{types}}})"
        )
    return count


def _raw_type(column) -> str:
    """The engine type holding the hot table's raw value of `column`."""
    return "BIGINT" if column.from_hot else column.duck


def read_files(urls: list[str], dataset: layout.Dataset = layout.REQUESTS) -> str:
    """The files' rows as SQL usable after FROM. By name: files written before a column
    was added read it as NULL. An empty relation of the dataset's columns leads the
    union, so that holds even when no file has the column yet (union_by_name alone then
    fails to bind it); the engine still pushes filters into the files' scan."""
    listed = "[" + ", ".join(sql_str(u) for u in urls) + "]"
    typed = ", ".join(f"NULL::{c.duck} AS {c.name}" for c in dataset.columns)
    return (
        f"(SELECT {typed} WHERE false UNION ALL BY NAME "
        f"SELECT * FROM read_parquet({listed}, union_by_name = true))"
    )


def _relation(files, hot: str, storage, dataset: layout.Dataset = layout.REQUESTS) -> str:
    """The files' rows and the hot rows, as SQL usable after FROM."""
    if not files:
        return hot
    columns = dataset.lake_select_list()
    parquet = read_files([storage.url(f.path) for f in files], dataset)
    return f"(SELECT {columns} FROM {parquet} UNION ALL SELECT {columns} FROM {hot})"


@contextlib.contextmanager
def open_rows(
    key_id: int,
    since_us: int | None = None,
    until_us: int | None = None,
    settings=None,
    dataset: layout.Dataset = layout.REQUESTS,
    also: tuple[layout.Dataset, ...] = (),
):
    """The key's rows of `dataset` (those overlapping [since, until) at least), for one
    unit of work; `also` opens other datasets of the key on the same connection, for
    queries that join them (KeyRows.also). One turn of the key's (server.lake.fair): a
    key with too much engine work running and waiting gets EngineBusy."""
    storage = get_storage(settings)
    turns = fair.gate(settings or current_config())
    with turns.turn(key_id) as narrow, engine.cursor(settings, narrow=narrow) as cur:
        opened = []
        try:
            relations = {}
            for each in (dataset, *also):
                with get_engine().connect() as conn:
                    snap = catalog.snapshot(conn, key_id, since_us, until_us, each)
                hot = f"hot_rows_{next(_names)}"
                opened.append(hot)
                hot_rows = copy_hot_rows(
                    cur, hot, f"key_id = {int(key_id)} AND id > {int(snap.exported_id)}",
                    dataset=each,
                )  # fmt: skip
                relations[each.name] = (snap, _relation(snap.files, hot, storage, each), hot,
                                        hot_rows)  # fmt: skip
            snap, relation, hot, hot_rows = relations.pop(dataset.name)
            others = {name: found[1] for name, found in relations.items()}
            yield KeyRows(cur, snap, relation, hot, hot_rows, storage, dataset, others)
        finally:
            for hot in opened:
                with contextlib.suppress(Exception):
                    cur.execute(f"DROP TABLE IF EXISTS {hot}")
