"""A usage answer (server.usage.store.Usage.as_dict) as the bytes handed out: JSON and
CSV, the same for the API (GET /api/usage), the settings page's download and the
month-closed webhook, so all three say exactly the same thing."""

from __future__ import annotations

import csv
import io
import json
from datetime import datetime


def file_name(found: dict, extension: str) -> str:
    return f"usage-{found['month']}-{found['group_by']}.{extension}"


def as_json(found: dict) -> str:
    """Compact JSON, keys sorted, times in ISO 8601 (what the API always answered)."""
    return json.dumps(found, sort_keys=True, separators=(",", ":"), default=_iso) + "\n"


def _iso(value):
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not JSON")


def as_csv(found: dict) -> str:
    """One line per name: name, requests, errors, and `late` true for the rows that came
    after the month was frozen (counted apart, never added)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow([found["group_by"], "requests", "errors", "late"])
    for late, rows in ((False, found["rows"]), (True, found["late"]["rows"])):
        for r in rows:
            writer.writerow([r["name"] or "", r["requests"], r["errors"], str(late).lower()])
    return out.getvalue()
