"""N shards of one `autointerp run`, run against the service: the union of their output files
is exactly the input, each feature once (issue 21, item 7), and a shard's rerun redoes nothing
of another's."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from support import InProcessApp

from autointerp_grpc.cli.commands import main

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "features.jsonl"
SHARDS = 3
FEATURES = 12


def _input(path: Path) -> list[str]:
    examples = [json.loads(line) for line in EXAMPLES.open()]
    ids = []
    with path.open("w") as out:
        for i in range(FEATURES):
            feature = json.loads(json.dumps(examples[i % len(examples)]))
            feature["id"] = f"layer6/{i}"
            ids.append(feature["id"])
            out.write(json.dumps(feature) + "\n")
    return ids


def _ids(path: Path) -> list[str]:
    if not path.exists():
        return []
    return [json.loads(line)["id"] for line in path.read_text().splitlines() if line.strip()]


async def test_n_shards_cover_the_input_once(
    app: InProcessApp, clean_fake, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SECRET", app.secret or "")
    monkeypatch.setenv("AUTOINTERP_API_KEY", "sk-shards-key")
    features = tmp_path / "features.jsonl"
    ids = _input(features)

    def run(shard: int) -> int:
        return main(
            [
                "run",
                "--server",
                app.grpc_target,
                "--input",
                str(features),
                "--output",
                str(tmp_path / f"results-{shard}.jsonl"),
                "--model",
                "openai/gpt-4o-mini",
                "--scorers",
                "detection",
                "--no-progress",
                "--shard",
                f"{shard}/{SHARDS}",
            ]
        )

    statuses = await asyncio.gather(*(asyncio.to_thread(run, i) for i in range(SHARDS)))
    assert statuses == [0] * SHARDS
    outputs = [_ids(tmp_path / f"results-{i}.jsonl") for i in range(SHARDS)]
    union = [feature_id for output in outputs for feature_id in output]
    assert sorted(union) == sorted(ids)  # every feature, once
    assert all(outputs), outputs  # 12 features over 3 shards: none is empty here

    # A shard run again finds its features done and sends nothing.
    clean_fake.reset_stats()
    assert await asyncio.to_thread(run, 1) == 0
    assert clean_fake.stats()["requests"] == 0
    assert _ids(tmp_path / "results-1.jsonl") == outputs[1]
