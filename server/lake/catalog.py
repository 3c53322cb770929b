"""The columnar store's catalog, kept in the relational database: which files hold which
key's rows of which dataset (server.lake.layout.DATASETS), and up to which hot row id each
dataset is in files.

A reader takes one snapshot (one statement: the files and the boundary together); it
reads those files plus the hot rows past the boundary. Publishing files and moving the
boundary happen in one transaction, and what they replace stays readable for a grace
period, so a reader never misses or double-counts a row.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from sqlalchemy import and_, delete, func, insert, select, update

from server.db import is_postgres, utcnow, write_lock
from server.lake.layout import REQUESTS, Dataset
from server.lake.models import HOT_TABLES, lake_exports, lake_files, lake_state
from server.models import api_keys

STATE_ID = REQUESTS.state_id


@dataclass(frozen=True)
class LakeFile:
    id: int | None
    key_id: int
    month: int
    path: str
    rows: int
    bytes: int
    min_us: int
    max_us: int
    hostnames: tuple[str, ...] = ()
    summary: str | None = None  # its summary's name (server.lake.summaries), if it has one
    dataset: str = REQUESTS.name

    @property
    def names(self) -> list[str]:
        """Every stored object of the file: itself and its summary."""
        return [self.path, *([self.summary] if self.summary else [])]


@dataclass(frozen=True)
class Snapshot:
    """What one reader sees of one key: these files, plus hot rows with id > exported_id."""

    key_id: int
    files: tuple[LakeFile, ...]
    exported_id: int

    @property
    def rows_in_files(self) -> int:
        return sum(f.rows for f in self.files)


FILE_COLUMNS = (
    lake_files.c.id,
    lake_files.c.key_id,
    lake_files.c.month,
    lake_files.c.path,
    lake_files.c.rows,
    lake_files.c.bytes,
    lake_files.c.min_us,
    lake_files.c.max_us,
    lake_files.c.hostnames,
    lake_files.c.summary,
    lake_files.c.dataset,
)
MAX_HOSTNAMES = 1000  # a file's menu entries kept (a bot scanning hostnames stays bounded)


def _as_file(row) -> LakeFile:
    return LakeFile(*row[:-3], tuple(json.loads(row[-3] or "[]")), row[-2], row[-1])


def snapshot(
    conn,
    key_id: int,
    since_us: int | None = None,
    until_us: int | None = None,
    dataset: Dataset = REQUESTS,
):
    """The key's live files of `dataset` overlapping [since, until) and the dataset's
    boundary, in one statement."""
    f = lake_files.c
    on = [f.key_id == key_id, f.retired_at.is_(None), f.dataset == dataset.name]
    if since_us is not None:
        on.append(f.max_us >= since_us)
    if until_us is not None:
        on.append(f.min_us < until_us)
    query = (
        select(lake_state.c.exported_id, *FILE_COLUMNS)
        .select_from(lake_state.outerjoin(lake_files, and_(*on)))
        .where(lake_state.c.id == dataset.state_id)
        .order_by(f.min_us, f.id)
    )
    rows = conn.execute(query).all()
    if not rows:  # a database the export has never touched
        return Snapshot(key_id, (), 0)
    files = tuple(_as_file(r[1:]) for r in rows if r[1] is not None)
    return Snapshot(key_id, files, int(rows[0][0]))


def ensure_state(conn, dataset: Dataset = REQUESTS) -> int:
    """The dataset's current boundary, creating its state row on first use."""
    found = conn.execute(
        select(lake_state.c.exported_id).where(lake_state.c.id == dataset.state_id)
    ).scalar()
    if found is None:
        conn.execute(insert(lake_state).values(id=dataset.state_id, exported_id=0))
        return 0
    return int(found)


def exported_id(conn, dataset: Dataset = REQUESTS) -> int:
    found = conn.execute(
        select(lake_state.c.exported_id).where(lake_state.c.id == dataset.state_id)
    ).scalar()
    return int(found or 0)


def pending(conn, boundary: int, dataset: Dataset = REQUESTS) -> tuple[int, int | None]:
    """(hot rows past the boundary, the oldest one's id) - what an export would take."""
    r = HOT_TABLES[dataset.name].c
    count, oldest = conn.execute(select(func.count(), func.min(r.id)).where(r.id > boundary)).one()
    return int(count), oldest


def live_keys(conn, key_ids) -> set[int]:
    """The keys among `key_ids` that still exist, locked against deletion until commit.

    DELETE /api/data deletes the key row first, so it waits for a publishing transaction
    holding this lock and then deletes what that transaction published.
    """
    key_ids = sorted(set(key_ids))
    if not key_ids:
        return set()
    query = select(api_keys.c.id).where(api_keys.c.id.in_(key_ids))
    if is_postgres(conn):
        query = query.with_for_update(key_share=True)
    return set(conn.execute(query).scalars())


