"""DataFrame -> Figure: one function per chart, each saying so when it has nothing to draw.

Clickable traces carry the value to filter by in `customdata`, so the page's click
handler never has to parse labels.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from dash_app.countries import iso3, name_of

ACCENT = "#3b6fd8"
GOOD = "#2e9e62"
BAD = "#d64545"
MUTED = "#8a94a6"
CLASS_COLOURS = {"1xx": MUTED, "2xx": GOOD, "3xx": "#4aa3c7", "4xx": "#e8a33d", "5xx": BAD}
HEIGHT = 260


def _layout(fig: go.Figure, height: int = HEIGHT, **extra) -> go.Figure:
    settings = {
        "template": "plotly_white",
        "height": height,
        "margin": {"l": 8, "r": 8, "t": 8, "b": 8},
        "showlegend": False,
        "font": {"size": 12},
        "hoverlabel": {"namelength": -1},
    }
    fig.update_layout(**{**settings, **extra})
    return fig


def empty_figure(message: str = "No requests in this period", height: int = HEIGHT) -> go.Figure:
    """No axes, just the message: an empty period should say so."""
    fig = go.Figure()
    fig.add_annotation(
        text=message, showarrow=False, font={"size": 14, "color": MUTED}, x=0.5, y=0.5
    )
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False)
    return _layout(fig, height)


def bars(
    df: pd.DataFrame,
    label: str,
    value: str = "n",
    *,
    horizontal: bool = True,
    colour: str = ACCENT,
    filter_values: pd.Series | None = None,
    height: int = HEIGHT,
) -> go.Figure:
    """A bar per row; `filter_values` (defaults to the labels) go to customdata for clicks."""
    if df.empty or not df[value].sum():
        return empty_figure(height=height)
    labels = df[label].astype(str)
    custom = (filter_values if filter_values is not None else df[label]).astype(str)
    if horizontal:
        trace = go.Bar(
            x=df[value],
            y=labels,
            orientation="h",
            customdata=custom,
            marker_color=colour,
            hovertemplate="%{y}: %{x:,}<extra></extra>",
        )
        fig = go.Figure(trace)
        fig.update_yaxes(autorange="reversed", automargin=True)
    else:
        trace = go.Bar(
            x=labels,
            y=df[value],
            customdata=custom,
            marker_color=colour,
            hovertemplate="%{x}: %{y:,}<extra></extra>",
        )
        fig = go.Figure(trace)
    return _layout(fig, height)


def status_codes(df: pd.DataFrame) -> go.Figure:
    if df.empty:
        return empty_figure()
    fig = go.Figure(
        go.Bar(
            x=df["status"].astype(str),
            y=df["n"],
            customdata=df["status"].astype(str),
            marker_color=[CLASS_COLOURS.get(c, MUTED) for c in df["class"]],
            hovertemplate="%{x}: %{y:,}<extra></extra>",
        )
    )
    fig.update_xaxes(type="category")
    return _layout(fig)


def response_histogram(df: pd.DataFrame) -> go.Figure:
    """Requests per response-time bucket (from the rollups' log histogram)."""
    if df.empty or not df["n"].sum():
        return empty_figure()
    fig = go.Figure(
        go.Bar(
            x=df["label"],
            y=df["n"],
            marker_color=ACCENT,
            hovertemplate="%{x}: %{y:,}<extra></extra>",
        )
    )
    fig.update_xaxes(type="category", tickangle=-45)
    return _layout(fig)


def activity(df: pd.DataFrame) -> go.Figure:
    """Requests and users, p50/p95 response time and success rate over time, one row each."""
    if df.empty or not df["requests"].sum():
        return empty_figure(height=420)
    fig = make_subplots(
        rows=3,
        cols=1,
        shared_xaxes=True,
        vertical_spacing=0.06,
        row_heights=[0.45, 0.3, 0.25],
        subplot_titles=("Requests and users", "Response time (ms)", "Success rate (%)"),
    )
    fig.add_trace(
        go.Bar(x=df["time"], y=df["requests"], name="requests", marker_color=ACCENT), 1, 1
    )
    fig.add_trace(
        go.Scatter(
            x=df["time"], y=df["users"], name="users", mode="lines", line={"color": "#f08c2e"}
        ),
        1,
        1,
    )
    fig.add_trace(
        go.Scatter(x=df["time"], y=df["p50"], name="p50", mode="lines", line={"color": GOOD}),
        2,
        1,
    )
    fig.add_trace(
        go.Scatter(x=df["time"], y=df["p95"], name="p95", mode="lines", line={"color": BAD}),
        2,
        1,
    )
    fig.add_trace(
        go.Scatter(
            x=df["time"],
            y=df["success_rate"],
            name="success rate",
            mode="lines",
            line={"color": "#6b5bd6"},
            connectgaps=False,
        ),
        3,
        1,
    )
    fig.update_yaxes(rangemode="tozero")
    fig.update_layout(hovermode="x unified")
    return _layout(
        fig,
        420,
        showlegend=True,
        legend={"orientation": "h", "y": 1.12, "x": 1, "xanchor": "right"},
        margin={"l": 8, "r": 8, "t": 28, "b": 8},
    )


def world_map(df: pd.DataFrame) -> go.Figure:
    """A choropleth of requests per country (ISO 3166 alpha-2 in `value`)."""
    known = df[df["value"].map(lambda c: bool(iso3(c)))] if not df.empty else df
    if known.empty:
        return empty_figure("No locations in this period")
    fig = go.Figure(
        go.Choropleth(
            locations=known["value"].map(iso3),
            # A log scale, or the busiest country would leave every other one white.
            z=np.log10(known["n"].clip(lower=1)),
            text=known["value"].map(name_of) + ": " + known["n"].map("{:,}".format),
            customdata=known["value"],
            colorscale="Blues",
            marker_line_color="white",
            marker_line_width=0.5,
            showscale=False,
            hovertemplate="%{text}<extra></extra>",
        )
    )
    fig.update_geos(
        showframe=False,
        showcoastlines=False,
        projection_type="natural earth",
        lataxis_range=[-58, 85],
    )
    return _layout(fig, 300)


def pie(df: pd.DataFrame, label: str = "value", value: str = "n") -> go.Figure:
    if df.empty or not df[value].sum():
        return empty_figure()
    fig = go.Figure(
        go.Pie(
            labels=df[label].astype(str),
            values=df[value],
            customdata=df[label].astype(str),
            hole=0.5,
            textinfo="label+percent",
            sort=False,
        )
    )
    return _layout(fig)


def monitor_strip(df: pd.DataFrame) -> go.Figure:
    """Recent checks of one monitor as a strip of green (up) / red (down) cells."""
    if df.empty:
        return empty_figure("No checks yet", height=60)
    colours = [GOOD if up else BAD for up in df["up"]]
    fig = go.Figure(
        go.Bar(
            x=list(range(len(df))),
            y=[1] * len(df),
            marker_color=colours,
            customdata=df["detail"],
            hovertemplate="%{customdata}<extra></extra>",
        )
    )
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False)
    return _layout(fig, 60, bargap=0.15)


def monitor_response_times(df: pd.DataFrame) -> go.Figure:
    if df.empty or df["response_time"].isna().all():
        return empty_figure("No response times yet", height=180)
    fig = go.Figure(
        go.Scatter(
            x=df["created_at"],
            y=df["response_time"],
            mode="lines+markers",
            line={"color": ACCENT},
            marker={"size": 4},
            hovertemplate="%{x}: %{y} ms<extra></extra>",
        )
    )
    fig.update_yaxes(rangemode="tozero", title_text="ms")
    return _layout(fig, 180)
