"""Where an SLO stands: its SLI over the rolling window, the error budget and what is left
of it, the burn rates over 5 minutes to 3 days, and the budget's burn-down, all from exact
counts of the stored rows (server.stats.slis).

- SLI: good requests / requests, in percent, over [now - window, now).
- Error budget: the bad requests the target allows over the window, (1 - target) x
  requests; remaining: 1 - bad / budget, in percent (negative once overspent). A window
  with no request has spent nothing.
- Burn rate over w: (bad / requests over the last w) / (1 - target): 1 spends the budget
  exactly over the window, 14.4 spends 2 % of a 30-day budget in an hour. None without a
  request in w.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from server.stats.slis import Indicator, Measured, Scope, bad_sql, measure

MINUTE_US = 60_000_000
BURN_WINDOWS = {"5m": 5, "30m": 30, "1h": 60, "6h": 360, "24h": 1440, "3d": 4320}  # minutes
DAY_US = 86_400_000_000


def us(moment: datetime) -> int:
    """Epoch microseconds, exactly (a float timestamp can be a microsecond off)."""
    return int(moment.replace(microsecond=0).timestamp()) * 1_000_000 + moment.microsecond


def indicator(slo: dict, until_us: int, *, hourly: bool = True, windows=None) -> Indicator:
    """What measuring `slo` up to `until_us` asks of the rows (every burn window unless
    `windows` names some)."""
    names = list(BURN_WINDOWS) if windows is None else list(windows)
    scope = Scope(slo.get("hostname"), tuple(slo.get("endpoints") or ()), slo.get("consumer_group"))
    bad = bad_sql(
        slo["objective"],
        include_4xx=bool(slo.get("include_4xx")),
        threshold_ms=slo.get("threshold_ms"),
    )
    return Indicator(
        scope=scope,
        bad=bad,
        since_us=until_us - int(slo["window_days"]) * DAY_US,
        until_us=until_us,
        windows=tuple(BURN_WINDOWS[n] * MINUTE_US for n in names),
        hourly=hourly,
    )


def burn_rate(requests: int, bad: int, target: float) -> float | None:
    if not requests:
        return None
    return (bad / requests) / (1 - target / 100)


@dataclass
class Status:
    slo: dict
    until_us: int
    measured: Measured

    @property
    def requests(self) -> int:
        return self.measured.requests

    @property
    def bad(self) -> int:
        return self.measured.bad

    @property
    def sli(self) -> float | None:
        n = self.requests
        return None if not n else 100.0 * (n - self.bad) / n

    @property
    def budget(self) -> float:
        """The bad requests the window may hold."""
        return (1 - self.slo["target"] / 100) * self.requests

    @property
    def remaining(self) -> float:
        """What is left of the budget, in percent (negative once overspent)."""
        return remaining(self.bad, self.budget)

    def burn_rates(self) -> dict[str, float | None]:
        return {
            name: burn_rate(n, bad, self.slo["target"])
            for name, (n, bad) in zip(BURN_WINDOWS, self.measured.windows, strict=True)
        }

    def burn_down(self) -> list[tuple[int, float]]:
        """(epoch second, remaining %) from the window's start (100 %) to now, at the end
        of each hour with requests: the budget is the whole window's, the spending
        cumulative."""
        since_s = (self.until_us - int(self.slo["window_days"]) * DAY_US) // 1_000_000
        until_s = self.until_us // 1_000_000
        points, spent = [(since_s, 100.0)], 0
        for hour, bad in zip(self.measured.hourly["hour"], self.measured.hourly["bad"],
                             strict=True):  # fmt: skip
            spent += int(bad)
            points.append((min((int(hour) + 1) * 3600, until_s), remaining(spent, self.budget)))
        if points[-1][0] != until_s:
            points.append((until_s, remaining(spent, self.budget)))
        return points

    def as_dict(self) -> dict:
        return {
            "requests": self.requests,
            "bad": self.bad,
            "good": self.requests - self.bad,
            "sli": self.sli,
            "budget": self.budget,
            "budget_remaining": self.remaining,
            "burn_rates": self.burn_rates(),
            "since_us": self.until_us - int(self.slo["window_days"]) * DAY_US,
            "until_us": self.until_us,
        }


def remaining(bad: int, budget: float) -> float:
    if budget <= 0:  # no request in the window: nothing spent
        return 100.0
    return 100.0 * (1 - bad / budget)


def statuses(key_id: int, slos: list[dict], now: datetime) -> list[Status]:
    """Each SLO's status at `now`, all from one snapshot of the key's rows."""
    until = us(now)
    found = measure(key_id, [indicator(slo, until) for slo in slos])
    return [Status(slo, until, m) for slo, m in zip(slos, found, strict=True)]