def publish(
    conn,
    files: list[LakeFile],
    *,
    boundary: int | None = None,
    retire=(),
    dataset: Dataset = REQUESTS,
) -> list[int]:
    """Add files (and retire the ones they replace) and move `dataset`'s boundary, in the
    caller's transaction; returns the new files' ids."""
    now = utcnow()
    ids = []
    for file in files:
        values = {k: getattr(file, k) for k in ("key_id", "month", "path", "rows", "bytes")}
        hosts = sorted(file.hostnames)[:MAX_HOSTNAMES]
        values.update(
            min_us=file.min_us,
            max_us=file.max_us,
            created_at=now,
            hostnames=json.dumps(hosts),
            summary=file.summary,
            dataset=file.dataset,
        )
        ids.append(conn.execute(insert(lake_files).values(**values)).inserted_primary_key[0])
    retire = list(retire)
    if retire:
        conn.execute(
            update(lake_files)
            .where(lake_files.c.id.in_(retire), lake_files.c.retired_at.is_(None))
            .values(retired_at=now)
        )
    if boundary is not None:
        conn.execute(
            update(lake_state)
            .where(lake_state.c.id == dataset.state_id)
            .values(exported_id=boundary)
        )
        conn.execute(
            insert(lake_exports).values(dataset=dataset.name, boundary=boundary, committed_at=now)
        )
    return ids


def live_ids(conn, file_ids) -> set[int]:
    """The files among `file_ids` still live (not retired, not deleted with their key)."""
    file_ids = list(file_ids)
    if not file_ids:
        return set()
    query = select(lake_files.c.id).where(
        lake_files.c.id.in_(file_ids), lake_files.c.retired_at.is_(None)
    )
    return set(conn.execute(query).scalars())


def retired_before(conn, moment) -> list[LakeFile]:
    query = select(*FILE_COLUMNS).where(lake_files.c.retired_at < moment)
    return [_as_file(r) for r in conn.execute(query)]


def forget(conn, file_ids) -> None:
    file_ids = list(file_ids)
    if file_ids:
        conn.execute(delete(lake_files).where(lake_files.c.id.in_(file_ids)))


def key_files(conn, key_id: int) -> list[LakeFile]:
    """Every file of a key, live or retired."""
    query = select(*FILE_COLUMNS).where(lake_files.c.key_id == key_id)
    return [_as_file(r) for r in conn.execute(query)]


def live_files(
    conn, key_id: int | None = None, month: int | None = None, dataset: Dataset | None = None
) -> list[LakeFile]:
    """Live files of one key, month or dataset (None: of any)."""
    f = lake_files.c
    conds = [f.retired_at.is_(None)]
    if dataset is not None:
        conds.append(f.dataset == dataset.name)
    if key_id is not None:
        conds.append(f.key_id == key_id)
    if month is not None:
        conds.append(f.month == month)
    query = select(*FILE_COLUMNS).where(*conds).order_by(f.key_id, f.month, f.min_us, f.id)
    return [_as_file(r) for r in conn.execute(query)]


def known_paths(conn) -> set[str]:
    """Every stored object the catalog names: files and their summaries."""
    found = set()
    for path, summary in conn.execute(select(lake_files.c.path, lake_files.c.summary)):
        found.add(path)
        if summary:
            found.add(summary)
    return found


def trimmable_boundary(conn, before, dataset: Dataset = REQUESTS) -> int | None:
    """The dataset's newest boundary published before `before`: hot rows up to it can go."""
    e = lake_exports.c
    return conn.execute(
        select(func.max(e.boundary)).where(e.committed_at < before, e.dataset == dataset.name)
    ).scalar()


def forget_boundaries(conn, upto: int, dataset: Dataset = REQUESTS) -> None:
    e = lake_exports.c
    conn.execute(delete(lake_exports).where(e.boundary < upto, e.dataset == dataset.name))


def storage_bytes(conn, key_id: int | None = None, dataset: Dataset = REQUESTS) -> tuple[int, int]:
    """(rows, bytes) in the dataset's live files, for one key or all."""
    f = lake_files.c
    query = select(func.coalesce(func.sum(f.rows), 0), func.coalesce(func.sum(f.bytes), 0))
    query = query.where(f.retired_at.is_(None), f.dataset == dataset.name)
    if key_id is not None:
        query = query.where(f.key_id == key_id)
    rows, size = conn.execute(query).one()
    return int(rows), int(size)


def publish_files(
    db, storage, files: list[LakeFile], *, boundary=None, retire=(), dataset: Dataset = REQUESTS
) -> list[LakeFile]:
    """Catalog the files (those of keys still alive) and move the boundary, atomically.

    Files of a key deleted meanwhile are removed from storage instead.
    """
    retire = list(retire)
    with db.begin() as conn:
        if not is_postgres(conn):
            write_lock(conn)
        alive = live_keys(conn, [f.key_id for f in files])
        kept = [f for f in files if f.key_id in alive]
        if retire:
            still = live_ids(conn, [f.id for f in retire])
            if len(still) != len(retire):  # a key deletion or retention got there first
                kept = []
                retire = []
        publish(conn, kept, boundary=boundary, retire=[f.id for f in retire], dataset=dataset)
    dropped = [name for f in files if f not in kept for name in f.names]
    if dropped:
        storage.delete(dropped)
    return kept
