"""A release comparison: for a deploy, every endpoint before and after over equal
windows, each change called beyond noise or not, the worst first.

Beyond noise:
- p50 and p95: their 99 % confidence intervals (server.stats.releases) do not overlap;
- error rate (5xx): a two-proportion z-test, |z| > 3 (about 1 in 370 by chance, so a
  release of a hundred unchanged endpoints seldom shows one falsely).
An endpoint is `worse` when any of these moved up beyond noise, `better` when one moved
down and none up, `within noise` otherwise; `new` and `gone` when it had no request on
one side. `worse_by` is the largest relative rise beyond noise (1.0: doubled; an error
rate's rise relative to the larger of its old rate and 1 %).
"""

from __future__ import annotations

import math
from datetime import datetime

from server.deploys.store import us
from server.stats.releases import QUANTILES, before_after

Z_ERRORS = 3.0
DEFAULT_MINUTES = 60
MAX_MINUTES = 7 * 24 * 60
ORDER = {"worse": 0, "within noise": 1, "new": 2, "better": 3, "gone": 4}
MINUTE_US = 60_000_000


def windows(deploy: dict, minutes: int, now: datetime) -> tuple[int, int]:
    """(moment, length) in µs: `minutes` each side, shortened to what has passed since."""
    moment = deploy["deployed_at"]
    return moment, max(0, min(minutes * MINUTE_US, us(now) - moment))


# Public: the release_regression alert (server/alerts/releases.py) reads a side the same way.
def routes_on_side(frame, after: bool) -> dict:
    part = frame[frame["after"] == after]
    return {r["route"]: r for r in part.to_dict("records")}


def route_stats(r: dict | None) -> dict | None:
    if r is None:
        return None
    n, errors = int(r["n"]), int(r["errors"])
    out = {"requests": n, "errors": errors, "error_rate": 100.0 * errors / n}
    for name in QUANTILES:
        out[name] = _num(r[name])
        out[f"{name}_ci"] = [_num(r[f"{name}_low"]), _num(r[f"{name}_high"])]
    return out


def _num(value):
    return None if value is None or value != value else float(value)


def error_z(a: dict, b: dict) -> float:
    """The two-proportion z statistic of b's error rate against a's (pooled)."""
    n1, n2, e1, e2 = a["requests"], b["requests"], a["errors"], b["errors"]
    pooled = (e1 + e2) / (n1 + n2)
    spread = math.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2))
    if spread == 0:
        return 0.0
    return (e2 / n2 - e1 / n1) / spread


def judge(before: dict | None, after: dict | None) -> dict:
    """The endpoint's verdict, what moved beyond noise, and by how much it got worse."""
    if before is None:
        return {"verdict": "new", "changes": {}, "worse_by": 0.0}
    if after is None:
        return {"verdict": "gone", "changes": {}, "worse_by": 0.0}
    changes, worse_by = {}, 0.0
    for name in QUANTILES:
        (low_a, high_a), (low_b, high_b) = before[f"{name}_ci"], after[f"{name}_ci"]
        if low_b is not None and high_a is not None and low_b > high_a:
            changes[name] = "up"
            worse_by = max(worse_by, after[name] / max(before[name], 1) - 1)
        elif high_b is not None and low_a is not None and high_b < low_a:
            changes[name] = "down"
    z = error_z(before, after)
    if abs(z) > Z_ERRORS:
        changes["error_rate"] = "up" if z > 0 else "down"
        if z > 0:
            rise = (after["error_rate"] - before["error_rate"]) / max(before["error_rate"], 1.0)
            worse_by = max(worse_by, rise)
    if "up" in changes.values():
        verdict = "worse"
    elif changes:
        verdict = "better"
    else:
        verdict = "within noise"
    return {"verdict": verdict, "changes": changes, "worse_by": worse_by, "error_z": z}


def compare(key_id: int, deploy: dict, minutes: int, now: datetime) -> dict:
    """Every endpoint of the deploy's host (or all hosts) before and after it."""
    moment, length = windows(deploy, minutes, now)
    endpoints = []
    if length:
        frame = before_after(key_id, moment, length, deploy.get("hostname"))
        was, now_is = routes_on_side(frame, False), routes_on_side(frame, True)
        for route in sorted(set(was) | set(now_is)):
            before, after = route_stats(was.get(route)), route_stats(now_is.get(route))
            endpoints.append({"endpoint": route, "before": before, "after": after,
                              **judge(before, after)})  # fmt: skip
    endpoints.sort(key=lambda e: (ORDER[e["verdict"]], -e["worse_by"], -_p95_ratio(e),
                                  e["endpoint"]))  # fmt: skip
    return {
        "deploy": deploy,
        "window_minutes": length / MINUTE_US,
        "before": [moment - length, moment],
        "after": [moment, moment + length],
        "endpoints": endpoints,
    }


def _p95_ratio(e: dict) -> float:
    a, b = e["before"], e["after"]
    if not a or not b or not a["p95"] or b["p95"] is None:
        return 0.0
    return b["p95"] / a["p95"]
