"""Known traffic to ingest through the real API, and an independent count of what it holds."""

from __future__ import annotations

import fnmatch
from collections import Counter
from datetime import datetime, timedelta

from server.lake.agents import parse
from server.rules import api_version, endpoint_label
from server.stats.filters import Filters, status_class_range

CHROME = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/124.0.0.0 Safari/537.36"
)
IPHONE = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, "
    "like Gecko) Version/17.4 Mobile/15E148 Safari/604.1"
)
GOOGLEBOT = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"
COUNTRY = {"8.8.8": "US", "81.2.69": "GB", "5.1.2": "FR"}


def known_rows(now: datetime) -> list[tuple[int, dict]]:
    """(privacy level, row) pairs spread over the last three days; 60 requests."""
    rows = []
    hosts = ("api.example.com", "eu.example.com")
    paths = (
        "/v1/items/{n}",
        "/v1/items",
        "/v2/orders/{n}?expand=1",
        "/health",
        "/v2/orders",
    )
    statuses = (200, 200, 201, 301, 404, 500, 200, 429)
    agents = (CHROME, IPHONE, GOOGLEBOT, CHROME)
    ips = ("8.8.8.8", "81.2.69.160", "5.1.2.3", "8.8.8.9")
    for i in range(60):
        privacy = 2 if i % 10 == 9 else 0
        created = now - timedelta(hours=(i * 7) % 70, minutes=i % 50)
        rows.append(
            (
                privacy,
                {
                    "hostname": hosts[i % 2],
                    "ip_address": ips[i % 4],
                    "path": paths[i % 5].format(n=100 + i % 3),
                    "user_agent": agents[i % 4],
                    "method": "POST" if i % 5 == 4 else "GET",
                    "status": statuses[i % 8],
                    "response_time": 3 + (i * 37) % 400,
                    "user_id": f"user{i % 6}",
                    "created_at": created.isoformat(),
                },
            )
        )
    return rows


def ingest(stack, key: str, rows: list[tuple[int, dict]]) -> None:
    for level in (0, 1, 2):
        batch = [row for privacy, row in rows if privacy == level]
        if not batch:
            continue
        response = stack.client.post(
            "/api/log-request",
            json={
                "api_key": key,
                "framework": "FastAPI",
                "privacy_level": level,
                "requests": batch,
            },
        )
        assert response.status_code == 201, response.get_json()
    stack.process_jobs()


class Expected:
    """What the dashboard must show for `filters`, counted row by row from what was sent."""

    def __init__(self, rows: list[tuple[int, dict]], filters: Filters, since, until):
        self.filters = filters
        self.rows = []
        for privacy, row in rows:
            created = datetime.fromisoformat(row["created_at"])
            ts = created.timestamp()
            if ts >= until or (since is not None and ts < since):
                continue
            browser, os_family, device, is_bot = parse(row["user_agent"])
            ip = row["ip_address"] if privacy == 0 else None
            location = None if privacy == 2 else COUNTRY.get(row["ip_address"].rsplit(".", 1)[0])
            record = {
                **row,
                "ts": int(ts // 1),
                "browser": browser,
                "os": os_family,
                "device": device,
                "bot": is_bot,
                "location": location or "",
                "user": ip or row["user_id"] or "",
                "endpoint": endpoint_label(row["path"], filters.keep_params, filters.keep_ids),
            }
            if self._keep(record):
                self.rows.append(record)

    def _keep(self, r: dict) -> bool:
        f = self.filters
        if f.hostname and r["hostname"] != f.hostname:
            return False
        if f.exclude_404 and r["status"] == 404:
            return False
        if f.exclude_bots and r["bot"]:
            return False
        label = f"{r['method']} {r['endpoint']}"
        for pattern in f.hidden:
            if fnmatch.fnmatchcase(r["endpoint"], pattern) or fnmatch.fnmatchcase(label, pattern):
                return False
        for dim, value in f.clicks:
            if dim == "status" and str(r["status"]) != value:
                return False
            if dim == "status_class":
                low, high = status_class_range(value)
                if not low <= r["status"] < high:
                    return False
            if dim == "endpoint" and f"{r['method']} {r['endpoint']}" != value:
                return False
            if dim == "version" and api_version(r["path"]) != value:
                return False
            if dim in ("location", "browser", "os", "device", "user") and r[dim] != value:
                return False
        return True

    @property
    def requests(self) -> int:
        return len(self.rows)

    @property
    def success(self) -> int:
        return sum(1 for r in self.rows if r["status"] < 400)

    @property
    def users(self) -> int:
        return len({r["user"] for r in self.rows if r["user"]})

    def count(self, field: str) -> dict:
        return dict(Counter(r[field] for r in self.rows))

    def endpoints(self) -> dict:
        return dict(Counter(f"{r['method']} {r['endpoint']}" for r in self.rows))

    def users_per_bucket(self, step: int) -> dict:
        buckets: dict[int, set] = {}
        for r in self.rows:
            if r["user"]:
                buckets.setdefault(r["ts"] - r["ts"] % step, set()).add(r["user"])
        return {bucket: len(users) for bucket, users in buckets.items()}

    def response_times(self) -> list[int]:
        return [round(r["response_time"]) for r in self.rows]

    def response_times_per_bucket(self, step: int) -> dict[int, list[int]]:
        buckets: dict[int, list[int]] = {}
        for r in self.rows:
            buckets.setdefault(r["ts"] - r["ts"] % step, []).append(round(r["response_time"]))
        return buckets

    def top_users(self) -> dict:
        return dict(Counter(r["user"] for r in self.rows if r["user"]))

    def latest_location(self, user: str) -> str:
        return max((r["ts"], r["location"]) for r in self.rows if r["user"] == user)[1]

    def versions(self) -> dict:
        """Requests per API version of the raw path; '' counts those without one."""
        return dict(Counter(api_version(r["path"]) for r in self.rows))


def find_component(tree, component_id: str):
    """The component with this id anywhere in a rendered Dash tree (or None)."""
    if isinstance(tree, dict):
        if tree.get("props", {}).get("id") == component_id:
            return tree
        for value in tree.values():
            found = find_component(value, component_id)
            if found is not None:
                return found
    elif isinstance(tree, list):
        for item in tree:
            found = find_component(item, component_id)
            if found is not None:
                return found
    return None


class AsFigures:
    """dash_app.figures with each chart (a plain dict, what Dash sends) read back as a
    plotly Figure, for attribute access; a Figure passed in goes back as its dict."""

    def __init__(self, module):
        self._module = module

    def __getattr__(self, name):
        import plotly.graph_objects as go

        value = getattr(self._module, name)
        if not (callable(value) and name[0].islower()):
            return value

        def call(*args, **kwargs):
            args = [a.to_plotly_json() if isinstance(a, go.Figure) else a for a in args]
            return go.Figure(value(*args, **kwargs))

        return call
