"""0016_otlp on a database that holds requests: the hot table gains `service` and
`release`, the rows already there read them as NULL, Parquet files written before the
upgrade (without the columns) are read beside new rows that have them, the service click
and `/api/data?service=` find only the new rows, and the revision goes back."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from sqlalchemy import create_engine, inspect, text

from server.cli import upgrade_database
from server.lake.layout import WRITE_NAMES, stored_row
from tests.conftest import make_config

BEFORE = "0015_slos"  # the head of the release whose 0013-0015 were no-ops


def old_row(path: str, now: datetime) -> dict:
    values = dict(zip(WRITE_NAMES, stored_row(
        key_id=1, created_at=now, hostname="api.example.com", path=path, method="GET",
        status=200, response_time=12, framework="FastAPI",
    ), strict=True))  # fmt: skip
    del values["service"], values["release"]
    return values


def strip_new_columns(lake) -> int:
    """Rewrite every requests file without `service` and `release`, as the export wrote
    them before this revision."""
    import duckdb

    files = [p for p in lake.rglob("*.parquet") if "details" not in p.parts]
    for path in files:
        duckdb.sql(
            f"COPY (SELECT * EXCLUDE (service, release) FROM read_parquet('{path}')) "
            f"TO '{path}.old' (FORMAT parquet)"
        )
        path.with_name(path.name + ".old").replace(path)
    return len(files)


def test_rows_and_files_from_before_come_through(old_database, tmp_path):
    from alembic import command

    from server.cli import alembic_config

    url = old_database
    upgrade_database(url, BEFORE)
    now = datetime.now(UTC).replace(microsecond=0)
    engine = create_engine(url)
    assert "service" not in {c["name"] for c in inspect(engine).get_columns("requests")}
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO api_keys (id, key_hash, created_at, last_active_at, is_demo) "
                "VALUES (1, :h, :t, :t, false)"
            ),
            {"h": b"\x01" * 32, "t": now},
        )
        for path in ("/v1/users/1", "/v1/users/2"):
            values = old_row(path, now)
            names = ", ".join(values)
            marks = ", ".join(f":{name}" for name in values)
            conn.execute(text(f"INSERT INTO requests ({names}) VALUES ({marks})"), values)
    engine.dispose()

    upgrade_database(url)

    engine = create_engine(url)
    columns = {c["name"]: c for c in inspect(engine).get_columns("requests")}
    assert {"service", "release"} <= set(columns)
    with engine.connect() as conn:
        kept = conn.execute(text("SELECT path, service, release FROM requests ORDER BY path"))
        assert [tuple(r) for r in kept] == [("/v1/users/1", None, None),
                                            ("/v1/users/2", None, None)]  # fmt: skip
    engine.dispose()

    from server.config import use_config
    from server.db import get_engine, init_engine
    from server.lake.export import flush
    from server.lake.write import store_rows
    from server.queue import init_queue
    from server.stats import Filters, answer, window_for
    from server.stats.raw import RequestFilter, data_page_json

    config = use_config(make_config(url, "", tmp_path))
    init_engine(config.DATABASE_URL)
    init_queue("")
    flush()
    assert strip_new_columns(tmp_path / "lake") >= 1
    new = stored_row(key_id=1, created_at=now, hostname="api.example.com", path="/v2/items/9",
                     endpoint="/v2/items/{item_id}", method="POST", status=201,
                     response_time=30, framework="OpenTelemetry", service="shop",
                     release="1.4.2")  # fmt: skip
    with get_engine().begin() as conn:
        store_rows(conn, [new])

    def data_page(filters):
        body, count = data_page_json(filters, 1, 100)
        return json.loads(body), count

    rows, count = data_page(RequestFilter(key_id=1))
    assert count == 3
    by_path = {r["path"]: r for r in rows}
    assert (by_path["/v1/users/1"]["service"], by_path["/v1/users/1"]["release"]) == (None, None)
    assert by_path["/v2/items/9"]["service"] == "shop"
    assert by_path["/v2/items/9"]["endpoint"] == "/v2/items/{item_id}"
    shop, count = data_page(RequestFilter(key_id=1, service="shop"))
    assert (count, [r["path"] for r in shop]) == (1, ["/v2/items/9"])

    clicked = answer(1, Filters(period="24h", clicks=(("service", "shop"),)), window_for("24h"))
    assert clicked.parts.endpoints[["method", "endpoint"]].values.tolist() == [
        ["POST", "/v2/items/{item_id}"]
    ]
    # Moved into files too, the old files still lacking the columns.
    flush()
    shop, count = data_page(RequestFilter(key_id=1, service="shop"))
    assert count == 1
    get_engine().dispose()

    command.downgrade(alembic_config(url), BEFORE)
    engine = create_engine(url)
    assert "service" not in {c["name"] for c in inspect(engine).get_columns("requests")}
    engine.dispose()
    upgrade_database(url)
