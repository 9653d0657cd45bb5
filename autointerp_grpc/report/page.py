"""The report page: one self-contained HTML file (styles, scripts, data and plotly.js inline;
no font, script or style is fetched when it is opened, so it works from a file, offline).

What the page shows first travels as one small JSON document (``report-data``: the summary,
the scorers, the failures and the latent table as columns); the page's script draws the
summary and the first page of the table from it before the browser has even read the rest of
the file. Then come the charts (pre-binned, drawn one at a time after the first paint) and,
last, every latent's card data (``report-cards``: its results line and its records, one JSON
line per latent, gzip-compressed and base64-encoded), which the page unpacks with the
browser's own ``DecompressionStream`` once the charts are drawn or a card is opened. Every
text is set with ``textContent`` (explanations and tokens are model output and input text:
never parsed as HTML).
"""

from __future__ import annotations

import base64
import gzip
import html
import json
import re
from importlib import resources
from typing import Any

from autointerp_grpc.report.charts import figures, plotly_js
from autointerp_grpc.report.data import to_script_json

_ASSETS = resources.files("autointerp_grpc.report") / "assets"
_COMPRESSION = 3
"""gzip level of the cards' data. At 10,000 latents (51 MB of JSON lines) level 3 takes 0.4 s
for 7.3 MB where level 6 takes 1.1 s for 6.0 MB and level 1 0.3 s for 8.7 MB."""


def _asset(name: str) -> str:
    return (_ASSETS / name).read_text(encoding="utf-8")


def pack_cards(data: dict[str, Any]) -> str:
    """Every latent's card data, in table order, as the page carries it: one JSON line per
    latent (``{"latent": its results line, "records": its records or null}``), gzipped, in
    base64 (no ``<`` can end the script element early)."""
    records = data["records"]
    lines = "\n".join(
        json.dumps(
            {"latent": latent, "records": records.get(latent["id"])},
            ensure_ascii=False,
            allow_nan=False,
            separators=(",", ":"),
        )
        for latent in data["latents"]
    )
    packed = gzip.compress(lines.encode("utf-8"), compresslevel=_COMPRESSION, mtime=0)
    return base64.b64encode(packed).decode("ascii")


def render_page(data: dict[str, Any], title: str = "autointerp report") -> str:
    """The report page for ``data`` (:func:`autointerp_grpc.report.data.report_data`)."""
    charts = figures(data)
    shown = {
        key: data[key]
        for key in ("source", "input", "summary", "scorers", "failures", "withRecords")
    }
    # The scatter plots carry the pairs' points; the page needs only each pair's rho.
    shown["correlations"] = [
        {k: pair[k] for k in ("x", "y", "n", "rho")} for pair in data["correlations"]
    ]
    shown["table"] = data["table"]
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
        cards=pack_cards(data),
    )


def _script(page: str, element_id: str) -> str:
    found = re.search(rf'<script type="[^"]+" id="{element_id}">(.*?)</script>', page, re.DOTALL)
    if found is None:
        raise ValueError(f"no {element_id} in the page")
    return found.group(1)


def page_data(page: str) -> dict[str, Any]:
    """What a rendered page carries, read back (for tests and tools): its ``report-data``
    document, its figures as ``"figures"`` and its cards unpacked as ``"cards"`` (one
    ``{"latent", "records"}`` per latent, in table order)."""
    data: dict[str, Any] = json.loads(_script(page, "report-data"))
    data["figures"] = json.loads(_script(page, "report-figures"))
    packed = gzip.decompress(base64.b64decode(_script(page, "report-cards")))
    data["cards"] = [json.loads(line) for line in packed.decode("utf-8").split("\n") if line]
    return data
