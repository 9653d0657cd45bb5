"""The report page: one self-contained HTML file (styles, scripts, data and plotly.js inline;
no font, script or style is fetched when it is opened, so it works from a file, offline).

The data travels as one JSON document in a ``<script type="application/json">`` element; the
page's script builds the summary, the tables and the cards from it with ``textContent`` only
(explanations and tokens are model output and input text: never parsed as HTML). The latent
table shows one page of rows at a time and cards are built when opened, so the page opens
fast at 10,000 latents.
"""

from __future__ import annotations

import html
from importlib import resources
from typing import Any

from autointerp_grpc.report.charts import figures, plotly_js
from autointerp_grpc.report.data import to_script_json

_ASSETS = resources.files("autointerp_grpc.report") / "assets"


def _asset(name: str) -> str:
    return (_ASSETS / name).read_text(encoding="utf-8")


def render_page(data: dict[str, Any], title: str = "autointerp report") -> str:
    """The report page for ``data`` (:func:`autointerp_grpc.report.data.report_data`)."""
    charts = figures(data)
    # The scatter plots carry the pairs' points; the page needs only each pair's rho.
    shown = dict(data)
    shown["correlations"] = [
        {k: pair[k] for k in ("x", "y", "n", "rho")} for pair in data["correlations"]
    ]
    for bulky in ("scores", "chances", "widths"):
        shown.pop(bulky)
    source = " · ".join(
        part
        for part in (
            f"results: {data['source']}" if data["source"] else "",
            f"records: {data['input']}" if data["input"] else "",
        )
        if part
    )
    return _asset("page.html").format(
        title=html.escape(title),
        source=html.escape(source),
        style=_asset("report.css"),
        data=to_script_json(shown),
        figures=to_script_json(charts),
        plotly=plotly_js(),
        script=_asset("report.js"),
    )
