"""The settings page's usage section: pick a month, a grouping and a format, and download
exactly what GET /api/usage answers (server.usage.export), the session authenticating it."""

from __future__ import annotations

from dash import html
from flask import Response, flash, redirect, request

from dash_app import forms
from server.db import utcnow
from server.usage import export as usage_export
from server.usage import store as usage_store


def usage_section(form) -> html.Section:
    """The section, its form posted through the settings page's `form` helper."""
    return html.Section(
        [
            html.H3("Usage"),
            html.P(
                "Requests per consumer, route or status class in a month, exactly as "
                "GET /api/usage answers. A month is final an hour after it ends: the same "
                "file every time; rows that arrive later for it are listed as late."
            ),
            form(
                "usage",
                _select("Month", "month", _months(), "usage-month"),
                _select("Group by", "group_by", USAGE_GROUPS, "usage-group"),
                _select("Format", "format", [("csv", "CSV"), ("json", "JSON")], "usage-format"),
                html.Button("Download", type="submit", className="button", id="usage-download"),
                form_id="form-usage",
            ),
        ],
        className="panel wide settings-section",
    )


USAGE_GROUPS = [("consumer", "Consumer"), ("route", "Route"), ("status_class", "Status class")]
USAGE_MONTHS = 13  # this month (live) and the twelve before it


def _months(now=None) -> list[tuple[str, str]]:
    """(YYYY-MM, label) of this month and the twelve before it, newest first."""
    now = now or utcnow()
    year, month, found = now.year, now.month, []
    for i in range(USAGE_MONTHS):
        value = f"{year:04d}-{month:02d}"
        found.append((value, f"{value} (so far)" if i == 0 else value))
        year, month = (year - 1, 12) if month == 1 else (year, month - 1)
    return found


def _select(label: str, name: str, options, select_id: str) -> html.Label:
    return html.Label(
        [
            html.Span(label),
            html.Select(
                [html.Option(text, value=value) for value, text in options], name=name, id=select_id
            ),  # fmt: skip
        ],
        className="field",
    )


def download_usage(key_id: int) -> Response:
    """The usage form's answer: the file GET /api/usage would answer, byte for byte
    (server.usage.export), saved by the browser; the session authenticates it, so no key
    rides in any URL. Bad fields come back to the page as a message."""
    month = request.form.get("month", "")
    group_by = request.form.get("group_by", "")
    form = request.form.get("format", "")
    if form not in ("csv", "json"):
        flash("Pick CSV or JSON.", "error")
        return redirect("settings", code=303)
    if len(month) != 7:
        flash("month must be YYYY-MM, such as 2026-11.", "error")
        return redirect("settings", code=303)
    try:
        found = usage_store.usage(key_id, month, group_by).as_dict()
    except usage_store.MonthError as exc:
        flash(f"Usage: {exc}", "error")
        return redirect("settings", code=303)
    body = usage_export.as_csv(found) if form == "csv" else usage_export.as_json(found)
    name = usage_export.file_name(found, form)
    return Response(
        body,
        mimetype="text/csv" if form == "csv" else "application/json",
        headers={
            "Content-Disposition": f'attachment; filename="{name}"',
            "X-Usage-Final": str(found["final"]).lower(),
            "Cache-Control": "no-store",
        },
    )


# The settings page's forms all post to dash_app.forms, one action each: this is the
# usage download's.
forms.ACTIONS["usage"] = download_usage
