"""DataFrame -> Figure: one function per chart, each saying so when it has nothing to draw.

Clickable traces carry the value to filter by in `customdata`, so the page's click
handler never has to parse labels. Figures are the plain dicts Dash sends (`_figure`),
not `plotly.graph_objects.Figure`: Plotly's property validation cost ~50 ms a chart,
more than every query of a refresh together, and even unvalidated a Figure deep-copies
its template and traces (13.8 ms a chart against none, bench/README.md); the shared
template dict is never changed. `go.Figure(fig)` reads one as a Figure (the tests do).
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import pandas as pd

from dash_app.countries import iso3, name_of

ACCENT = "#3b6fd8"
GOOD = "#2e9e62"
BAD = "#d64545"
MUTED = "#8a94a6"
CLASS_COLOURS = {"1xx": MUTED, "2xx": GOOD, "3xx": "#4aa3c7", "4xx": "#e8a33d", "5xx": BAD}
HEIGHT = 260
ACTIVITY_HEIGHT = 420
MAP_HEIGHT = 300


@lru_cache(maxsize=1)
def _template() -> dict:
    """plotly_white's layout, and its defaults for the trace types we draw: the rest of
    it (defaults for 40 other trace types) was half of every overview answer's JSON."""
    import plotly.io as pio

    whole = pio.templates["plotly_white"].to_plotly_json()
    drawn = ("bar", "pie", "scatter", "choropleth")
    return {"layout": whole["layout"], "data": {t: whole["data"][t] for t in drawn}}


# Room for tick labels, set here because the overview's axes do without Plotly's
# automargin (the template turns it on): automargin draws a chart, measures its labels
# and draws it again, which made the overview's eleven charts take 1.5x as long to draw
# in Chromium (bench/figures.py --draw --ref).
NUMBER_ROOM = 44  # a value axis's labels: five characters at most ("9000", "250k", "1.5M")
TICK_ROOM = 24  # one row of labels below the plot
DATE_ROOM = 36  # date labels, the first of which carries the year on a second line
TITLE_ROOM = 24  # an axis title beside its labels
FIXED = {"automargin": False}


def _figure(traces: list[dict], height: int = HEIGHT, **layout) -> dict:
    settings = {
        "template": _template(),
        "height": height,
        "margin": {"l": 8, "r": 8, "t": 8, "b": 8},
        "showlegend": False,
        "font": {"size": 12},
        "hoverlabel": {"namelength": -1},
    }
    return {"data": traces, "layout": {**settings, **layout}}


def empty_figure(message: str = "No requests in this period", height: int = HEIGHT) -> dict:
    """No axes, just the message: an empty period should say so."""
    hidden = {"visible": False}
    note = {
        "text": message,
        "showarrow": False,
        "font": {"size": 14, "color": MUTED},
        "x": 0.5,
        "y": 0.5,
        "xref": "paper",
        "yref": "paper",
    }
    return _figure([], height, xaxis=hidden, yaxis=hidden, annotations=[note])


LABEL_PX = 6.6  # the width of an average character of the 12 px labels
MAX_LABEL_ROOM = 220


def label_room(labels: list[str]) -> int:
    """Pixels the longest of `labels` takes beside its axis (at most MAX_LABEL_ROOM; Plotly
    cuts nothing, a longer label runs under the card's edge as it would with automargin
    capped)."""
    longest = max((len(str(x)) for x in labels), default=0)
    return min(MAX_LABEL_ROOM, int(longest * LABEL_PX) + 16)


def _empty(df: pd.DataFrame, value: str) -> bool:
    return df.empty or not df[value].sum()


def bars(
    df: pd.DataFrame,
    label: str,
    value: str = "n",
    *,
    horizontal: bool = True,
    colour: str = ACCENT,
    filter_values: pd.Series | None = None,
    height: int = HEIGHT,
) -> dict:
    """A bar per row; `filter_values` (defaults to the labels) go to customdata for clicks."""
    if _empty(df, value):
        return empty_figure(height=height)
    labels = df[label].astype(str).tolist()
    custom = (filter_values if filter_values is not None else df[label]).astype(str).tolist()
    values = df[value].tolist()
    if horizontal:
        trace = {
            "type": "bar",
            "x": values,
            "y": labels,
            "orientation": "h",
            "customdata": custom,
            "marker": {"color": colour},
            "hovertemplate": "%{y}: %{x:,}<extra></extra>",
        }
        # The labels' room is set here, not by Plotly's automargin, which measures the
        # drawn labels and draws the chart again (bench/README.md: the browser's drawing).
        margin = {"l": label_room(labels), "r": 8, "t": 8, "b": TICK_ROOM}
        return _figure(
            [trace], height, xaxis=FIXED, yaxis={"autorange": "reversed", **FIXED}, margin=margin
        )
    trace = {
        "type": "bar",
        "x": labels,
        "y": values,
        "customdata": custom,
        "marker": {"color": colour},
        "hovertemplate": "%{x}: %{y:,}<extra></extra>",
    }
    return _columns(trace, labels, height)


