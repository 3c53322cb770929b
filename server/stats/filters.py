"""The overview's filters and periods, and their round trip through the URL's query string."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from urllib.parse import parse_qsl, urlencode

from server.rules import CLICK_DIMS, DAY, HOUR

# period -> (label, days); None is all time.
PERIODS = {
    "24h": ("24 hours", 1),
    "7d": ("7 days", 7),
    "30d": ("30 days", 30),
    "6m": ("6 months", 182),
    "1y": ("1 year", 365),
    "all": ("All time", None),
}
DEFAULT_PERIOD = "30d"

DIM_LABELS = {
    "endpoint": "Endpoint",
    "version": "Version",
    "status": "Status",
    "status_class": "Status class",
    "location": "Country",
    "browser": "Client",
    "os": "OS",
    "device": "Device",
    "user": "User",
    "user_id": "User id",
    "consumer": "Consumer",
    "consumer_group": "Consumer group",
    "error_group": "Error",
    "service": "Service",
    "release": "Release",
}
TOGGLES = ("no404", "nobots", "ignore_params", "templates")
# URL flags: the two path options are on by default, so the URL names their opposite.
URL_FLAGS = ("no404", "nobots", "params", "ids")
FIVE_MINUTES = 300


@dataclass(frozen=True)
class Filters:
    """Everything that selects what the overview shows; `clicks` are (dim, value) pairs."""

    period: str = DEFAULT_PERIOD
    hostname: str | None = None
    exclude_404: bool = False
    exclude_bots: bool = False
    # Query strings are dropped and ids grouped into templates unless these are set.
    keep_params: bool = False
    keep_ids: bool = False
    hidden: tuple[str, ...] = ()
    clicks: tuple[tuple[str, str], ...] = field(default=())
    # A share link's restrictions, (dim, value) pairs with dim "hostname" or a click
    # dimension: applied under every view option, never in the URL, not removable.
    fixed: tuple[tuple[str, str], ...] = field(default=())

    @property
    def click(self) -> dict[str, str]:
        return dict(self.clicks)

    def with_click(self, dim: str, value: str) -> Filters:
        if dim not in CLICK_DIMS:
            return self
        clicks = dict(self.clicks)
        clicks[dim] = str(value)
        return replace(self, clicks=tuple(sorted(clicks.items())))

    def without_click(self, dim: str) -> Filters:
        return replace(self, clicks=tuple((d, v) for d, v in self.clicks if d != dim))

    @property
    def toggles(self) -> list[str]:
        """The checklist's ticked options."""
        flags = (self.exclude_404, self.exclude_bots, not self.keep_params, not self.keep_ids)
        return [name for name, on in zip(TOGGLES, flags, strict=True) if on]

    def with_toggles(self, names) -> Filters:
        names = set(names or ())
        return replace(
            self,
            exclude_404="no404" in names,
            exclude_bots="nobots" in names,
            keep_params="ignore_params" not in names,
            keep_ids="templates" not in names,
        )

    def to_query(self) -> str:
        """The query string (with its leading '?', or '' for the defaults)."""
        pairs = []
        if self.period != DEFAULT_PERIOD:
            pairs.append(("period", self.period))
        if self.hostname:
            pairs.append(("hostname", self.hostname))
        for name, on in zip(
            URL_FLAGS,
            (self.exclude_404, self.exclude_bots, self.keep_params, self.keep_ids),
            strict=True,
        ):
            if on:
                pairs.append((name, "1"))
        for pattern in self.hidden:
            pairs.append(("hide", pattern))
        pairs.extend(self.clicks)
        return "?" + urlencode(pairs) if pairs else ""

    @classmethod
    def from_query(cls, search: str | None) -> Filters:
        """Parse a query string; unknown or malformed parameters are ignored."""
        args = parse_qsl((search or "").lstrip("?"), keep_blank_values=True)
        period, hostname, hidden, flags, clicks = DEFAULT_PERIOD, None, [], set(), {}
        for name, value in args:
            if name == "period" and value in PERIODS:
                period = value
            elif name == "hostname" and value:
                hostname = value[:255]
            elif name in URL_FLAGS and value not in ("", "0"):
                flags.add(name)
            elif name == "hide" and value.strip():
                hidden.append(value.strip()[:255])
            elif name in CLICK_DIMS:
                clicks[name] = value[:300]
        return cls(
            period=period,
            hostname=hostname,
            exclude_404="no404" in flags,
            exclude_bots="nobots" in flags,
            keep_params="params" in flags,
            keep_ids="ids" in flags,
            hidden=tuple(dict.fromkeys(hidden)),
            clicks=tuple(sorted(clicks.items())),
        )

    @property
    def templates(self) -> bool:
        """True when endpoint labels are the stored templates (the default view)."""
        return not self.keep_params and not self.keep_ids


@dataclass(frozen=True)
class Window:
    """A period resolved against the clock: [since, until) in epoch seconds.

    `shown_until` is where charts stop (the end of the current hour or day): a 7-day
    window covers whole days, but today's future hours are not drawn.
    """

    since: int | None
    until: int
    step: int  # the activity chart's bucket, in seconds
    shown_until: int

    @property
    def previous(self) -> Window | None:
        if self.since is None:
            return None
        length = self.until - self.since
        return replace(self, since=self.since - length, until=self.since, shown_until=self.since)

    @property
    def whole_days(self) -> bool:
        return (self.since is None or self.since % DAY == 0) and self.until % DAY == 0


def window_for(period: str, now: datetime | None = None) -> Window:
    """24 hours ends with the current hour; longer periods cover whole UTC days up to today."""
    now = now or datetime.now(UTC)
    ts = int(now.timestamp())
    days = PERIODS.get(period, PERIODS[DEFAULT_PERIOD])[1]
    hour_end = ts - ts % HOUR + HOUR
    day_end = ts - ts % DAY + DAY
    if days == 1:
        return Window(hour_end - DAY, hour_end, FIVE_MINUTES, hour_end)
    if days is not None and days <= 7:
        return Window(day_end - days * DAY, day_end, HOUR, hour_end)
    since = None if days is None else day_end - days * DAY
    return Window(since, day_end, DAY, day_end)


def status_class_range(value: str) -> tuple[int, int] | None:
    """'4xx' -> (400, 500)."""
    if len(value) == 3 and value[0] in "12345" and value[1:] == "xx":
        low = int(value[0]) * 100
        return low, low + 100
    return None
