"""The errors, error group, consumers and User ID data equal what was ingested through the
real API, counted independently from the rows the test sent (tests/dash_app/error_traffic)."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime

import pandas as pd
import pytest

from dash_app import aggregations as agg
from dash_app import errors_data as data
from dash_app.clicks import apply_trigger
from dash_app.error_views import request_details
from dash_app.panels import compute, status_links
from server.keys.api_keys import lookup_key
from server.lake.export import flush
from server.models import error_groups
from server.stats.errors import capture
from server.stats.filters import Filters, window_for
from tests.dash_app.error_traffic import (
    FAILURES,
    SECRET,
    error_rows,
    failures_by_type,
    ingest_errors,
    requests_by,
)

WEEK = Filters(period="7d")


@pytest.fixture(params=["hot", "files"])
def seeded(request, stack):
    """The traffic ingested, still hot or exported to the store's files, on each backend."""
    stack.config.LAKE_EXPORT_SECONDS = 3600
    rows = error_rows(datetime.now(UTC))
    key = stack.new_key()
    ingest_errors(stack, key, rows)
    if request.param == "files":
        flush()
    with stack.engine.connect() as conn:
        key_id = lookup_key(conn, key)
    return stack, key_id, rows


def by_type(listing) -> dict:
    return {r["type"]: r["n"] for r in listing.rows}


def test_groups_count_every_exception_sent_and_sort_and_filter_by_state(seeded):
    stack, key_id, rows = seeded
    listing = data.group_list(key_id, WEEK, "all")
    sent = failures_by_type(rows)
    assert by_type(listing) == dict(sent)
    assert listing.total == len(FAILURES) and listing.occurrences == sum(sent.values())
    assert [r["n"] for r in listing.rows] == sorted(sent.values(), reverse=True)
    assert listing.unit == "day"
    for row in listing.rows:
        # Each group's trend holds every occurrence, one bucket a day of the period.
        trend = listing.trends[row["id"]]
        assert int(trend["n"].sum()) == row["n"]
        assert len(trend) == 7
        # A user is the IP address where there is one (server.rules.user_key).
        users = {r["ip_address"] for r in rows
                 if (r.get("exception") or {}).get("type") == row["type"]}  # fmt: skip
        assert row["users"] == len(users)
    by_users = data.group_list(key_id, WEEK, "all", "users")
    assert [r["users"] for r in by_users.rows] == sorted(
        (r["users"] for r in listing.rows), reverse=True
    )
    # Resolve one and ignore another: each state shows its own.
    first, second = listing.rows[0], listing.rows[1]
    assert data.set_state(key_id, first["id"], "resolved")
    assert data.set_state(key_id, second["id"], "ignored")
    assert [r["id"] for r in data.group_list(key_id, WEEK, "resolved").rows] == [first["id"]]
    assert [r["id"] for r in data.group_list(key_id, WEEK, "ignored").rows] == [second["id"]]
    assert len(data.group_list(key_id, WEEK, "open").rows) == len(FAILURES) - 2
    with stack.engine.connect() as conn:
        stored = conn.execute(error_groups.select().where(error_groups.c.id == first["id"])).first()
    assert stored.state == "resolved" and stored.resolved_at > 0
    assert not data.set_state(key_id, 10**12, "resolved")  # no such group
    with pytest.raises(ValueError, match="state"):
        data.set_state(key_id, first["id"], "gone")


def test_only_a_group_that_came_back_after_it_was_resolved_is_regressed(sqlite_app):
    stack = sqlite_app
    key = stack.new_key()
    rows = error_rows(datetime.now(UTC), count=300)
    ingest_errors(stack, key, rows)
    with stack.engine.connect() as conn:
        key_id = lookup_key(conn, key)
    first = data.group_list(key_id, WEEK).rows[0]
    assert data.set_state(key_id, first["id"], "resolved")
    again = next(r for r in rows if (r.get("exception") or {}).get("type") == first["type"])
    ingest_errors(stack, key, [{**again, "created_at": datetime.now(UTC).isoformat()}])
    regressed = {r["type"]: r["regressed"] for r in data.group_list(key_id, WEEK).rows}
    assert regressed == {kind: kind == first["type"] for kind in regressed}
    detail = data.group_detail(key_id, first["id"], WEEK)
    assert detail["state"] == "open" and detail["regressions"] == 1 and detail["regressed_at"]


