"""The in-process analytical engine (DuckDB): one database per process, a cursor per use.

It reads the columnar store's Parquet files (a local directory or S3) and, on PostgreSQL,
the hot table (attached read-only); SQLite's hot rows reach it through
`server.lake.source.copy_hot_rows`. So a query sees every stored row. Extensions come
from the `duckdb-extension-*` packages pinned with DuckDB itself: nothing is downloaded
at run time.
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import os
import threading
from pathlib import Path

from sqlalchemy.engine import make_url

log = logging.getLogger(__name__)

HOT_DB = "hotdb"  # the attached relational database, as the engine names it

_lock = threading.Lock()
_state: dict = {"pid": None, "db": None, "narrow": None, "signature": None}


class EngineError(RuntimeError):
    """The engine cannot start with these settings (a missing extension, a bad URL)."""


def extension_path(name: str) -> str:
    """The extension binary shipped in the `duckdb-extension-<name>` wheel."""
    module = f"duckdb_extension_{name}"
    try:
        package = importlib.import_module(module)
    except ImportError as exc:
        raise EngineError(
            f"DuckDB extension {name!r} is missing: pip install duckdb-extension-"
            f"{name.replace('_', '-')} (the version of duckdb itself)"
        ) from exc
    found = sorted(Path(package.__path__[0]).rglob(f"{name}.duckdb_extension"))
    if not found:
        raise EngineError(f"the package {module} holds no {name}.duckdb_extension file")
    return str(found[0])


def libpq_dsn(database_url: str) -> str:
    """A libpq keyword string for a SQLAlchemy PostgreSQL URL."""
    url = make_url(database_url)
    parts = {
        "host": url.host or "localhost",
        "port": url.port or 5432,
        "dbname": url.database,
        "user": url.username,
        "password": url.password,
    }
    parts.update({k: v for k, v in url.query.items() if isinstance(v, str)})

    def quote(value) -> str:
        text = str(value).replace("\\", "\\\\").replace("'", "\\'")
        return f"'{text}'"

    return " ".join(f"{k}={quote(v)}" for k, v in parts.items() if v not in (None, ""))


def sql_str(value) -> str:
    """A string literal for engine SQL."""
    return "'" + str(value).replace("'", "''") + "'"


def spill_dir(settings) -> Path:
    """The engine's scratch directory (spilled sorts, the SQLite hot rows' JSON), made."""
    spill = Path(settings.DATA_DIR) / "engine-tmp"
    spill.mkdir(parents=True, exist_ok=True)
    return spill


def _open(settings, *, threads: int | None = None, hot: bool = True):
    import duckdb

    config = {
        "threads": threads or settings.ENGINE_THREADS or os.cpu_count() or 2,
        "memory_limit": f"{settings.ENGINE_MEMORY_MB}MB",
        # Everything the engine needs is loaded below, from installed packages.
        "autoinstall_known_extensions": False,
        "autoload_known_extensions": False,
    }
    db = duckdb.connect(":memory:", config=config)
    db.execute("SET enable_progress_bar = false")
    db.execute("SET TimeZone = 'UTC'")
    # Files never change once written (compaction writes new ones), so their footers
    # can be cached across queries.
    db.execute("SET parquet_metadata_cache = true")
    db.execute(f"SET temp_directory = {sql_str(str(spill_dir(settings)))}")
    if hot and settings.is_postgres:
        db.execute(f"LOAD {sql_str(extension_path('postgres_scanner'))}")
        dsn = libpq_dsn(settings.DATABASE_URL)
        db.execute(f"ATTACH {sql_str(dsn)} AS {HOT_DB} (TYPE postgres, READ_ONLY)")
    if settings.LAKE_URL.startswith("s3://"):
        db.execute(f"LOAD {sql_str(extension_path('httpfs'))}")
        db.execute(_s3_secret(settings))
    return db


def _s3_secret(settings) -> str:
    """A DuckDB secret for the configured S3 (or S3-compatible) endpoint."""
    parts = [
        "TYPE s3",
        f"KEY_ID {sql_str(settings.S3_ACCESS_KEY_ID)}",
        f"SECRET {sql_str(settings.S3_SECRET_ACCESS_KEY)}",
        f"REGION {sql_str(settings.S3_REGION)}",
    ]
    if settings.S3_ENDPOINT_URL:
        endpoint = make_url_parts(settings.S3_ENDPOINT_URL)
        parts += [
            f"ENDPOINT {sql_str(endpoint['host'])}",
            f"USE_SSL {'true' if endpoint['ssl'] else 'false'}",
            "URL_STYLE 'path'",
        ]
    return f"CREATE OR REPLACE SECRET lake_s3 ({', '.join(parts)})"


def make_url_parts(endpoint_url: str) -> dict:
    """'http://127.0.0.1:9000' -> {'host': '127.0.0.1:9000', 'ssl': False}."""
    scheme, _, rest = endpoint_url.partition("://")
    if not rest:
        scheme, rest = "https", endpoint_url
    return {"host": rest.rstrip("/"), "ssl": scheme == "https"}


def _signature(settings) -> tuple:
    return (
        settings.DATABASE_URL,
        settings.LAKE_URL,
        settings.ENGINE_MEMORY_MB,
        settings.ENGINE_THREADS,
        settings.S3_ENDPOINT_URL,
    )


def database(settings=None, *, narrow: bool = False):
    """This process's engine, opened on first use (and again in a forked child); `narrow`:
    its one-thread twin, for a key that keeps the engine busy while others wait for it
    (server.lake.fair), so that key's query takes one core and leaves the rest."""
    from server.config import current_config

    settings = settings or current_config()
    signature = _signature(settings)
    with _lock:
        if _state["db"] is None or _state["pid"] != os.getpid() or _state["signature"] != signature:
            _close_all()
            _state.update(db=_open(settings), pid=os.getpid(), signature=signature)
        if not narrow:
            return _state["db"]
        if _state["narrow"] is None:
            _state["narrow"] = _open(settings, threads=1)
        return _state["narrow"]


def _close_all() -> None:
    """This process's databases, closed (under _lock); a forked child's are its parent's."""
    if _state["pid"] == os.getpid():
        for name in ("db", "narrow"):
            if _state[name] is not None:
                with contextlib.suppress(Exception):
                    _state[name].close()
    _state.update(db=None, narrow=None, pid=None, signature=None)


@contextlib.contextmanager
def cursor(settings=None, *, narrow: bool = False):
    """A connection to this process's engine for one unit of work (one thread)."""
    cur = database(settings, narrow=narrow).cursor()
    try:
        yield cur
    finally:
        cur.close()


@contextlib.contextmanager
def streaming_cursor(settings=None):
    """A database of its own with one thread, for copying files' rows in order into a new
    file (compaction's merges), closed after use.

    One thread reads the files one after another and writes as it reads, in bounded
    memory. With two, the engine held rows back to keep their order: merging 4 M rows
    took 455 MB and ran out of memory at the 256 MB limit, and cost nearly twice the CPU
    (9.8 s against 5.4 s, bench/compaction.py). It sees the store, not the hot table.
    """
    from server.config import current_config

    db = _open(settings or current_config(), threads=1, hot=False)
    try:
        yield db.cursor()
    finally:
        db.close()


def close() -> None:
    """Close this process's engine (tests switching databases, shutdown)."""
    with _lock:
        _close_all()