def _columns(trace: dict, labels: list[str], height: int = HEIGHT) -> dict:
    """A chart of vertical bars over `labels` (categories), its tick labels' room set."""
    return _figure(
        [trace], height, xaxis={"type": "category", **FIXED}, yaxis=FIXED,
        margin={"l": NUMBER_ROOM, "t": 8, **category_room(labels)},
    )  # fmt: skip


ROW_OF_LABELS = 480  # pixels: wider than this, Plotly may turn category labels 30 degrees


def category_room(labels: list[str]) -> dict:
    """Room right of and below the plot for `labels` under a category axis: one row, or,
    when they would not fit side by side in a narrow card, the row Plotly turns by 30
    degrees (the last label then reaches past the plot's right edge) or 90."""
    if sum(len(str(x)) + 2 for x in labels) * LABEL_PX <= ROW_OF_LABELS:
        return {"r": 8, "b": TICK_ROOM}
    longest = label_room(labels) - 16
    return {"r": int(longest * 0.87) + 8, "b": longest + 8}


def status_codes(df: pd.DataFrame) -> dict:
    if _empty(df, "n"):
        return empty_figure()
    codes = df["status"].astype(str).tolist()
    trace = {
        "type": "bar",
        "x": codes,
        "y": df["n"].tolist(),
        "customdata": codes,
        "marker": {"color": [CLASS_COLOURS.get(c, MUTED) for c in df["class"]]},
        "hovertemplate": "%{x}: %{y:,}<extra></extra>",
    }
    return _columns(trace, codes)


def response_histogram(df: pd.DataFrame) -> dict:
    """Requests per response-time bucket (from the rollups' log histogram)."""
    if _empty(df, "n"):
        return empty_figure()
    trace = {
        "type": "bar",
        "x": df["label"].tolist(),
        "y": df["n"].tolist(),
        "marker": {"color": ACCENT},
        "hovertemplate": "%{x}: %{y:,}<extra></extra>",
    }
    # Up to 64 buckets: every label at once overlapped; at most 12 are named (each bar's
    # own range is in its hover).
    axis = {"type": "category", "tickangle": -45, "nticks": 12, **FIXED}
    # Labels at -45 degrees need about 0.71 of their length below the axis.
    below = int(label_room(trace["x"]) * 0.71) + 8
    margin = {"l": NUMBER_ROOM, "r": 8, "t": 8, "b": below}
    return _figure([trace], xaxis=axis, yaxis=FIXED, margin=margin)


def activity(df: pd.DataFrame) -> dict:
    """Requests and users, p50/p95 response time and success rate over time, one row each."""
    if _empty(df, "requests"):
        return empty_figure(height=ACTIVITY_HEIGHT)
    x = [t.isoformat() for t in df["time"]]

    def line(y, name, colour, axis):
        values = [None if v is None or v != v else v for v in y]  # NaN -> gap
        return {
            "type": "scatter",
            "mode": "lines",
            "x": x,
            "y": values,
            "name": name,
            "line": {"color": colour},
            "xaxis": "x",
            "yaxis": axis,
        }

    traces = [
        {
            "type": "bar",
            "x": x,
            "y": df["requests"].tolist(),
            "name": "requests",
            "marker": {"color": ACCENT},
            "xaxis": "x",
            "yaxis": "y",
        },
        line(df["users"].tolist(), "users", "#f08c2e", "y"),
        line(df["p50"].tolist(), "p50 ms", GOOD, "y2"),
        line(df["p95"].tolist(), "p95 ms", BAD, "y2"),
        line(df["success_rate"].tolist(), "success %", "#6b5bd6", "y3"),
    ]

    def axis(low, high, title):
        return {"domain": [low, high], "rangemode": "tozero", "title": {"text": title}, **FIXED}

    return _figure(
        traces,
        ACTIVITY_HEIGHT,
        showlegend=True,
        hovermode="x unified",
        legend={"orientation": "h", "y": 1.08, "x": 1, "xanchor": "right"},
        margin={"l": NUMBER_ROOM + TITLE_ROOM, "r": 8, "t": 28, "b": DATE_ROOM},
        xaxis={"type": "date", "anchor": "y3", **FIXED},
        yaxis=axis(0.5, 1.0, "requests / users"),
        yaxis2=axis(0.22, 0.46, "ms"),
        yaxis3={**axis(0.0, 0.18, "success %"), "range": [0, 100], "rangemode": "normal"},
    )


