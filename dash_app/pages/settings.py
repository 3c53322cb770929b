"""Settings of the signed-in key: its name, rotation, open sessions, share links, masking
patterns and deleting its data.

Each section is a plain HTML form posted to dash_app.forms (CSRF token included); this
module only draws them, with the messages the last action left (Flask's flash).
"""

from __future__ import annotations

from dash import dcc, html
from flask import get_flashed_messages

from dash_app.countries import name_of
from dash_app.pages.settings_usage import usage_section
from server.db import get_engine
from server.keys.api_keys import describe_key
from server.keys.sessions import list_sessions
from server.keys.shares import list_shares
from server.stats.filters import DIM_LABELS

STAMP = "%Y-%m-%d %H:%M UTC"


def layout(key_id: int) -> html.Div:
    from dash_app import post_form
    from dash_app.forms import MASK_FIELDS, masks_of
    from dash_app.session import current_session, lifetimes

    with get_engine().connect() as conn:
        about = describe_key(conn, key_id) or {}
        shares = list_shares(conn, key_id)
        this = current_session(conn)
        sessions = list_sessions(conn, key_id, lifetimes())
    masks = masks_of(key_id)
    messages = [
        html.Div(text, className="error" if kind == "error" else "done", id=f"settings-{kind}")
        for kind, text in get_flashed_messages(with_categories=True)
    ]

    def form(action: str, *children, form_id: str, class_name: str = "settings-form"):
        return post_form("/settings", [_hidden("action", action), *children], class_name, form_id)

    return html.Div(
        [
            html.H2("Settings"),
            *messages,
            _section(
                "Name",
                html.P("What you call this API; the header shows it."),
                form(
                    "name",
                    dcc.Input(
                        name="name",
                        value=about.get("name") or "",
                        placeholder="e.g. Shop API",
                        maxLength=100,
                        id="settings-name",
                        className="key-input",
                    ),
                    html.Button("Save", type="submit", className="button", id="settings-save"),
                    form_id="form-name",
                ),
            ),
            _section(
                "API key",
                _key_facts(about),
                form(
                    "rotate",
                    html.Button(
                        "Rotate the key", type="submit", className="button", id="settings-rotate"
                    ),
                    form_id="form-rotate",
                ),
                html.P(
                    "A new key is shown once. The current key keeps working for ingest only "
                    "for KEY_ROTATION_GRACE_HOURS (24 h by default), so you can redeploy your "
                    "middleware; this dashboard and the data API take only the new key at once.",
                    className="muted",
                ),
            ),
            _section(
                "Sessions",
                html.P(
                    "Browsers signed in to this key. A session ends when it signs out, after "
                    f"{lifetimes().idle.days} days without use, or {lifetimes().absolute.days} "
                    "days after its sign-in; end one here and it is signed out at once."
                ),
                _session_list(sessions, this.id if this else None, form),
            ),
            _section(
                "Share links",
                html.P(
                    "A read-only link to this key's overview and explorer, never the key or "
                    "these settings. Fix a hostname or filters its viewer cannot remove."
                ),
                form(
                    "share",
                    _field("Label", "label", "For the support team"),
                    _field("Hostname", "hostname", "api.example.com"),
                    _field("Status", "status", "500"),
                    _field("Status class", "status_class", "5xx"),
                    _field("Endpoint", "endpoint", "GET /v1/users/{id}"),
                    _field("Country", "location", "US"),
                    _field("Expires in days", "expires_days", "never", input_type="number"),
                    html.Button(
                        "Create a link", type="submit", className="button", id="share-create"
                    ),
                    form_id="form-share",
                    class_name="settings-form share-form",
                ),
                _share_list(shares, form),
            ),
            usage_section(form, key_id),
            _section(
                "Masking",
                html.P(
                    "Captured headers, query parameters and body fields whose lower-cased "
                    "name matches one of these regular expressions are stored as [masked], "
                    "on top of the defaults (authorization, cookies, password, token, card, "
                    f"...). Up to {MASK_FIELDS['limit']} patterns; they apply to requests "
                    "logged from now on."
                ),
                form(
                    "mask",
                    html.Label(
                        [
                            html.Span("Kind"),
                            html.Select(
                                [html.Option(k, value=k) for k in MASK_FIELDS["kinds"]],
                                name="kind",
                                id="mask-kind",
                            ),
                        ],
                        className="field",
                    ),
                    html.Label(
                        [
                            html.Span("Pattern"),
                            dcc.Input(
                                name="pattern",
                                placeholder="e.g. session|x-tenant-secret",
                                maxLength=200,
                                id="mask-pattern",
                                style={"width": "280px"},
                            ),
                        ],
                        className="field",
                    ),
                    html.Button("Add a pattern", type="submit", className="button", id="mask-add"),
                    form_id="form-mask",
                ),
                _mask_list(masks, form),
            ),
            _section(
                "Delete all data",
                html.P(
                    "Deletes every request, monitor and share link of this key, and the key "
                    "itself. It cannot be undone."
                ),
                form(
                    "delete",
                    dcc.Input(
                        name="confirm",
                        placeholder="type DELETE",
                        autoComplete="off",
                        id="settings-confirm",
                        className="key-input",
                    ),
                    html.Button(
                        "Delete everything",
                        type="submit",
                        className="button danger",
                        id="settings-delete",
                    ),
                    form_id="form-delete",
                ),
            ),
        ],
        className="settings",
    )


