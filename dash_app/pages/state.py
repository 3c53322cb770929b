"""What a page shows of its own state: panels computing (their numbers kept on screen,
dimmed) and, when a view cannot be computed, why, in plain words."""

from __future__ import annotations

from dash import dcc, html

from server.stats import EngineBusy

# While the panels compute, what they show stays on screen, dimmed, under a line saying so
# (dcc.Loading's default hides it behind a spinner); a fast answer (a cached view) shows
# no flicker.
STATE_STYLE = {"minHeight": "20px", "fontSize": "13px", "color": "#555", "margin": "4px 0"}
KEPT_STYLE = {"visibility": "visible", "opacity": 0.55}
COMPUTING_TEXT = "Computing this view…"
SHOW_AFTER_MS = 150


def kept_while_loading(*children) -> dcc.Loading:
    return dcc.Loading(
        list(children),
        overlay_style=KEPT_STYLE,
        custom_spinner=html.Span(COMPUTING_TEXT, className="computing", style=STATE_STYLE),
        delay_show=SHOW_AFTER_MS,
    )


def panel(title: str, *children, wide: bool = False, span: int = 1, extra=None) -> html.Section:
    """A titled card whose content stays visible (dimmed, 'Computing…' over it) while the
    panels' callback runs."""
    header = [html.H3(title)]
    if extra is not None:
        header.append(extra)
    return html.Section(
        [html.Div(header, className="panel-head"), kept_while_loading(*children)],
        className="panel wide" if wide else f"panel span{span}",
    )


def failure_text(exc: Exception) -> str:
    """Why the panels could not be computed, in plain words."""
    if isinstance(exc, EngineBusy):
        return str(exc)
    if type(exc).__name__ == "OutOfMemoryException":
        return (
            "This view needed more memory than the engine may use on this server "
            "(ENGINE_MEMORY_MB): a shorter period or a click filter may fit."
        )
    return "The panels could not be computed for this view: an error on the server (logged)."
