"""The dashboards' Altair charts (pure: DataFrame in, chart out; Streamlit draws them).

Every chart has tooltips with exact values, and an empty frame still draws its axes, so a
filter that selects nothing shows an empty chart (the page adds the note)."""

from __future__ import annotations

from collections.abc import Sequence

import altair as alt
import pandas as pd

HEIGHT = 260
STATE_COLOURS = {"success": "#2e7d32", "pass": "#2e7d32", "failed": "#c62828",
                 "error": "#c62828", "fail": "#c62828", "running": "#1565c0",
                 "up_for_retry": "#f9a825", "warn": "#f9a825", "no data": "#9e9e9e"}


#: time unit of a series -> (tick interval, label format): one tick per day or hour
TIME_STEPS = {"yearmonthdate": ("day", "%b %d"), "yearmonthdatehours": ("hour", "%b %d %H:%M")}


def _scale(values: Sequence[str]) -> alt.Scale:
    domain = [v for v in STATE_COLOURS if v in set(values)] or list(STATE_COLOURS)
    return alt.Scale(domain=domain, range=[STATE_COLOURS[v] for v in domain])


def over_time(frame: pd.DataFrame, x: str, y: str, colour: str | None, *, title: str,
              y_title: str, mark: str = "line", y_format: str = ",.0f",
              x_title: str = "", stack: bool = True, time_unit: str = "yearmonthdate"
              ) -> alt.Chart:
    """A measure over time, one series per `colour` value (a line, a stacked bar or area)."""
    base = alt.Chart(frame, title=title, height=HEIGHT)
    marks = {"line": base.mark_line(point=True), "bar": base.mark_bar(),
             "area": base.mark_area(opacity=0.85)}
    step = TIME_STEPS.get(time_unit)
    axis = alt.Axis(format=step[1], tickCount=step[0], labelOverlap="greedy") \
        if step else alt.Axis()
    x_enc = alt.X(f"{x}:T", title=x_title or None, timeUnit=time_unit, axis=axis)
    y_enc = alt.Y(f"{y}:Q", title=y_title, axis=alt.Axis(format=y_format),
                  stack="zero" if stack and mark != "line" else None)
    tooltip = [alt.Tooltip(f"{x}:T", title=x_title or x, timeUnit=time_unit),
               alt.Tooltip(f"{y}:Q", format=y_format)]
    encoding = {"x": x_enc, "y": y_enc, "tooltip": tooltip}
    if colour:
        encoding["color"] = alt.Color(f"{colour}:N", title=colour.replace("_", " "))
        tooltip.insert(1, alt.Tooltip(f"{colour}:N"))
    return marks[mark].encode(**encoding)


def bars(frame: pd.DataFrame, category: str, value: str, *, title: str, value_title: str,
         colour: str | None = None, value_format: str = ",.0f", horizontal: bool = True,
         sort: str | None = "-x", extra_tooltip: Sequence[str] = ()) -> alt.Chart:
    """One bar per `category` (optionally grouped by `colour`)."""
    cat = alt.Y(f"{category}:N", title=None, sort=sort, axis=alt.Axis(labelLimit=240)) \
        if horizontal else \
        alt.X(f"{category}:N", title=None, sort=sort, axis=alt.Axis(labelAngle=0))
    val = alt.X(f"{value}:Q", title=value_title, axis=alt.Axis(format=value_format)) \
        if horizontal else alt.Y(f"{value}:Q", title=value_title,
                                 axis=alt.Axis(format=value_format))
    tooltip = [alt.Tooltip(f"{category}:N"), alt.Tooltip(f"{value}:Q", format=value_format),
               *[alt.Tooltip(t) for t in extra_tooltip]]
    encoding = {"y": cat, "x": val} if horizontal else {"x": cat, "y": val}
    if colour:
        encoding["color"] = alt.Color(f"{colour}:N", title=colour.replace("_", " "))
        if horizontal:
            encoding["yOffset"] = alt.YOffset(f"{colour}:N")
        else:
            encoding["xOffset"] = alt.XOffset(f"{colour}:N")
        tooltip.insert(1, alt.Tooltip(f"{colour}:N"))
    bars_shown = frame[category].nunique() if horizontal and len(frame) else 0
    height = max(HEIGHT, 26 * bars_shown)  # room for every label
    return alt.Chart(frame, title=title, height=height).mark_bar().encode(
        **encoding, tooltip=tooltip)


