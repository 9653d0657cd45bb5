"""``autointerp report`` in a real browser: headless Chromium (driven over the DevTools
protocol, as the /docs test does) opens the report of the fixture run from a file and the
test checks the summary numbers, sorting, filtering, a latent card and the charts, that the
page fetched nothing, and keeps a screenshot.

The screenshot goes to ``$REPORT_ARTEFACTS`` (default: the test's tmp folder) as
``report.png`` and ``report-card.png``.
"""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path

import pytest
from report_run import BEST_OF_K, FEATURES, IN_SAMPLE, write_run
from test_docs import Browser, browser  # noqa: F401 (the fixture)

from autointerp_grpc.report import build_report, write_report


def _screenshot(chrome: Browser, path: Path, full: bool = True) -> None:
    params: dict = {"format": "png"}
    if full:
        metrics = chrome.call("Page.getLayoutMetrics")
        size = metrics["cssContentSize"]
        params["clip"] = {"x": 0, "y": 0, "width": 1280, "height": size["height"], "scale": 1}
        params["captureBeyondViewport"] = True
    path.write_bytes(base64.b64decode(chrome.call("Page.captureScreenshot", params)["data"]))


def _text(chrome: Browser, selector: str) -> str:
    return chrome.evaluate(f"document.querySelector({json.dumps(selector)}).textContent")


def _first_ids(chrome: Browser, count: int) -> list[str]:
    return chrome.evaluate(
        f"Array.from(document.querySelectorAll('#latents tbody tr')).slice(0, {count})"
        ".map(tr => tr.dataset.id)"
    )


def _click(chrome: Browser, selector: str) -> None:
    assert chrome.evaluate(
        f"(() => {{ const e = document.querySelector({json.dumps(selector)});"
        " if (!e) return false; e.click(); return true; })()"
    ), selector


@pytest.mark.slow
def test_report_in_chromium(tmp_path: Path, browser: Browser) -> None:  # noqa: F811
    artefacts = Path(os.environ.get("REPORT_ARTEFACTS") or tmp_path)
    artefacts.mkdir(parents=True, exist_ok=True)
    results = write_run(tmp_path)
    from autointerp_grpc.cli.features import read_features

    page = tmp_path / "report.html"
    report = build_report(
        str(results),
        read_features(str(FEATURES)),
        model="openai/gpt-4o-mini",
        input_source="examples/features.jsonl",
    )
    write_report(report, page)

    browser.call("Page.navigate", {"url": page.as_uri()})
    browser.wait_for_event("Page.loadEventFired", "the page's load event")
    browser.wait_for("window.__reportRendered", "the summary and table")
    browser.wait_for("window.__reportCharts", "the charts")

    # The summary, as the unit test computes it from the JSONL.
    tiles = browser.evaluate(
        "Object.fromEntries(Array.from(document.querySelectorAll('[data-summary]'))"
        ".map(t => [t.dataset.summary, t.querySelector('.v').textContent]))"
    )
    assert tiles["features"] == "8" and tiles["ok"] == "6" and tiles["failed"] == "2"
    assert tiles["scorers"] == "detection, fuzz, embedding"
    assert tiles["model"] == "openai/gpt-4o-mini"
    assert tiles["promptTokens"] == "30,300" and tiles["cost"] == "$0.0280"
    assert tiles["storeHits"] == "9" and tiles["inSample"] == "1"
    assert tiles["cachedPromptTokens"] == "6,000 (20%)"
    assert browser.evaluate("document.querySelectorAll('#reasons tbody tr').length") == 2

    # Every chart drawn by plotly.js: a histogram per scorer, the widths, three pairs.
    assert browser.evaluate("document.querySelectorAll('#charts .chart .main-svg').length") >= 7
    assert "Spearman" in _text(browser, "#pair-0")

    # Sorting by a scorer: descending first, then ascending; failures last either way.
    assert len(_first_ids(browser, 100)) == 8
    _click(browser, "#latents th[data-key='s:detection']")
    assert _first_ids(browser, 2) == [BEST_OF_K, "layer6/numbers"]
    assert _first_ids(browser, 8)[-1] == "layer8/python-keywords"  # no score: last
    _click(browser, "#latents th[data-key='s:detection']")
    assert _first_ids(browser, 1) == [IN_SAMPLE]
    assert browser.evaluate(
        "document.querySelector(\"#latents th[data-key='s:detection']\").className"
    ).endswith("sorted-asc")

    # Filtering (the box waits 120 ms after typing).
    browser.evaluate("document.getElementById('filter').focus()")
    browser.call("Input.insertText", {"text": "french"})
    browser.wait_for("document.querySelectorAll('#latents tbody tr').length === 1", "filtering")
    assert _first_ids(browser, 2) == [IN_SAMPLE]
    browser.evaluate(
        "(() => { const f = document.getElementById('filter'); f.value = '';"
        " f.dispatchEvent(new Event('input')); })()"
    )
    browser.wait_for("document.querySelectorAll('#latents tbody tr').length === 8", "unfilter")
    _screenshot(browser, artefacts / "report.png")

    # A latent card: explanation, candidates, records shaded by activation.
    _click(browser, f"#latents tbody tr[data-id='{BEST_OF_K}']")
    browser.wait_for("!document.getElementById('card').hidden", "the card")
    assert _text(browser, "#card-id") == BEST_OF_K
    assert _text(browser, "#card-explanation") == 'Mentions of "cat"'
    candidates = browser.evaluate(
        "Array.from(document.querySelectorAll('#card-candidates tr')).map(r => r.textContent)"
    )
    assert len(candidates) == 3 and "chosen" in candidates[1]
    shaded = browser.evaluate(
        "Array.from(document.querySelectorAll('#card-records span[style]')).map(s => s.textContent)"
    )
    assert shaded.count(" cat") >= 3  # the latent fires on " cat"
    assert browser.evaluate("document.querySelectorAll('#card-scores tbody tr').length") == 3
    _screenshot(browser, artefacts / "report-card.png", full=False)

    # Opened from a file, the page fetched nothing (no CDN, no font).
    fetched = [
        e["params"]["request"]["url"]
        for e in browser.events
        if e["method"] == "Network.requestWillBeSent"
    ]
    assert all(url.startswith(("file:", "data:", "blob:")) for url in fetched), fetched
    assert browser.problems() == [], browser.log()
    assert (artefacts / "report.png").stat().st_size > 10_000