def _hidden(name: str, value) -> dcc.Input:
    return dcc.Input(type="hidden", name=name, value=str(value))


def _section(title: str, *children) -> html.Section:
    return html.Section([html.H3(title), *children], className="panel wide settings-section")


def _field(label: str, name: str, placeholder: str, input_type: str = "text") -> html.Label:
    return html.Label(
        [
            html.Span(label),
            dcc.Input(
                name=name,
                type=input_type,
                placeholder=placeholder,
                id=f"share-{name}",
                min=1,
                # As wide as its example (a fixed 112 px cut "For the support team" short).
                style={"width": f"{max(len(placeholder), 6) + 4}ch"},
            ),
        ],
        className="field",
    )


def _key_facts(about: dict) -> html.Ul:
    def stamp(value):
        return value.strftime(STAMP) if value else "never"

    until = (about.get("rotation") or {}).get("previous_key_valid_until")
    rotation = (
        f"the previous key works for ingest only until {stamp(until)}"
        if until
        else "no previous key in use"
    )
    return html.Ul(
        [
            html.Li(f"Created {stamp(about.get('created_at'))}"),
            html.Li(f"Last used {stamp(about.get('last_used_at'))}"),
            html.Li(f"Rotation: {rotation}", id="settings-rotation"),
        ],
        className="facts",
    )


def _row_button(form, action: str, field: str, item_id: int, label: str) -> html.Form:
    """A one-button form acting on one row: revoke a link, delete a pattern."""
    button = html.Button(label, type="submit", className="button", id=f"{action}-{item_id}")
    return form(
        action,
        _hidden(field, item_id),
        button,
        form_id=f"form-{action}-{item_id}",
        class_name="inline-form",
    )


def _session_list(sessions: list[dict], this_id: int | None, form) -> html.Div:
    rows = []
    for found in sessions:
        mine = found["id"] == this_id
        agent = found["user_agent"] or "unknown browser"
        rows.append(
            html.Tr(
                [
                    html.Td(
                        [agent, html.Span(" this browser", className="badge")] if mine else agent,
                        title=agent,
                        className="agent",
                    ),  # fmt: skip
                    html.Td(found["created_at"].strftime(STAMP)),
                    html.Td(found["last_seen_at"].strftime(STAMP)),
                    html.Td(found["expires_at"].strftime(STAMP)),
                    html.Td(
                        _row_button(
                            form,
                            "end_session",
                            "session_id",
                            found["id"],
                            "Sign out" if mine else "End",
                        )  # fmt: skip
                    ),
                ],
                id=f"session-row-{found['id']}",
            )
        )
    head = html.Tr([html.Th(t) for t in ("Browser", "Signed in", "Last seen", "Ends", "")])
    table = html.Table([html.Thead(head), html.Tbody(rows)], className="share-list",
                       id="session-list")  # fmt: skip
    others = form(
        "end_sessions",
        html.Button(
            "End every other session", type="submit", className="button", id="sessions-end-others"
        ),  # fmt: skip
        form_id="form-end-sessions",
    )
    return html.Div([table, others] if len(sessions) > 1 else [table])


def _mask_list(masks: list[dict], form) -> html.Div:
    if not masks:
        return html.P("No patterns of your own yet.", className="muted", id="mask-list")
    rows = [
        html.Tr(
            [
                html.Td(mask["kind"]),
                html.Td(html.Code(mask["pattern"])),
                html.Td(mask["created_at"].strftime(STAMP)),
                html.Td(_row_button(form, "unmask", "mask_id", mask["id"], "Delete")),
            ],
            id=f"mask-row-{mask['id']}",
        )
        for mask in masks
    ]
    head = html.Tr([html.Th(t) for t in ("Kind", "Pattern", "Added", "")])
    return html.Table([html.Thead(head), html.Tbody(rows)], className="share-list", id="mask-list")


def restrictions(share: dict) -> str:
    parts = [f"Hostname: {share['hostname']}"] if share.get("hostname") else []
    for dim, value in sorted(share.get("filters", {}).items()):
        shown = name_of(value) if dim == "location" else value
        parts.append(f"{DIM_LABELS.get(dim, dim)}: {shown}")
    return ", ".join(parts) or "everything"


def _share_list(shares: list[dict], form) -> html.Div:
    if not shares:
        return html.P("No links yet.", className="muted", id="share-list")
    rows = []
    for share in shares:
        expires = share["expires_at"].strftime(STAMP) if share["expires_at"] else "never"
        action = (
            _row_button(form, "revoke", "share_id", share["id"], "Revoke")
            if share["state"] == "active"
            else html.Span(share["state"], className="badge")
        )
        rows.append(
            html.Tr(
                [
                    html.Td(share["label"] or "—"),
                    html.Td(restrictions(share)),
                    html.Td(share["created_at"].strftime(STAMP)),
                    html.Td(expires),
                    html.Td(action),
                ],
                id=f"share-row-{share['id']}",
                className=f"share-{share['state']}",
            )
        )
    head = html.Tr([html.Th(t) for t in ("Label", "Shows", "Created", "Expires", "")])
    return html.Table([html.Thead(head), html.Tbody(rows)], className="share-list", id="share-list")
