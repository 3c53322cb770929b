"""Counting requests over a period (the previous period's total, for the change)."""

from __future__ import annotations

from dash_app.stats.planner import Plan


def total(rows, plan: Plan) -> int:
    """The number of requests matching the plan."""
    found = rows.query(
        f"SELECT count(*) FROM {{rows}} WHERE {plan.where}", list(plan.params)
    ).fetchone()
    return int(found[0])
