"""Fixtures of the server tests."""

from __future__ import annotations

import pytest

from tests.conftest import create_pg_database, drop_pg_database


@pytest.fixture(params=["sqlite", "postgres"])
def old_database(request, tmp_path):
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'old.db'}"
        return
    try:
        url = create_pg_database("apia_migrate")
    except Exception as exc:  # noqa: BLE001
        from tests.conftest import unavailable

        unavailable("PostgreSQL", str(exc))
    yield url
    drop_pg_database(url)
