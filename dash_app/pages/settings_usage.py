"""The settings page's usage section: pick a month, a grouping and a format, and download
exactly what GET /api/usage answers (server.usage.export), the session authenticating it;
and set the webhook told when a month closes (server.usage.closing)."""

from __future__ import annotations

from dash import dcc, html
from flask import Response, current_app, flash, redirect, request

from dash_app import forms
from server.csrf import new_csrf_token
from server.db import get_engine, utcnow
from server.usage import closing
from server.usage import export as usage_export
from server.usage import store as usage_store


def usage_section(form, key_id: int) -> html.Section:
    """The section, its forms posted through the settings page's `form` helper."""
    with get_engine().connect() as conn:
        hook = closing.get_webhook(conn, key_id)
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
            html.H4("When a month closes"),
            html.P(
                "Optional: a URL told once each month closes, with that month's usage by "
                "consumer, route and status class as JSON, signed like alert webhooks "
                "(X-Signature: sha256 HMAC of the body; the secret is shown once when you save)."
            ),
            form(
                "usage_webhook",
                html.Label(
                    [
                        html.Span("Webhook URL"),
                        dcc.Input(
                            name="url",
                            type="url",
                            maxLength=2048,
                            id="usage-webhook-url",
                            placeholder="https://billing.example.com/hooks/usage",
                            style={"width": "360px"},
                        ),  # fmt: skip
                    ],
                    className="field",
                ),
                html.Button("Save", type="submit", className="button", id="usage-webhook-save"),
                form_id="form-usage-webhook",
            ),
            _webhook_state(hook, form),
        ],
        className="panel wide settings-section",
    )


def _webhook_state(hook: dict | None, form) -> html.Div:
    if hook is None:
        return html.P("No webhook set.", className="muted", id="usage-webhook")
    told = [
        html.Li(
            f"{n['month']}: {n['status']}" + (f" ({n['last_error']})" if n["last_error"] else "")
        )  # fmt: skip
        for n in hook["notices"][:6]
    ]
    remove = form(
        "usage_webhook_delete",
        html.Button("Remove", type="submit", className="button", id="usage-webhook-remove"),
        form_id="form-usage-webhook-delete",
        class_name="inline-form",
    )
    return html.Div(
        [html.P(["Sends to ", html.Code(hook["url"]), " "]), remove,
         html.Ul(told) if told else html.P("No month has closed since.", className="muted")],
        id="usage-webhook",
    )  # fmt: skip


def set_webhook(key_id: int) -> Response:
    """The webhook form: checked as the API checks it; its secret shown once."""
    settings = current_app.config["SETTINGS"]
    try:
        with get_engine().begin() as conn:
            hook, secret = closing.set_webhook(conn, key_id, request.form.get("url"), settings)
    except closing.WebhookInputError as exc:
        flash(f"No webhook was set: {exc}", "error")
        return redirect("settings", code=303)
    new_csrf_token()
    return forms.reveal(
        title="Your usage webhook's signing secret",
        secret=secret,
        note=f"Each closed month is POSTed to {hook['url']} with X-Signature: sha256=<hex "
        "HMAC-SHA256 of the body with this secret>. Copy it now: it is shown once.",
        snippet=False,
        back=("Back to settings", "settings"),
    )


def delete_webhook(key_id: int) -> Response:
    with get_engine().begin() as conn:
        removed = closing.delete_webhook(conn, key_id)
    flash("Webhook removed." if removed else "No webhook was set.", "done")
    return redirect("settings", code=303)


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
# usage section's.
forms.ACTIONS["usage"] = download_usage
forms.ACTIONS["usage_webhook"] = set_webhook
forms.ACTIONS["usage_webhook_delete"] = delete_webhook
