"""Database engine, metadata and the small dialect differences between PostgreSQL and SQLite."""

from __future__ import annotations

import contextlib
import logging
from datetime import UTC, datetime

from sqlalchemy import BigInteger, Integer, MetaData, String, create_engine, event
from sqlalchemy.dialects.postgresql import INET
from sqlalchemy.engine import Engine
from sqlalchemy.pool import NullPool

log = logging.getLogger(__name__)

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}
metadata = MetaData(naming_convention=NAMING_CONVENTION)

# SQLite only auto-increments INTEGER PRIMARY KEY, so big ids fall back to Integer there.
BigId = BigInteger().with_variant(Integer, "sqlite")
IpAddress = String(45).with_variant(INET(), "postgresql")

_engine: Engine | None = None


def make_engine(url: str, *, pooled: bool = True) -> Engine:
    """Create an engine with the settings each backend needs."""
    pooling = {} if pooled else {"poolclass": NullPool}
    if url.startswith("sqlite"):
        engine = create_engine(
            url, connect_args={"timeout": 30, "check_same_thread": False}, **pooling
        )
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    if pooled:
        pooling = {"pool_pre_ping": True, "pool_size": 5, "max_overflow": 10}
    # No automatic prepared statements: after a few runs PostgreSQL may switch a prepared
    # query to a generic plan, blind to the key's size, so a plan that suits a key with a
    # few rows serves one with millions; planning afresh costs far less than that.
    return create_engine(
        url,
        connect_args={"prepare_threshold": None, "options": "-c timezone=UTC"},
        **pooling,
    )


def _sqlite_pragmas(dbapi_connection, _record) -> None:
    cursor = dbapi_connection.cursor()
    # WAL lets the dashboard read while the in-process worker writes.
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


def init_engine(url: str) -> Engine:
    """Bind the process-wide engine (called by create_app and the worker entry)."""
    global _engine
    if _engine is not None and str(_engine.url) == url:
        return _engine
    if _engine is not None:
        _engine.dispose()
    _engine = make_engine(url)
    return _engine


def get_engine() -> Engine:
    """The bound engine; a job run by a bare `rq worker` binds one from the environment."""
    if _engine is None:
        from server.config import Config

        init_engine(Config.from_env().DATABASE_URL)
    return _engine


def utcnow() -> datetime:
    return datetime.now(UTC)


def as_utc(value: datetime | None) -> datetime | None:
    """SQLite hands back naive datetimes; everything we store is UTC."""
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=UTC)


def is_postgres(engine_or_conn) -> bool:
    return engine_or_conn.dialect.name == "postgresql"


def dialect_insert(conn, table):
    """An INSERT with the connection's dialect's ON CONFLICT clauses."""
    if is_postgres(conn):
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    return insert(table)


def insert_ignoring_conflicts(conn, table, index_elements):
    """INSERT ... ON CONFLICT DO NOTHING, in the connection's dialect."""
    return dialect_insert(conn, table).on_conflict_do_nothing(index_elements=index_elements)


def relax_commit(conn) -> None:
    """Let this transaction's commit return before its WAL reaches the disk (PostgreSQL).

    Only for work that is redone if lost: a crash forgets the last such commits whole,
    e.g. an enrichment transaction and the deletion of the staged batch it processed, so
    the batch is simply processed again. Saves a disk flush per transaction.
    """
    if is_postgres(conn):
        conn.exec_driver_sql("SET LOCAL synchronous_commit TO off")


@contextlib.contextmanager
def copy_into(conn, table: str, columns):
    """A COPY into `table` on the connection's current transaction (PostgreSQL): yields
    psycopg's Copy, whose write_row formats each row in C (measured here, that beat
    formatting COPY text in Python). The server stores rows as they stream in; leaving
    the block waits for it to finish."""
    cursor = conn.connection.dbapi_connection.cursor()
    with cursor.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
        yield copy


def copy_rows(conn, table: str, columns, rows) -> None:
    """COPY rows into `table` on the connection's current transaction (PostgreSQL)."""
    with copy_into(conn, table, columns) as copy:
        for row in rows:
            copy.write_row(row)


def write_lock(conn) -> None:
    """SQLite: take the database's write lock now (a write statement that changes
    nothing), so what this transaction reads next cannot change before it commits."""
    if not is_postgres(conn):
        conn.exec_driver_sql("DELETE FROM lake_state WHERE id < 0")
