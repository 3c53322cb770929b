"""Shared fixtures: real PostgreSQL, a private real Redis, real RQ workers, and SQLite.

On a bare machine the PostgreSQL/Redis/browser tests are skipped, with one short line
per missing service in the summary; with CI=true a missing service is a failure. Tests
that need a service carry its marker (applied here from the fixtures they use), so
`pytest -m "not postgres and not redis and not browser"` is the embedded suite.

Two suites can share a machine: TEST_PG_PREFIX names this suite's databases (and only
its own leftovers are dropped), TEST_REDIS_URL points the tests at a Redis database of
their own on a shared server instead of a private redis-server.
"""

from __future__ import annotations

import contextlib
import functools
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

from bench.services import free_port

IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}
PG_ADMIN_URL = os.environ.get(
    "TEST_PG_ADMIN_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)
PG_PREFIX = os.environ.get("TEST_PG_PREFIX", "apia")
SHARED_REDIS_URL = os.environ.get("TEST_REDIS_URL", "")
ROOT = Path(__file__).resolve().parent.parent


def unavailable(what: str, why: str):
    """Skip on a bare machine; fail under CI, where every service must be present.

    `why` is one short line (the same for every test, so the summary folds them into one).
    """
    if IN_CI:
        pytest.fail(f"{what} is required when CI=true, but: {why}", pytrace=False)
    pytest.skip(f"{what} not available: {why}")


def first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return (text.splitlines()[0] if text else type(exc).__name__)[:160]


def symptom(exc: BaseException) -> str:
    """The gist of a connection error: `Connection refused`, not the driver's paragraph."""
    return first_line(getattr(exc, "orig", None) or exc).rsplit(": ", 1)[-1].strip()


def pytest_terminal_summary(terminalreporter):
    """Skips folded by reason: one line per missing service, however many tests it cost.

    (pytest's own -rs lists each test that skipped in a fixture on a line of its own.)
    """
    reasons: dict[str, int] = {}
    for report in terminalreporter.stats.get("skipped", []):
        longrepr = report.longrepr
        reason = longrepr[2] if isinstance(longrepr, tuple) else str(longrepr)
        reason = reason.removeprefix("Skipped: ")
        reasons[reason] = reasons.get(reason, 0) + 1
    if reasons:
        terminalreporter.section("skipped")
        for reason, count in sorted(reasons.items(), key=lambda item: -item[1]):
            terminalreporter.write_line(f"SKIPPED [{count}] {reason}")


# --- Markers -------------------------------------------------------------------------------

PG_FIXTURES = frozenset({"pg_url", "pg_app", "fresh_pg_url", "pg_database"})
REDIS_FIXTURES = frozenset({"redis_url", "redis_server"})
BROWSER_FIXTURES = frozenset({"chrome", "browser"})
NODE_FIXTURES = frozenset({"node_app_dir"})


def pytest_collection_modifyitems(config, items):
    """Mark each test with the services its fixtures (or its "postgres" variant) need."""
    for item in items:
        names = set(getattr(item, "fixturenames", ()))
        params = getattr(getattr(item, "callspec", None), "params", {})
        postgres_variant = any(isinstance(v, str) and v == "postgres" for v in params.values())
        if names & PG_FIXTURES or postgres_variant:
            item.add_marker(pytest.mark.postgres)
            item.add_marker(pytest.mark.redis)  # the production shape: PostgreSQL + RQ
        elif names & REDIS_FIXTURES:
            item.add_marker(pytest.mark.redis)
        if names & BROWSER_FIXTURES:
            item.add_marker(pytest.mark.browser)
        if names & NODE_FIXTURES:
            item.add_marker(pytest.mark.node)


@pytest.fixture(autouse=True)
def _markers_match_services(request):
    """A test that reached a service (fixtures asked for on the fly too) must carry its
    marker, or `-m "not postgres"` would select it on a machine without one."""
    yield
    used = set(request.fixturenames)
    for marker, fixtures in (("postgres", PG_FIXTURES), ("redis", REDIS_FIXTURES)):
        if used & fixtures and request.node.get_closest_marker(marker) is None:
            pytest.fail(
                f"{request.node.nodeid} uses {sorted(used & fixtures)} but is not marked "
                f"{marker}: request the fixture in its signature, or mark it",
                pytrace=False,
            )


# --- PostgreSQL ---------------------------------------------------------------------------


def _admin_engine():
    return create_engine(
        PG_ADMIN_URL, isolation_level="AUTOCOMMIT", connect_args={"connect_timeout": 3}
    )


@functools.cache
def pg_unavailable() -> str | None:
    """Why PostgreSQL cannot be used (one line), or None; asked once a session, and this
    suite's leftovers from earlier runs (databases of dead processes) are dropped then."""
    where = make_url(PG_ADMIN_URL)
    try:
        engine = _admin_engine()
        with engine.connect() as conn:
            names = conn.execute(
                text("SELECT datname FROM pg_database WHERE datname LIKE :p"),
                {"p": f"{PG_PREFIX}\\_%"},
            ).scalars()
            for name in names:
                if _owner_gone(name):
                    conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        engine.dispose()
    except Exception as exc:
        return (
            f"{where.host}:{where.port or 5432} ({symptom(exc)}); start it, or point "
            "TEST_PG_ADMIN_URL at one"
        )
    return None


def _owner_gone(name: str) -> bool:
    """Database names carry the pid of the suite that made them: is that suite gone?"""
    parts = name.split("_")
    if len(parts) < 3 or not parts[-2].isdigit():
        return False
    try:
        os.kill(int(parts[-2]), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def create_pg_database(purpose: str = "test") -> str:
    """A new empty database with a unique name; returns its URL (skips if PG is down)."""
    why = pg_unavailable()
    if why:
        unavailable("PostgreSQL", why)
    name = f"{PG_PREFIX}_{purpose}_{os.getpid()}_{uuid.uuid4().hex[:8]}"
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
    url = create_pg_database()
    from server.cli import upgrade_database

    upgrade_database(url)
    yield url
    drop_pg_database(url)


@pytest.fixture
def pg_database():
    """An empty PostgreSQL database of the test's own (not migrated)."""
    url = create_pg_database("empty")
    yield url
    drop_pg_database(url)


@pytest.fixture
def fresh_pg_url():
    """A migrated PostgreSQL database of its own, for jobs that act on every row they find."""
    url = create_pg_database("worker")
    from server.cli import upgrade_database

    upgrade_database(url)
    yield url
    drop_pg_database(url)


@pytest.fixture(params=["sqlite", "postgres"])
def old_database(request, tmp_path):
    """An empty database of either backend, for a migration to start from."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'old.db'}"
        return
    try:
        url = create_pg_database("apia_migrate")
    except Exception as exc:  # noqa: BLE001
        unavailable("PostgreSQL", str(exc))
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
    """A private redis-server that tests may stop and start again."""
    if SHARED_REDIS_URL:
        pytest.skip("needs a redis-server of its own to stop and start (TEST_REDIS_URL is set)")
    if not shutil.which("redis-server"):
        unavailable("Redis", "no redis-server on PATH; apt-get install redis-server")
    server = RedisServer(free_port(), tmp_path_factory.mktemp("redis"))
    try:
        server.start()
    except Exception as exc:
        unavailable("Redis", symptom(exc))
    yield server
    server.stop()


@pytest.fixture
def redis_url(request):
    """An empty Redis database: TEST_REDIS_URL's, or the private server's (restarted if a
    test stopped it). A shared one is emptied again after the test: the suite leaves
    nothing in it."""
    from redis import Redis
    from redis.exceptions import RedisError

    if SHARED_REDIS_URL:
        try:
            Redis.from_url(SHARED_REDIS_URL, socket_connect_timeout=3).flushdb()
        except RedisError as exc:
            unavailable("Redis", f"TEST_REDIS_URL {SHARED_REDIS_URL} ({symptom(exc)})")
        yield SHARED_REDIS_URL
        with contextlib.suppress(RedisError):
            Redis.from_url(SHARED_REDIS_URL, socket_connect_timeout=3).flushdb()
        return
    redis_server = request.getfixturevalue("redis_server")
    if redis_server.process is None or redis_server.process.poll() is not None:
        redis_server.start()
    Redis.from_url(redis_server.url).flushdb()
    yield redis_server.url


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
        from rq import Queue

        from server.ingest.geo import init_geo
        from server.queue import ALL_QUEUES
        from worker.rq_worker import Worker

        init_geo(self.config.GEOIP_DB)
        queues = [Queue(name, connection=queue.redis) for name in ALL_QUEUES]
        # Our worker, not RQ's SimpleWorker: its stop could wait up to 60 s for the pub/sub
        # thread (worker.rq_worker), and a fuzz test that stops one per example hung.
        Worker(queues, connection=queue.redis).work(burst=True)

    def new_key(self) -> str:
        response = self.client.post("/api/keys")
        assert response.status_code == 201, response.get_json()
        return response.get_json()["api_key"]


def make_config(database_url: str, redis_url: str = "", tmp_path: Path | None = None, **overrides):
    from server.config import Config

    settings = {"DATABASE_URL": database_url, "REDIS_URL": redis_url, "TESTING": True}
    # Tests make many keys from one address: the limit is off unless a test sets it
    # (tests/server/api/test_keys_signup.py does).
    settings["KEY_CREATE_PER_HOUR"] = 0
    if tmp_path is not None:
        settings["DATA_DIR"] = str(tmp_path)
    settings.update(overrides)
    return Config.from_env(environ={}, **settings)


def sqlite_stack(tmp_path: Path, **overrides) -> Stack:
    from server.cli import upgrade_database
    from server.lake import agents as useragent
    from server.lake import users as lake_users
    from wsgi import build

    url = f"sqlite:///{tmp_path / 'test.db'}"
    upgrade_database(url)
    useragent.forget()
    lake_users.forget()
    config = make_config(url, "", tmp_path, **overrides)
    return Stack("sqlite", build(config), config)


_LAKES: dict[str, str] = {}


def lake_for(database_url: str) -> str:
    """One columnar store directory per database: the store's catalog lives in the
    database, so its files must outlive each test's own directory."""
    if database_url not in _LAKES:
        _LAKES[database_url] = tempfile.mkdtemp(prefix="apia-lake-")
    return _LAKES[database_url]


def postgres_stack(pg_url: str, redis_url: str, tmp_path: Path, **overrides) -> Stack:
    from wsgi import build

    overrides.setdefault("LAKE_URL", lake_for(pg_url))
    config = make_config(pg_url, redis_url, tmp_path, **overrides)
    return Stack("postgres", build(config), config)


@pytest.fixture
def sqlite_app(tmp_path, geoip_db) -> Stack:
    return sqlite_stack(tmp_path, GEOIP_DB=geoip_db)


@pytest.fixture
def pg_app(request, tmp_path, geoip_db) -> Stack:
    pg = request.getfixturevalue("pg_url")
    redis = request.getfixturevalue("redis_url")
    return postgres_stack(pg, redis, tmp_path, GEOIP_DB=geoip_db)


@pytest.fixture(params=["sqlite", "postgres"])
def make_stack(request, tmp_path):
    """Build a stack with extra settings, on each backend (each API test runs twice)."""

    def build(**overrides):
        if request.param == "sqlite":
            return sqlite_stack(tmp_path, **overrides)
        pg, redis = request.getfixturevalue("pg_url"), request.getfixturevalue("redis_url")
        return postgres_stack(pg, redis, tmp_path, **overrides)

    return build


@pytest.fixture(params=["sqlite", "postgres"])
def stack(request) -> Stack:
    """Each API test runs twice: embedded (SQLite, in-process jobs) and production (PG + RQ)."""
    if request.param == "sqlite":
        return request.getfixturevalue("sqlite_app")
    return request.getfixturevalue("pg_app")
