"""Shared fixtures: real PostgreSQL, a private real Redis, real RQ workers, and SQLite.

On a bare machine the PostgreSQL/Redis tests are skipped (and named in the
summary); with CI=true a missing service is a failure instead.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}
PG_ADMIN_URL = os.environ.get(
    "TEST_PG_ADMIN_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)
ROOT = Path(__file__).resolve().parent.parent


def unavailable(what: str, why: str):
    """Skip on a bare machine; fail under CI, where every service must be present."""
    if IN_CI:
        pytest.fail(f"{what} is required when CI=true, but: {why}", pytrace=False)
    pytest.skip(f"{what} not available: {why}")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# --- PostgreSQL ---------------------------------------------------------------------------


def _admin_engine():
    return create_engine(
        PG_ADMIN_URL, isolation_level="AUTOCOMMIT", connect_args={"connect_timeout": 3}
    )


def create_pg_database(prefix: str = "apia_test") -> str:
    """A new empty database with a unique name; returns its URL (raises if PG is down)."""
    name = f"{prefix}_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    engine = _admin_engine()
    with engine.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    engine.dispose()
    return make_url(PG_ADMIN_URL).set(database=name).render_as_string(hide_password=False)


def drop_pg_database(url: str) -> None:
    from server.db import get_engine

    with contextlib.suppress(Exception):
        get_engine().dispose()
    name = make_url(url).database
    engine = _admin_engine()
    with engine.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    engine.dispose()


@pytest.fixture(scope="session")
def pg_url():
    """A fresh, migrated PostgreSQL database for this test session."""
    try:
        url = create_pg_database()
    except Exception as exc:
        unavailable("PostgreSQL", f"{PG_ADMIN_URL}: {type(exc).__name__}: {exc}")
    from server.cli import upgrade_database

    upgrade_database(url)
    yield url
    drop_pg_database(url)


# --- Redis --------------------------------------------------------------------------------


@dataclass
class RedisServer:
    """A private redis-server on a free port, so tests can stop and restart it."""

    port: int
    workdir: Path
    process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.process = subprocess.Popen(
            [
                shutil.which("redis-server"),
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.workdir),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with (
                contextlib.suppress(OSError),
                socket.create_connection(("127.0.0.1", self.port), 0.2),
            ):
                return
            time.sleep(0.05)
        raise RuntimeError("redis-server did not start")

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(10)


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory):
    if not shutil.which("redis-server"):
        unavailable("Redis", "no redis-server binary on PATH")
    server = RedisServer(free_port(), tmp_path_factory.mktemp("redis"))
    try:
        server.start()
    except Exception as exc:
        unavailable("Redis", str(exc))
    yield server
    server.stop()


@pytest.fixture
def redis_url(redis_server):
    """The private Redis, emptied before each test (restarted if a test stopped it)."""
    from redis import Redis

    if redis_server.process is None or redis_server.process.poll() is not None:
        redis_server.start()
    Redis.from_url(redis_server.url).flushall()
    return redis_server.url


# --- GeoIP --------------------------------------------------------------------------------

GEO_NETWORKS = {"8.8.8.0/24": "US", "81.2.69.0/24": "GB", "2001:db8::/32": "DE", "5.1.0.0/16": "FR"}


def write_mmdb(path: Path, *, flavour: str) -> Path:
    """A tiny country database: 'geolite' (country.iso_code) or 'cc0' ({"country_code"})."""
    from mmdb_writer import MMDBWriter
    from netaddr import IPSet

    kind = "GeoLite2-Country" if flavour == "geolite" else "geo-whois-asn-country"
    writer = MMDBWriter(ip_version=6, ipv4_compatible=True, database_type=kind)
    for network, code in GEO_NETWORKS.items():
        record = {"country": {"iso_code": code}} if flavour == "geolite" else {"country_code": code}
        writer.insert_network(IPSet([network]), record)
    writer.to_db_file(str(path))
    return path


@pytest.fixture(scope="session")
def geoip_db(tmp_path_factory) -> str:
    return str(write_mmdb(tmp_path_factory.mktemp("geo") / "country.mmdb", flavour="cc0"))


# --- Apps ---------------------------------------------------------------------------------


@dataclass
class Stack:
    """A running configuration of the server: its Flask app, client and job runner."""

    backend: str
    app: object
    config: object
    client: object = field(init=False)

    def __post_init__(self):
        self.client = self.app.test_client()

    @property
    def engine(self):
        from server.db import get_engine

        return get_engine()

    def process_jobs(self) -> None:
        """Run every queued job: the in-process thread, or a real RQ worker in burst mode."""
        queue = self.app.extensions["job_queue"]
        if self.config.embedded_queue:
            queue.join()
            return
        from rq import Queue, SimpleWorker

        from server.queue import ALL_QUEUES
        from worker.geo import init_geo

        init_geo(self.config.GEOIP_DB)
        queues = [Queue(name, connection=queue.redis) for name in ALL_QUEUES]
        SimpleWorker(queues, connection=queue.redis).work(burst=True)

    def new_key(self) -> str:
        response = self.client.post("/api/keys")
        assert response.status_code == 201, response.get_json()
        return response.get_json()["api_key"]


def make_config(database_url: str, redis_url: str = "", tmp_path: Path | None = None, **overrides):
    from server.config import Config

    settings = {"DATABASE_URL": database_url, "REDIS_URL": redis_url, "TESTING": True}
    if tmp_path is not None:
        settings["DATA_DIR"] = str(tmp_path)
    settings.update(overrides)
    return Config.from_env(environ={}, **settings)


def sqlite_stack(tmp_path: Path, **overrides) -> Stack:
    from server import create_app
    from server import useragents as useragent
    from server.cli import upgrade_database
    from server.lake import users as lake_users

    url = f"sqlite:///{tmp_path / 'test.db'}"
    upgrade_database(url)
    useragent.forget()
    lake_users.forget()
    config = make_config(url, "", tmp_path, **overrides)
    return Stack("sqlite", create_app(config), config)


_LAKES: dict[str, str] = {}


def lake_for(database_url: str) -> str:
    """One columnar store directory per database: the store's catalog lives in the
    database, so its files must outlive each test's own directory."""
    if database_url not in _LAKES:
        _LAKES[database_url] = tempfile.mkdtemp(prefix="apia-lake-")
    return _LAKES[database_url]


def postgres_stack(pg_url: str, redis_url: str, tmp_path: Path, **overrides) -> Stack:
    from server import create_app

    overrides.setdefault("LAKE_URL", lake_for(pg_url))
    config = make_config(pg_url, redis_url, tmp_path, **overrides)
    return Stack("postgres", create_app(config), config)


@pytest.fixture
def sqlite_app(tmp_path, geoip_db) -> Stack:
    return sqlite_stack(tmp_path, GEOIP_DB=geoip_db)


@pytest.fixture
def pg_app(request, tmp_path, geoip_db) -> Stack:
    pg = request.getfixturevalue("pg_url")
    redis = request.getfixturevalue("redis_url")
    return postgres_stack(pg, redis, tmp_path, GEOIP_DB=geoip_db)


@pytest.fixture(params=["sqlite", "postgres"])
def stack(request) -> Stack:
    """Each API test runs twice: embedded (SQLite, in-process jobs) and production (PG + RQ)."""
    if request.param == "sqlite":
        return request.getfixturevalue("sqlite_app")
    return request.getfixturevalue("pg_app")
