"""The report's charts, drawn by Plotly: the figures are built here with ``plotly``'s graph
objects and drawn in the page by plotly.js, which the ``plotly`` wheel ships and the page
inlines (nothing is fetched when the report is opened). Histograms come pre-binned (20 counts,
not a number per latent) and big scatter plots use WebGL, so a 10,000-latent report stays small
and draws fast."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import plotly.graph_objects as go
from plotly.offline import get_plotlyjs

SHOWN_PAIRS = 6
"""Scorer-vs-scorer scatter plots drawn at most (the first pairs, in scorer order)."""
WEBGL_POINTS = 2000
"""A scatter plot of more points than this is drawn with WebGL (``scattergl``)."""
_BINS = 20
_HEIGHT = 300
_MARGIN = {"l": 50, "r": 20, "t": 50, "b": 45}


def plotly_js() -> str:
    """plotly.js, minified, as the installed ``plotly`` package ships it."""
    return get_plotlyjs()


def _figure_json(figure: go.Figure) -> dict[str, Any]:
    text = figure.to_json()
    assert text is not None  # to_json returns None only when writing to a file
    loaded: dict[str, Any] = json.loads(text)
    return loaded


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def _bins(values: np.ndarray, low: float, high: float, count: int = _BINS) -> np.ndarray:
    """``count`` equal bins over [low, high] (one around ``low`` when the range is empty)."""
    if not high > low:
        high = low + 1.0
    return np.linspace(low, high, count + 1)


def _bars(values: np.ndarray, edges: np.ndarray, **trace: Any) -> go.Bar:
    """``values`` counted into the bins ``edges`` as a bar chart: the histogram pre-binned
    here, so the page carries 20 counts instead of one number per latent."""
    counts, _ = np.histogram(values, bins=edges)
    lows, highs = edges[:-1], edges[1:]
    return go.Bar(
        x=(lows + highs) / 2,
        y=counts,
        width=highs - lows,
        customdata=np.stack([lows, highs], axis=1),
        hovertemplate="[%{customdata[0]:.3f}, %{customdata[1]:.3f}): %{y} latents"
        "<extra>%{fullData.name}</extra>",
        **trace,
    )


def score_histogram(scorer: dict[str, Any], scores: list[float]) -> dict[str, Any]:
    """One scorer's scores, with its chance level marked (the mean over features when it
    varies, as the intruder scorer's does)."""
    # Bins over the metric's range (correlations reach -1; the others start at 0).
    values = np.asarray(scores, dtype=float)
    low = -1.0 if min(scores, default=0.0) < 0 else 0.0
    high = max(1.0, max(scores, default=1.0))
    figure = go.Figure(
        _bars(values, _bins(values, low, high), marker_color="#4c78a8", name=scorer["method"])
    )
    chance = scorer.get("chance")
    if chance is not None:
        label = "chance (mean)" if scorer.get("chanceVaries") else "chance"
        figure.add_vline(
            x=chance,
            line_dash="dash",
            line_color="#e45756",
            annotation_text=f"{label} {chance:.3g}",
            annotation_position="top",
        )
    figure.update_layout(
        title=f"{scorer['method']}: {scorer['metric'] or 'score'} "
        f"(n={scorer['n']}, mean {_fmt(scorer['mean'])})",
        xaxis_title=scorer["metric"] or "score",
        xaxis_range=[low, high],
        yaxis_title="latents",
        height=_HEIGHT,
        margin=_MARGIN,
        bargap=0.05,
    )
    return _figure_json(figure)


def width_histogram(widths: dict[str, list[float]]) -> dict[str, Any] | None:
    """The 95% intervals' widths, one overlaid histogram per scorer (the same bins for all);
    None when no score has an interval."""
    shown = {method: np.asarray(values, dtype=float) for method, values in widths.items() if values}
    if not shown:
        return None
    everything = np.concatenate(list(shown.values()))
    edges = _bins(everything, float(everything.min()), float(everything.max()))
    figure = go.Figure(
        [_bars(values, edges, name=method, opacity=0.6) for method, values in shown.items()]
    )
    figure.update_layout(
        title="95% interval widths",
        xaxis_title="upper - lower",
        yaxis_title="latents",
        barmode="overlay",
        height=_HEIGHT,
        margin=_MARGIN,
    )
    return _figure_json(figure)


def pair_scatter(pair: dict[str, Any]) -> dict[str, Any]:
    """One scorer against another, a point per latent, titled with Spearman's rho; WebGL
    (``scattergl``) past :data:`WEBGL_POINTS` points (the page falls back to SVG where the
    browser has no WebGL)."""
    rho = pair["rho"]
    shown_rho = "undefined" if rho is None else f"{rho:.3f}"
    trace = go.Scattergl if len(pair["xs"]) > WEBGL_POINTS else go.Scatter
    figure = go.Figure(
        trace(
            # float32: plotly writes numpy arrays as base64 typed arrays, 4 bytes a point.
            x=np.asarray(pair["xs"], dtype=np.float32),
            y=np.asarray(pair["ys"], dtype=np.float32),
            text=pair["ids"],
            mode="markers",
            marker={
                "size": 6 if len(pair["xs"]) <= WEBGL_POINTS else 4,
                "opacity": 0.6,
                "color": "#4c78a8",
            },
            hovertemplate="%{text}<br>%{x:.3f}, %{y:.3f}<extra></extra>",
        )
    )
    figure.update_layout(
        title=f"{pair['x']} vs {pair['y']}: Spearman \u03c1 = {shown_rho} (n={pair['n']})",
        xaxis_title=pair["x"],
        yaxis_title=pair["y"],
        height=_HEIGHT + 60,
        margin=_MARGIN,
    )
    return _figure_json(figure)


def figures(data: dict[str, Any]) -> list[dict[str, Any]]:
    """Every chart of the report, in page order, each ``{"id", "figure"}``."""
    charts = [
        {"id": f"hist-{i}", "figure": score_histogram(scorer, data["scores"][scorer["method"]])}
        for i, scorer in enumerate(data["scorers"])
        if scorer["n"]
    ]
    widths = width_histogram(data["widths"])
    if widths is not None:
        charts.append({"id": "widths", "figure": widths})
    charts += [
        {"id": f"pair-{i}", "figure": pair_scatter(pair)}
        for i, pair in enumerate(data["correlations"][:SHOWN_PAIRS])
    ]
    return charts
