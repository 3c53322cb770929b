"""The request row layout, named once: the hot table's columns, the Parquet files' columns,
and how one becomes the other."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import BigInteger, Boolean, Integer, SmallInteger, String, Text


@dataclass(frozen=True)
class Column:
    name: str
    duck: str  # the type in the engine (DuckDB) and in the Parquet files
    hot: object  # the SQLAlchemy type of the hot table's column
    # How the engine reads the hot table's value (PostgreSQL and SQLite alike), when the
    # hot table stores it differently from the files.
    from_hot: str | None = None


COLUMNS: tuple[Column, ...] = (
    Column("id", "BIGINT", BigInteger),
    Column("key_id", "INTEGER", Integer),
    # The hot table keeps epoch microseconds: the same integer on both backends, and
    # cheaper for PostgreSQL to COPY than a timestamp to parse.
    Column("created_at", "TIMESTAMPTZ", BigInteger, "make_timestamp(created_at)::TIMESTAMPTZ"),
    # Epoch hours: panels group by time through one integer column (5x cheaper than
    # truncating timestamps in every query, bench/README.md).
    Column("hour", "INTEGER", Integer),
    Column("hostname", "VARCHAR", String(255)),
    Column("method", "VARCHAR", String(7)),
    Column("path", "VARCHAR", String(255)),
    # The path's template (server.rules.template_path) and API version, computed once
    # when the row is enriched.
    Column("endpoint", "VARCHAR", String(255)),
    # "METHOD endpoint": the endpoints panel groups by this one column, four times
    # cheaper for the engine than by method and endpoint (bench/README.md).
    Column("route", "VARCHAR", String(263)),
    Column("version", "VARCHAR", String(16)),
    Column("status", "SMALLINT", SmallInteger),
    Column("response_time", "INTEGER", Integer),
    Column("ip_address", "VARCHAR", String(45)),
    Column("location", "VARCHAR", String(2)),
    Column("user_id", "VARCHAR", String(255)),
    # The user's number (server.lake.users: the key_users row of its IP, else its user
    # id); NULL without either.
    Column("ux", "BIGINT", BigInteger),
    Column("user_agent", "VARCHAR", Text),
    Column("browser", "VARCHAR", String(64)),
    Column("os", "VARCHAR", String(64)),
    Column("device", "VARCHAR", String(16)),
    # SQLite hands booleans back as integers.
    Column("bot", "BOOLEAN", Boolean, "bot::BOOLEAN"),
    Column("framework", "VARCHAR", String(64)),
)

NAMES = tuple(c.name for c in COLUMNS)
# What a writer supplies for each row, in this order (the hot table assigns the id).
WRITE_NAMES = NAMES[1:]
BY_NAME = {c.name: c for c in COLUMNS}

# The order of rows inside a file. The export writes each file in time order; compaction
# merges the current month's files by putting their rows one file after another, oldest
# file first, without sorting again (rows arrive about in time order, so the result stays
# about in time order: row groups still cover short spans). Sorting cost a merge 4.3
# microseconds of CPU a row against 1.2 without (bench/compaction.py), and compaction a
# sixth of the two cores under sustained ingest. A closed month's file is final until
# retention, and is sorted by week, then route, then time: each row group
# (worker.export.ROW_GROUP_ROWS) holds a week of a few endpoints, so an endpoint click
# skips most row groups by their route statistics (bench/README.md), while a time range
# (a data API page, a CSV chunk) still skips every row group outside its weeks.
TIME_ORDER = "created_at, id"
CLOSED_ORDER = "hour // 168, route, created_at, id"


def row_order(closed: bool) -> str:
    """ORDER BY for a file's rows: `closed` for a closed month's final file."""
    return CLOSED_ORDER if closed else TIME_ORDER


def hot_select_list() -> str:
    """The hot table's columns as the engine reads them, named as in the files."""
    return ", ".join(f"{c.from_hot} AS {c.name}" if c.from_hot else c.name for c in COLUMNS)


def lake_select_list() -> str:
    return ", ".join(NAMES)