def world_map(df: pd.DataFrame) -> dict:
    """A choropleth of requests per country (ISO 3166 alpha-2 in `value`)."""
    known = df[df["value"].map(lambda c: bool(iso3(c)))] if not df.empty else df
    if known.empty:
        return empty_figure("No locations in this period")
    trace = {
        "type": "choropleth",
        "locations": known["value"].map(iso3).tolist(),
        # A log scale, or the busiest country would leave every other one white.
        "z": np.log10(known["n"].clip(lower=1)).tolist(),
        "text": (known["value"].map(name_of) + ": " + known["n"].map("{:,}".format)).tolist(),
        "customdata": known["value"].tolist(),
        "colorscale": "Blues",
        "reversescale": True,
        "marker": {"line": {"color": "white", "width": 0.5}},
        "showscale": False,
        "hovertemplate": "%{text}<extra></extra>",
    }
    geo = {
        "showframe": False,
        "showcoastlines": False,
        "showland": True,
        "landcolor": "#eef1f6",
        "showcountries": True,
        "countrycolor": "white",
        "projection": {"type": "natural earth"},
        "lataxis": {"range": [-58, 85]},
    }
    return _figure([trace], MAP_HEIGHT, geo=geo)


def pie(df: pd.DataFrame, label: str = "value", value: str = "n", unknown: str = "Unknown") -> dict:
    if _empty(df, value):
        return empty_figure()
    labels = df[label].astype(str).tolist()
    trace = {
        "type": "pie",
        "labels": [v or unknown for v in labels],
        "values": df[value].tolist(),
        "customdata": labels,
        "hole": 0.5,
        "textinfo": "label+percent",
        "sort": False,
    }
    return _figure([trace])


def monitor_strip(df: pd.DataFrame) -> dict:
    """Recent checks of one monitor as a strip of green (up) / red (down) cells."""
    if df.empty:
        return empty_figure("No checks yet", height=60)
    trace = {
        "type": "bar",
        "x": list(range(len(df))),
        "y": [1] * len(df),
        "marker": {"color": [GOOD if up else BAD for up in df["up"]]},
        "customdata": df["detail"].tolist(),
        "hovertemplate": "%{customdata}<extra></extra>",
    }
    hidden = {"visible": False}
    return _figure([trace], 60, xaxis=hidden, yaxis=hidden, bargap=0.15)


def monitor_response_times(df: pd.DataFrame) -> dict:
    if df.empty or df["response_time"].isna().all():
        return empty_figure("No response times yet", height=180)
    trace = {
        "type": "scatter",
        "mode": "lines+markers",
        "x": [t.isoformat() for t in df["created_at"]],
        "y": [None if v != v else v for v in df["response_time"].tolist()],
        "line": {"color": ACCENT},
        "marker": {"size": 4},
        "hovertemplate": "%{x}: %{y} ms<extra></extra>",
    }
    return _figure([trace], 180, yaxis={"rangemode": "tozero", "title": {"text": "ms"}})


SPARK_HEIGHT = 34


def sparkline(df: pd.DataFrame) -> dict:
    """An error group's occurrences per bucket ([time, n]), axis-free, for a table cell."""
    hidden = {"visible": False, "fixedrange": True}
    bare = {"margin": {"l": 0, "r": 0, "t": 2, "b": 0}, "paper_bgcolor": "rgba(0,0,0,0)",
            "plot_bgcolor": "rgba(0,0,0,0)", "xaxis": hidden, "yaxis": hidden}  # fmt: skip
    if df.empty:
        return _figure([], SPARK_HEIGHT, **bare)
    trace = {
        "type": "bar",
        "x": [t.isoformat() for t in df["time"]],
        "y": df["n"].tolist(),
        "marker": {"color": BAD},
        "hoverinfo": "skip",
    }
    return _figure([trace], SPARK_HEIGHT, bargap=0.15, **bare)


