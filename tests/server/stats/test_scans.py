"""A refresh asks each question of the rows once: the "User ID" panel comes from the
breakdowns' scan, and a click on one user counts its traffic and each bucket's users in
that scan too. The numbers are those of the separate scans, and of what was sent."""

from __future__ import annotations

from collections import Counter

import pytest

from dash_app.panels import compute
from server.lake.source import KeyRows
from server.stats import breakdowns, users
from server.stats.filters import Filters
from tests.dash_app.helpers import Expected
from tests.dash_app.test_overview_data import _ingest, check

CASES = [
    Filters(period="all"),
    Filters(period="7d").with_click("user", "8.8.8.8"),
    Filters(period="all").with_click("user", "user5"),
    Filters(period="24h").with_click("user", "8.8.8.8"),
    Filters(period="all").with_click("endpoint", "GET /v1/items/{id}"),
]


def _counting(monkeypatch) -> list[str]:
    asked = []
    real = KeyRows.query

    def query(self, sql, params=None):
        asked.append(sql)
        return real(self, sql, params)

    monkeypatch.setattr(KeyRows, "query", query)
    return asked


def _user_ids(expected: Expected) -> list[tuple[str, int]]:
    ids = Counter(r["user_id"] for r in expected.rows if r["user_id"] is not None)
    return sorted(ids.items(), key=lambda item: (-item[1], item[0]))[:10]


@pytest.mark.parametrize("placement", ["hot", "split"])
def test_one_scan_answers_as_separate_scans_do(stack, monkeypatch, placement):
    key_id, rows, now = _ingest(stack, placement)
    for filters in CASES:
        asked = _counting(monkeypatch)
        one = compute(key_id, filters, now)
        one_scan = len(asked)
        monkeypatch.undo()
        # The separate scans: the user ids asked apart, the traffic and each bucket's
        # users in a scan of their own (bitmaps).
        with monkeypatch.context() as m:
            m.setattr(users, "MAX_PAIRS", 0)
            m.setattr(breakdowns, "note_user_ids", lambda *a: None)
            asked = _counting(m)
            apart = compute(key_id, filters, now)
            separate = len(asked)
        expected = Expected(rows, filters, one.window.since, one.window.until)
        check(one, expected, str(filters))
        check(apart, expected, str(filters))
        assert one.summary["requests"] > 0, filters
        got = list(one.user_ids[["user_id", "n"]].itertuples(index=False, name=None))
        assert got == _user_ids(expected), filters
        assert one.user_ids.equals(apart.user_ids), filters
        assert one.activity.equals(apart.activity), filters
        # One scan fewer for the user ids, one for the traffic and users (a key of a few
        # users: every view holds few pairs; server.stats.users.pairs_fit).
        assert separate - one_scan == 2, (filters, separate, one_scan)
