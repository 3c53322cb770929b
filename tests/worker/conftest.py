"""Fixtures for the worker tests."""

from __future__ import annotations

import pytest

from tests.conftest import create_pg_database, drop_pg_database


@pytest.fixture
def fresh_pg_url():
    """A migrated PostgreSQL database of its own, for jobs that act on every row they find."""
    url = create_pg_database("worker")
    from server.cli import upgrade_database

    upgrade_database(url)
    yield url
    drop_pg_database(url)