def trend_bars(df: pd.DataFrame, unit: str, height: int = 220) -> dict:
    """Occurrences per `unit` ("day" or "hour") over the period ([time, n])."""
    if _empty(df, "n"):
        return empty_figure("No occurrences in this period", height=height)
    stamp = "%Y-%m-%d" if unit == "day" else "%Y-%m-%d %H:00"
    trace = {
        "type": "bar",
        "x": [t.isoformat() for t in df["time"]],
        "y": df["n"].tolist(),
        "marker": {"color": BAD},
        "hovertemplate": f"%{{x|{stamp}}}: %{{y:,}}<extra></extra>",
    }
    return _figure([trace], height, xaxis={"type": "date"}, yaxis={"rangemode": "tozero"})


def budget_burn_down(points: list[tuple[float, float]], height: int = 200) -> dict:
    """An SLO's error budget left (percent) over its window: [(epoch second, percent)],
    from 100 at the window's start; below the zero line the budget is overspent."""
    if len(points) < 2:
        return empty_figure("No requests in the window", height=height)
    times = [pd.Timestamp(t, unit="s", tz="UTC").isoformat() for t, _ in points]
    left = [v for _, v in points]
    trace = {
        "type": "scatter",
        "mode": "lines",
        "line": {"color": ACCENT if left[-1] >= 0 else BAD, "shape": "hv"},
        "x": times,
        "y": left,
        "hovertemplate": "%{x|%Y-%m-%d %H:00}: %{y:.1f}% of the budget left<extra></extra>",
    }
    zero = {"type": "line", "xref": "paper", "x0": 0, "x1": 1, "y0": 0, "y1": 0,
            "line": {"color": BAD, "dash": "dot", "width": 1}}  # fmt: skip
    return _figure(
        [trace], height, xaxis={"type": "date"},
        yaxis={"ticksuffix": "%", "range": [min(0, min(left)) - 5, 105]}, shapes=[zero],
    )  # fmt: skip


DEPLOY_COLOUR = "#6b5bd6"


def deploy_markers(figure: dict, deploys: list[dict]) -> dict:
    """The figure with a dotted vertical line at each deploy ({time, version,
    description}) on every one of its panels (each y axis's own height, so the activity
    chart's requests, response-time and success-rate rows all carry it), its version on
    top and its description on hover. A new dict: `figure` is left as it was."""
    layout = figure["layout"]
    shapes, annotations = list(layout.get("shapes", ())), list(layout.get("annotations", ()))
    panels = _panels(figure)
    top = max(panels, key=lambda p: p[1])[0] if panels else "y"
    for deploy in deploys:
        at = deploy["time"].isoformat()
        for axis, _height in panels or [("y", 1)]:
            shapes.append({
                "type": "line", "x0": at, "x1": at, "xref": "x", "yref": f"{axis} domain",
                "y0": 0, "y1": 1, "line": {"color": DEPLOY_COLOUR, "dash": "dot", "width": 1},
            })  # fmt: skip
        annotations.append({
            "x": at, "xref": "x", "yref": f"{top} domain", "y": 1, "yanchor": "bottom",
            "showarrow": False, "text": deploy["version"],
            "font": {"size": 10, "color": DEPLOY_COLOUR},
            "hovertext": deploy.get("description") or deploy["version"],
        })  # fmt: skip
    return {**figure, "layout": {**layout, "shapes": shapes, "annotations": annotations}}


def _panels(figure: dict) -> list[tuple[str, float]]:
    """(y axis reference, top of its domain) of each panel the figure's traces draw on."""
    used = {t.get("yaxis") or "y" for t in figure["data"]}
    found = []
    for ref in sorted(used):
        axis = figure["layout"].get("yaxis" + ref[1:]) or {}
        domain = axis.get("domain") or (0, 1)
        found.append((ref, float(domain[1])))
    return found


def ingest_days(days: list[dict], height: int = 220) -> dict:
    """Rows accepted and refused per day ([{day, accepted, refused}]), stacked."""
    x = [d["day"] for d in days]
    traces = [
        {"type": "bar", "x": x, "y": [d["accepted"] for d in days], "name": "accepted",
         "marker": {"color": GOOD}},
        {"type": "bar", "x": x, "y": [d["refused"] for d in days], "name": "refused",
         "marker": {"color": BAD}},
    ]  # fmt: skip
    return _figure(
        traces, height, barmode="stack", showlegend=True, xaxis={"type": "date"},
        legend={"orientation": "h", "y": 1.1, "x": 1, "xanchor": "right"},
    )  # fmt: skip