def test_a_group_has_its_facts_trend_and_newest_occurrences_masked(seeded):
    _stack, key_id, rows = seeded
    listing = data.group_list(key_id, WEEK, "all")
    top = listing.rows[0]
    detail = data.group_detail(key_id, top["id"], WEEK)
    mine = [r for r in rows if (r.get("exception") or {}).get("type") == top["type"]]
    assert detail["period"]["n"] == len(mine) == int(detail["trend"]["n"].sum())
    assert detail["period"]["statuses"] == sorted({r["status"] for r in mine})
    occurrences = detail["occurrences"]
    assert len(occurrences) == min(len(mine), 50)
    newest = max(mine, key=lambda r: r["created_at"])
    assert occurrences[0]["message"] == newest["exception"]["message"]
    assert occurrences[0]["stack"][-1][:3] == [
        newest["exception"]["stack"][-1][k] for k in ("file", "line", "function")
    ]
    shown = data.occurrence_rows(occurrences)
    assert shown[0]["consumer"] == (newest.get("consumer") or {}).get("id", "")
    assert all(r["detail"].isdigit() for r in shown)
    # The captured request is masked by the server: the secret is nowhere.
    drawn = str(request_details(capture(key_id, int(shown[0]["detail"])), "x"))
    assert "[masked]" in drawn and SECRET not in drawn and "4242424242424242" not in drawn
    assert "x-request-id" in drawn and "Most recent call last" in drawn
    # One occurrence, picked by its detail id; a guessed one is nothing.
    picked = data.occurrence(key_id, top["id"], WEEK, int(shown[-1]["detail"]))
    assert picked["detail"] == occurrences[-1]["detail"]
    assert data.occurrence(key_id, top["id"], WEEK, 12345) is None
    assert data.group_detail(key_id, 10**12, WEEK) is None


def test_validation_errors_per_endpoint_and_field(seeded):
    _stack, key_id, rows = seeded
    sent = Counter(
        (e["location"], e["type"]) for r in rows for e in r.get("validation_errors") or []
    )
    found = data.validation_rows(key_id, WEEK)
    assert {(r["location"], r["type"]): r["n"] for r in found} == dict(sent)
    assert {r["route"] for r in found} == {"POST /v1/orders"}
    assert [r["n"] for r in found] == sorted(sent.values(), reverse=True)


def test_consumers_and_groups_count_their_requests(seeded):
    _stack, key_id, rows = seeded
    consumers = data.consumer_rows(key_id, WEEK)
    assert {r["id"]: r["requests"] for r in consumers} == dict(requests_by(rows, "consumer"))
    acme = next(r for r in consumers if r["id"] == "cus_acme")
    assert (acme["name"], acme["group"]) == ("Acme Inc", "enterprise")
    theirs = [r for r in rows if (r.get("consumer") or {}).get("id") == "cus_acme"]
    errors = sum(r["status"] >= 400 for r in theirs)
    assert acme["error_rate"] == pytest.approx(errors / len(theirs) * 100)
    assert 1 <= len(acme["top_endpoints"]) <= 3
    groups = data.consumer_rows(key_id, WEEK, "consumer_group")
    assert {r["id"]: r["requests"] for r in groups} == dict(requests_by(rows, "group"))


def test_user_ids_panel_and_its_click_filter(seeded):
    _stack, key_id, rows = seeded
    overview = compute(key_id, WEEK)
    sent = requests_by(rows, "user_id")
    shown = dict(zip(overview.user_ids["user_id"], overview.user_ids["n"], strict=True))
    assert len(shown) == 10 and all(sent[u] == n for u, n in shown.items())
    assert sorted(shown.values(), reverse=True) == sorted(sent.values(), reverse=True)[:10]
    # A click on a row filters by that user id: a chip, and every number follows.
    table_rows = [{"user_id": u, "n": n} for u, n in shown.items()]
    clicked = apply_trigger(WEEK, "ov-user-ids", {"user_id_cell": {"row": 1},
                            "user_id_rows": table_rows})  # fmt: skip
    user = table_rows[1]["user_id"]
    assert clicked.clicks == (("user_id", user),)
    assert compute(key_id, clicked).summary["requests"] == sent[user]
    # Forged cells change nothing.
    for cell in ({"row": 99}, {"row": "1"}, "x", None, {"row": -1}):
        forged = {"user_id_cell": cell, "user_id_rows": table_rows}
        assert apply_trigger(WEEK, "ov-user-ids", forged) == WEEK
    # The status codes panel leads to the errors page: 5xx and 422 both came.
    links = dict((link_id, text) for text, _anchor, link_id in status_links(overview.status_codes))
    server_errors = sum(r["status"] >= 500 for r in rows)
    assert links["ov-to-errors"] == f"{server_errors:,} server errors →"
    assert links["ov-to-validation"] == f"{sum(r['status'] == 422 for r in rows):,} invalid (422) →"


def test_trend_series_fills_every_bucket_of_the_window():
    day = 86400
    trend = pd.DataFrame({"t": [day * 3, day * 5, day * 5], "n": [2, 1, 4]})
    filled = agg.trend_series(trend, day * 2, day * 7, day)
    assert filled["n"].tolist() == [0, 2, 0, 5, 0]
    assert filled["time"].iloc[0] == datetime.fromtimestamp(day * 2, UTC)
    # All time starts at the first bucket with data.
    assert agg.trend_series(trend, None, day * 6, day)["n"].tolist() == [2, 0, 5]
    assert agg.trend_series(trend.iloc[0:0], day, day * 3, day).empty


def test_ids_and_windows():
    assert data.parse_id("42") == 42 and data.parse_id(42) == 42
    for bad in ("", "4x", "²", "-1", str(2**63), None, 4.2, True, ["1"], {"a": 1}):
        assert data.parse_id(bad) is None, bad
    assert data.detail_text(2**62 + 1) == str(2**62 + 1)
    assert data.detail_text(float(2**62)) is None  # a float has lost the id's low bits
    assert data.trend_window(window_for("24h"))[1] == "hour"
    assert data.trend_window(window_for("all"))[1] == "day"
