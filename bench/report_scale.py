"""How ``autointerp report`` scales: builds the report of a synthetic run of N latents (default
10,000; three scorers with intervals, coverage and usage, 1 in 50 failed, best-of-k on some;
each feature 20 activating and 10 non-activating records of 64 tokens), prints the time to
build it and its size, then opens it in headless Chromium (as the report's browser test
does) and prints the time to the first render (summary and first table page: when the script
has drawn them, the frame after, and Chromium's first contentful paint) and to the charts, and
the time to sort the table by a score and to open a card.

    PYTHONPATH=.:tests:tests/integration .venv/bin/python bench/report_scale.py [N]
"""

from __future__ import annotations

import random
import sys
import tempfile
import time
from pathlib import Path

from autointerp_grpc.cli.results import ResultWriter
from autointerp_grpc.gen.autointerp.v1 import autointerp_pb2 as pb
from autointerp_grpc.report import build_report, write_report

WORDS = [
    "the",
    "a",
    "cat",
    "dog",
    "rain",
    "money",
    "code",
    "(",
    ")",
    "def",
    "42",
    "le",
    "pain",
    "sat",
    "on",
    "mat",
    "ran",
    "home",
    "blue",
]


def synthetic_run(directory: Path, n: int) -> tuple[Path, list[pb.Feature]]:
    rng = random.Random(0)
    features = []
    path = directory / "results.jsonl"
    writer = ResultWriter(path)
    for i in range(n):
        feature = pb.Feature(id=f"layer{i % 12}/{i}")
        for kind, count in ((feature.activations, 20), (feature.non_activating, 10)):
            for _ in range(count):
                tokens = [" " + rng.choice(WORDS) for _ in range(64)]
                values = [0.0] * 64
                if kind is feature.activations:
                    for k in rng.sample(range(64), 3):
                        values[k] = round(rng.uniform(0.1, 5.0), 3)
                kind.append(pb.Activation(tokens=tokens, values=values))
        features.append(feature)
        result = pb.FeatureResult(
            id=feature.id, explanation=f"explanation {i}: " + " ".join(rng.sample(WORDS, 6))
        )
        if i % 50 == 7:
            result.error.code, result.error.message = "UNAVAILABLE", "provider down"
        else:
            base = rng.random()
            for method, metric in (
                ("detection", "balanced_accuracy"),
                ("fuzz", "balanced_accuracy"),
                ("embedding", "roc_auc"),
            ):
                score = min(1.0, max(0.0, base + rng.gauss(0, 0.1)))
                result.scores.append(
                    pb.ScorerOutcome(
                        method=method,
                        metric=metric,
                        score=score,
                        chance=0.5,
                        confidence_interval=pb.ConfidenceInterval(
                            lower=max(0, score - 0.1),
                            upper=min(1, score + 0.1),
                            level=0.95,
                            resamples=999,
                        ),
                        coverage=pb.Coverage(answered=20, total=20),
                    )
                )
            result.train_records, result.test_records = 15, 15
        if i % 10 == 0:
            result.candidates.extend(pb.Candidate(explanation=f"c{k}", score=0.5) for k in range(3))
        result.usage.CopyFrom(
            pb.Usage(
                llm_calls=9,
                prompt_tokens=5000,
                completion_tokens=40,
                cost=0.005,
                cached_responses=i % 3,
            )
        )
        writer.write(result)
    writer.close()
    return path, features


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 10_000
    with tempfile.TemporaryDirectory() as folder:
        directory = Path(folder)
        results, features = synthetic_run(directory, n)
        started = time.perf_counter()
        report = build_report(str(results), features)
        page = directory / "report.html"
        write_report(report, page)
        built = time.perf_counter() - started
        print(
            f"{n} latents: results {results.stat().st_size / 1e6:.1f} MB; report built in "
            f"{built:.2f} s, {page.stat().st_size / 1e6:.1f} MB"
        )
        from test_docs import Browser, find_chromium  # pyright: ignore[reportMissingImports]

        executable = find_chromium()
        if executable is None:
            print("no Chromium: no render time")
            return
        (directory / "profile").mkdir()
        browser = Browser(executable, directory / "profile", timeout_s=120)
        try:
            browser.call("Page.navigate", {"url": page.as_uri()})
            browser.wait_for("window.__reportRendered", "render")
            browser.wait_for("window.__reportCharts", "charts")
            browser.wait_for("window.__reportCardsReady", "the cards' data unpacked")
            timing = browser.evaluate(
                "({rendered: window.__reportRendered, painted: window.__reportPainted,"
                " charts: window.__reportCharts, cards: window.__reportCardsReady,"
                " fcp: (performance.getEntriesByName('first-contentful-paint')[0]"
                " || {startTime: null}).startTime})"
            )
            sort_ms = browser.evaluate(
                "(() => { const t = performance.now(); document.querySelector("
                "\"#latents th[data-key='s:fuzz']\").click(); return performance.now() - t; })()"
            )
            # A card is built when opened, from its latent's line of the cards' data (unpacked
            # once, after the charts): the time from the click to the card on screen.
            card_ms = browser.evaluate(
                "new Promise(done => { const t = performance.now();"
                " const row = document.querySelector('#latents tbody tr'); row.click();"
                " const check = () => document.getElementById('card-id')?.textContent"
                " === row.dataset.id ? done(performance.now() - t) : requestAnimationFrame(check);"
                " check(); })"
            )
            fcp = timing["fcp"]
            print(
                f"Chromium: summary + first table page rendered {timing['rendered'] / 1000:.2f} s"
                f" (painted {timing['painted'] / 1000:.2f} s; first contentful paint "
                f"{'n/a' if fcp is None else f'{fcp / 1000:.2f} s'}), charts drawn "
                f"{timing['charts'] / 1000:.2f} s, cards' data unpacked "
                f"{timing['cards'] / 1000:.2f} s after navigation start; sort {sort_ms:.0f} ms,"
                f" open a card {card_ms:.0f} ms"
            )
        finally:
            browser.close()


if __name__ == "__main__":
    main()
