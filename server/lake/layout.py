"""The request row layout, named once: the hot table's columns, the Parquet files' columns,
how one becomes the other, and how a writer builds rows by column name."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from itertools import repeat
from operator import floordiv

from sqlalchemy import BigInteger, Boolean, Integer, SmallInteger, String, Text

from server.rules import api_version, epoch_micros, template_path


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
    # Who called (docs/capture.md): the consumer's id, and its group when the row came.
    Column("consumer", "VARCHAR", String(255)),
    Column("consumer_group", "VARCHAR", String(100)),
    # The error group of the row's exception (server.ingest.errors), if it had one.
    Column("error_group", "BIGINT", BigInteger),
    # The id of the row's details and payloads (the other datasets below), if it has any.
    Column("detail", "BIGINT", BigInteger),
    # The service that answered and its release: an OpenTelemetry resource's service.name
    # and service.version (server.ingest.otlp); NULL for rows from the JSON clients.
    Column("service", "VARCHAR", String(255)),
    Column("release", "VARCHAR", String(100)),
)

NAMES = tuple(c.name for c in COLUMNS)
# What a writer supplies for each row, in this order (the hot table assigns the id).
WRITE_NAMES = NAMES[1:]
BY_NAME = {c.name: c for c in COLUMNS}
# The columns computed from others when a row is written (server.rules).
DERIVED = ("hour", "endpoint", "route", "version")
# Columns a writer may leave out: NULL on every row it writes.
OPTIONAL = ("service", "release")
# What a writer gives: every written column but the derived and optional ones; created_at
# in epoch microseconds (the hot table's form).
GIVEN = tuple(name for name in WRITE_NAMES if name not in DERIVED and name not in OPTIONAL)
HOUR_MICROS = 3_600_000_000


def stored_rows(given: Mapping[str, Iterable]) -> list[tuple]:
    """Rows ready to write (WRITE_NAMES order), zipped from one column per GIVEN name (a
    value that is the same on every row may be given as itertools.repeat), and OPTIONAL
    ones if any. The derived columns are computed here, a column at a time: a call per
    row cost a fifth of the enrichment (bench/README.md). An `endpoint` column, if given,
    is each row's template as its framework named it (an OpenTelemetry span's http.route),
    None where the path's template (server.rules.template_path) is to be used."""
    missing = set(GIVEN) - given.keys()
    if missing:
        raise ValueError(f"stored_rows needs the columns {sorted(missing)}")
    micros, paths, methods = list(given["created_at"]), list(given["path"]), list(given["method"])
    endpoints = list(map(template_path, paths))
    if given.get("endpoint") is not None:
        named = zip(given["endpoint"], endpoints, strict=True)
        endpoints = [given_one if given_one is not None else e for given_one, e in named]
    columns = {
        **dict.fromkeys(OPTIONAL, repeat(None)),
        **given,
        "created_at": micros,
        "path": paths,
        "method": methods,
        "hour": map(floordiv, micros, repeat(HOUR_MICROS)),
        "endpoint": endpoints,
        "route": [f"{m} {e}" for m, e in zip(methods, endpoints, strict=True)],
        "version": map(api_version, paths),
    }
    # strict=False: a constant column is itertools.repeat, as long as the others allow.
    return list(zip(*(columns[name] for name in WRITE_NAMES), strict=False))


def stored_row(**given) -> tuple:
    """One row ready to write, by name (stored_rows of one): created_at a datetime, ISO
    text or epoch microseconds; a column not named is empty (bot: false); `endpoint`, if
    named, as stored_rows takes it."""
    created = given.get("created_at")
    if created is not None and not isinstance(created, int):
        given["created_at"] = epoch_micros(created)
    names = GIVEN + OPTIONAL + (("endpoint",) if "endpoint" in given else ())
    values = {name: None for name in names} | {"bot": False} | given
    return stored_rows({name: [values[name]] for name in names})[0]


