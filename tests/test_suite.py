"""The test suite as a developer runs it on a machine short of a service, or beside another."""

from __future__ import annotations

import os
import subprocess
import sys

from tests.conftest import ROOT


def pytest_run(*args: str, **env: str) -> subprocess.CompletedProcess:
    """This suite, in a child pytest, outside CI (where a missing service is a failure),
    with the services this run was given, but not its shared Redis database: each test
    here says which one its child uses (this run's own may be in use by itself)."""
    environ = {k: v for k, v in os.environ.items() if k not in ("CI", "TEST_REDIS_URL")}
    environ.update(env)
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *args],
        cwd=ROOT,
        env=environ,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_not_postgres_selects_the_embedded_suite():
    result = pytest_run(
        "--collect-only", "-q", "-m", "not postgres", "tests/server", "tests/worker"
    )
    assert result.returncode == 0, result.stdout[-2000:]
    selected = [line for line in result.stdout.splitlines() if "::" in line]
    assert any("[sqlite]" in test for test in selected)
    assert not [test for test in selected if "postgres" in test]
    for needs_postgres in (
        "test_staging.py",
        "test_a_failing_batch_is_isolated_from_its_group_at_once",
        "test_queue_down_is_503_and_depth_unknown",
        "test_jobs.py",
    ):
        assert not [test for test in selected if needs_postgres in test], needs_postgres


def test_a_missing_postgresql_is_one_short_line_in_the_summary():
    result = pytest_run(
        "-q",
        "tests/server/api/test_health.py",
        TEST_PG_ADMIN_URL="postgresql+psycopg://postgres@127.0.0.1:1/postgres",
    )
    assert result.returncode == 0, result.stdout[-2000:]
    skips = [line for line in result.stdout.splitlines() if line.startswith("SKIPPED")]
    assert len(skips) == 1, skips
    assert "PostgreSQL not available: 127.0.0.1:1 (" in skips[0]
    assert "TEST_PG_ADMIN_URL" in skips[0] and len(skips[0]) < 300
    assert skips[0].startswith("SKIPPED [3]")  # every PostgreSQL test of the file, one line


def test_a_missing_chromedriver_is_named_as_such():
    result = pytest_run(
        "-q", "tests/dash_app/test_browser.py", "-k", "wrong_key", CHROMEDRIVER="/nonexistent"
    )
    assert result.returncode == 0, result.stdout[-2000:]
    skips = [line for line in result.stdout.splitlines() if line.startswith("SKIPPED")]
    assert len(skips) == 1
    assert (
        "chromedriver not available: no /nonexistent; apt-get install chromium-driver" in (skips[0])
    )


def test_two_suites_can_share_a_machine(redis_url):
    """Its own database prefix and a Redis database on a shared server."""
    shared = redis_url.rsplit("/", 1)[0] + "/7"
    result = pytest_run(
        "-q",
        "tests/server/api/test_health.py",
        TEST_PG_PREFIX="apiashared",
        TEST_REDIS_URL=shared,
    )
    assert result.returncode == 0, result.stdout[-3000:]
    assert "4 passed, 1 skipped" in result.stdout
    assert "needs a redis-server of its own to stop and start (TEST_REDIS_URL is set)" in (
        result.stdout
    )