def states(frame: pd.DataFrame, x: str, y: str, state: str, *, title: str,
           tooltip: Sequence[str] = (), height: int = HEIGHT) -> alt.Chart:
    """A grid of states (e.g. gate results per day and layer), coloured pass/fail."""
    return alt.Chart(frame, title=title, height=height).mark_rect(stroke="white").encode(
        x=alt.X(f"{x}:O", title=None), y=alt.Y(f"{y}:N", title=None),
        color=alt.Color(f"{state}:N", scale=_scale(frame[state].tolist() if len(frame) else [])),
        tooltip=[alt.Tooltip(f"{x}:O"), alt.Tooltip(f"{y}:N"), alt.Tooltip(f"{state}:N"),
                 *[alt.Tooltip(t) for t in tooltip]])


def timeline(frame: pd.DataFrame, start: str, end: str, task: str, state: str, *,
             title: str, tooltip: Sequence[str] = ()) -> alt.Chart:
    """Tasks as bars from start to end (a Gantt chart), coloured by state."""
    height = max(HEIGHT, 16 * frame[task].nunique()) if len(frame) else HEIGHT
    return alt.Chart(frame, title=title, height=height).mark_bar().encode(
        x=alt.X(f"{start}:T", title=None), x2=f"{end}:T",
        y=alt.Y(f"{task}:N", title=None, sort=alt.EncodingSortField(start, op="min"),
                axis=alt.Axis(labelLimit=360)),
        color=alt.Color(f"{state}:N",
                        scale=_scale(frame[state].tolist() if len(frame) else [])),
        tooltip=[alt.Tooltip(f"{task}:N"), alt.Tooltip(f"{state}:N"),
                 *[alt.Tooltip(t) for t in tooltip]])


def with_limit(chart: alt.Chart, value: float, label: str) -> alt.LayerChart:
    """`chart` with a dashed horizontal rule at `value` (a threshold)."""
    rule = alt.Chart(pd.DataFrame({"limit": [value], "label": [label]})).mark_rule(
        strokeDash=[6, 4], color="#c62828").encode(
        y="limit:Q", tooltip=[alt.Tooltip("label:N"), alt.Tooltip("limit:Q", format=".2%")])
    return alt.layer(chart, rule)


def windows(frame: pd.DataFrame, start: str, end: str, y: str, colour: str, *, title: str,
            y_title: str, y_format: str = ",.0f") -> alt.Chart:
    """Stacked bars, each exactly as wide as its time window (readable with one window):
    rectangles from the window's start to its end, stacked by `colour`."""
    return alt.Chart(frame, title=title, height=HEIGHT).transform_stack(
        stack=y, groupby=[start], sort=[alt.SortField(colour)], as_=["_bottom", "_top"],
    ).mark_rect(stroke="white", strokeWidth=0.5).encode(
        x=alt.X(f"{start}:T", title=None, axis=alt.Axis(format="%H:%M")), x2=f"{end}:T",
        y=alt.Y("_bottom:Q", title=y_title, axis=alt.Axis(format=y_format)), y2="_top:Q",
        color=alt.Color(f"{colour}:N", title=colour.replace("_", " ")),
        tooltip=[alt.Tooltip(f"{start}:T", title="window", format="%Y-%m-%d %H:%M"),
                 alt.Tooltip(f"{colour}:N"), alt.Tooltip(f"{y}:Q", format=y_format)])