# The order of rows inside a file. The export writes each file in time order; compaction
# merges the current month's files by putting their rows one file after another, oldest
# file first, without sorting again (rows arrive about in time order, so the result stays
# about in time order: row groups still cover short spans). Sorting cost a merge 4.3
# microseconds of CPU a row against 1.2 without (bench/compaction.py), and compaction a
# sixth of the two cores under sustained ingest. A closed month's file is final until
# retention, and is sorted by week, then user, then route, then time: each row group
# (ROW_GROUP_ROWS) holds a week of a range of users, so a click on a user skips most row
# groups by their user-number statistics and reads its rows in the rest as a few runs,
# while a time range (a data API page, a CSV chunk) still skips every row group outside
# its weeks. At 100 M rows the user click took 0.567 s against 1.834 s in the earlier
# week-then-route order (bench/README.md, "Issue 34: closed months in user order"); an
# endpoint click, alone or with a status, reads the summaries' endpoint family, but an
# endpoint with a country or a client now reads every row of the closed months it spans
# (2-3x slower than by route, measured on one closed month's rows).
TIME_ORDER = "created_at, id"
CLOSED_ORDER = "hour // 168, ux, route, created_at, id"


def row_order(closed: bool) -> str:
    """ORDER BY for a file's rows: `closed` for a closed month's final file."""
    return CLOSED_ORDER if closed else TIME_ORDER


# How every file is written.
ROW_GROUP_ROWS = 250_000
PARQUET_OPTIONS = f"FORMAT parquet, COMPRESSION zstd, ROW_GROUP_SIZE {ROW_GROUP_ROWS}"
# A file holds one key's rows of one UTC month (YYYYMM).
MONTH_SQL = "(year(created_at) * 100 + month(created_at))"
# A file's hostnames, for the catalog (the hostname menu reads them there).
# A group of rows none of which names a hostname (an OpenTelemetry span without
# server.address) has the empty list, not NULL.
HOSTNAMES_SQL = "coalesce(list_sort(list(DISTINCT hostname) FILTER (WHERE hostname <> '')), [])"


def hot_select_list(columns: tuple[Column, ...] = COLUMNS) -> str:
    """The hot table's columns as the engine reads them, named as in the files."""
    return ", ".join(f"{c.from_hot} AS {c.name}" if c.from_hot else c.name for c in columns)


def lake_select_list(columns: tuple[Column, ...] = COLUMNS) -> str:
    return ", ".join(c.name for c in columns)


# --- the datasets ------------------------------------------------------------------------
# A request's exception and validation errors (its details) and its captured headers and
# bodies (its payloads) live apart from the request rows, in datasets of their own (hot
# table, files, catalog rows, retention), linked by the row's `detail` id: a request
# without them stays as lean as before.
_HEAD = (
    Column("id", "BIGINT", BigInteger),
    Column("key_id", "INTEGER", Integer),
    Column("created_at", "TIMESTAMPTZ", BigInteger, "make_timestamp(created_at)::TIMESTAMPTZ"),
    Column("hour", "INTEGER", Integer),
    Column("detail", "BIGINT", BigInteger),
)
DETAIL_COLUMNS: tuple[Column, ...] = (
    *_HEAD,
    Column("route", "VARCHAR", String(263)),
    Column("status", "SMALLINT", SmallInteger),
    Column("error_group", "BIGINT", BigInteger),
    Column("exception_type", "VARCHAR", String(255)),
    Column("exception_message", "VARCHAR", Text),
    # JSON texts: [[file, line, function, in_app], ...] and [[location, type], ...].
    Column("stack", "VARCHAR", Text),
    Column("validation", "VARCHAR", Text),
)
PAYLOAD_COLUMNS: tuple[Column, ...] = (
    *_HEAD,
    # JSON texts of the masked captures (docs/capture.md).
    Column("request", "VARCHAR", Text),
    Column("response", "VARCHAR", Text),
)


@dataclass(frozen=True)
class Dataset:
    """One kind of stored row: its hot table, its columns, its files' folder under the
    key's prefix, and its row of the export's state (server.lake.catalog)."""

    name: str
    table: str
    columns: tuple[Column, ...]
    state_id: int
    folder: str

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns)

    @property
    def write_names(self) -> tuple[str, ...]:
        """What a writer supplies, in this order (the hot table assigns the id)."""
        return self.names[1:]

    def hot_select_list(self) -> str:
        return hot_select_list(self.columns)

    def lake_select_list(self) -> str:
        return lake_select_list(self.columns)


REQUESTS = Dataset("requests", "requests", COLUMNS, 1, "")
DETAILS = Dataset("details", "request_details", DETAIL_COLUMNS, 2, "details/")
PAYLOADS = Dataset("payloads", "request_payloads", PAYLOAD_COLUMNS, 3, "payloads/")
DATASETS = (REQUESTS, DETAILS, PAYLOADS)
BY_DATASET = {d.name: d for d in DATASETS}
