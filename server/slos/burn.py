"""The burn-rate alerts of an SLO (the multi-window, multi-burn-rate alerts of Google's SRE
workbook, chapter 5): an alert rule of kind slo_fast_burn or slo_slow_burn fires while
one of its conditions holds, and resolves once none does.

Each condition asks for the burn rate over a long window and over a short one to both
exceed a factor: the long window says enough budget went, the short one that it is still
going, so the alert resolves minutes after the burning stops instead of hours.

- fast burn: 14.4x over 1 h and 5 min (2 % of a 30-day budget in an hour);
- slow burn: 6x over 6 h and 30 min (5 % in 6 hours), or 1x over 3 days and 6 h (10 % in
  3 days).
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime

from sqlalchemy import select

from server.db import get_engine
from server.slos.models import slos
from server.slos.status import BURN_WINDOWS, MINUTE_US, burn_rate, indicator, us
from server.stats.slis import measure

# kind: [(factor, long window, short window)], any of which fires.
CONDITIONS = {
    "slo_fast_burn": [(14.4, "1h", "5m")],
    "slo_slow_burn": [(6.0, "6h", "30m"), (1.0, "3d", "6h")],
}
LABELS = {"slo_fast_burn": "fast burn", "slo_slow_burn": "slow burn"}
SHOWN = {"5m": "5 min", "30m": "30 min", "1h": "1 h", "6h": "6 h", "24h": "24 h", "3d": "3 days"}


def rates(key_id: int, slo: dict, names: list[str], until_us: int) -> dict[str, float | None]:
    """The SLO's burn rates over the windows `names` ending at `until_us`, one scan over
    the longest of them only."""
    longest = max(BURN_WINDOWS[n] for n in names) * MINUTE_US
    wanted = replace(
        indicator(slo, until_us, hourly=False, windows=names), since_us=until_us - longest
    )
    (found,) = measure(key_id, [wanted])
    return {
        name: burn_rate(n, bad, slo["target"])
        for name, (n, bad) in zip(names, found.windows, strict=True)
    }


def firing(kind: str, found: dict[str, float | None]) -> tuple[bool, float, str]:
    """(firing?, the value shown: the long window's burn rate of the first condition that
    holds, else of the first one, what the rates were)."""
    shown, parts = None, []
    for factor, long, short in CONDITIONS[kind]:
        a, b = found[long], found[short]
        holds = a is not None and b is not None and a > factor and b > factor
        if holds and shown is None:
            shown = a
        parts.append(
            f"{_rate(a)} over {SHOWN[long]} and {_rate(b)} over {SHOWN[short]} "
            f"(fires above {factor:g}x both)"
        )
    if shown is not None:
        return True, shown, "; ".join(parts)
    first = found[CONDITIONS[kind][0][1]]
    return False, 0.0 if first is None else first, "; ".join(parts)


def _rate(value: float | None) -> str:
    return "no requests" if value is None else f"{value:.1f}x"


def measure_rule(rule, now: datetime) -> tuple[bool | None, float | None, str]:
    """(firing?, value, summary) of an SLO burn rule at `now` (server.alerts.evaluation)."""
    with get_engine().connect() as conn:
        row = conn.execute(select(slos).where(slos.c.id == rule.slo_id)).first()
    if row is None:  # deleted meanwhile (its rules go with it)
        return None, None, ""
    slo = dict(row._mapping)
    names = sorted({w for c in CONDITIONS[rule.kind] for w in c[1:]}, key=BURN_WINDOWS.get)
    found = rates(rule.key_id, slo, names, us(now))
    fires, value, how = firing(rule.kind, found)
    summary = (
        f"SLO {slo['name']!r} ({slo['target']:g} % over {slo['window_days']} days), "
        f"{LABELS[rule.kind]}: error budget burning at {how}"
    )
    return fires, value, summary


def describe(kind: str) -> str:
    """A burn-rate rule's condition in words (the alerts page's)."""
    parts = [
        f"above {factor:g}× over both {SHOWN[long]} and {SHOWN[short]}"
        for factor, long, short in CONDITIONS[kind]
    ]
    return f"{LABELS[kind]}: error budget burning " + ", or ".join(parts)
