"""The embedding scorers are blind to activation-derived markup (issue 17, item 14).

When the activating and the non-activating records are the same texts (only the values
differ), nothing a scorer reads from the text can tell the classes apart: every embedding
scorer must land at chance (its interval covers 0.5). Before the fix, ``example_embedding``
embedded the server's own highlight marks (the activating records' real ones, the others'
"incorrect" ones), and kept each query's twin among the other class's records: the issue saw 1.0
(interval 0.80-1.0), here 0.10-0.20 on many_cat_records' twins. It measured the marks,
not the text.

Two tiers: in process with an embedding model that sees nothing but the marks (fast, both
doors), and the real sentence model in ``python server.py`` (slow, both doors, all three
embedding paths including the legacy ScoreEmbedding).
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Any

import grpc
import httpx
import numpy as np
import pytest
import torch
from google.protobuf import json_format
from samples import many_cat_records
from support import app_settings, in_process_app

from autointerp_grpc.backends.embedding import EmbeddingBackend
from autointerp_grpc.gen.autointerp.v1 import autointerp_pb2 as pb
from autointerp_grpc.gen.autointerp.v1 import autointerp_pb2_grpc as pb_grpc
from autointerp_grpc.methods import embedding_scorers
from autointerp_grpc.records import split_records
from autointerp_grpc.rest.jsonmap import to_json_dict

_SENTENCES = [
    "The committee approved the budget after a long debate",
    "Heavy rain flooded the low streets of the old town",
    "She practised the violin every evening before dinner",
    "The new bridge opened to traffic on Monday morning",
    "Engineers tested the engine in the cold chamber",
    "A small bakery on the corner sells fresh bread daily",
    "The football team trained hard for the final match",
    "Scientists measured the temperature of the deep lake",
    "He repaired the broken fence with spare wooden boards",
    "Tourists crowded the museum to see the famous painting",
    "The farmer harvested wheat before the storm arrived",
    "Our neighbours adopted two puppies from the shelter",
    "The library extended its opening hours for students",
    "A sudden power cut stopped the trains for an hour",
    "The chef added fresh herbs to the simmering soup",
    "Volunteers cleaned the beach after the summer festival",
    "The pilot announced a short delay before take-off",
    "Children built a snowman in the park after school",
    "The company hired twenty engineers for the new plant",
    "A quiet breeze moved the curtains of the open window",
    "The orchestra rehearsed the symphony for three hours",
    "Election results were announced late on Sunday night",
    "The gardener pruned the roses along the stone wall",
    "Researchers published the survey results in spring",
]


def twin_records(n: int = 24) -> list[dict[str, Any]]:
    """``n`` activating records and ``n`` non-activating ones with the SAME tokens: each
    activating copy fires on one word (the values are the only difference)."""
    rng = random.Random(17)
    activating, non_activating = [], []
    for sentence in _SENTENCES[:n]:
        words = sentence.split()
        tokens = [w if i == 0 else f" {w}" for i, w in enumerate(words)]
        values = [0.0] * len(tokens)
        peak = rng.randrange(1, len(tokens))
        values[peak] = 0.9
        values[min(peak + 1, len(tokens) - 1)] = 0.4
        activating.append({"tokens": tokens, "values": values})
        non_activating.append({"tokens": tokens, "values": [0.0] * len(tokens)})
    return activating + non_activating


class MarkupOnlyModel:
    """An embedding model that sees nothing but highlight marks: a text's embedding says
    where (in words) its ``<<...>>`` spans start, so two texts are alike exactly when they are
    highlighted alike. Any score it gives above chance on twin records comes from markup."""

    dimensions = 64

    def encode(self, sentences: str | Sequence[str], **_: Any) -> np.ndarray:
        single = isinstance(sentences, str)
        texts = [sentences] if single else list(sentences)
        rows = np.zeros((len(texts), self.dimensions), dtype=np.float32)
        for i, text in enumerate(texts):
            rows[i, 0] = 1.0  # the same unit vector for every unmarked text
            for position, word in enumerate(text.split()):
                if "<<" in word:
                    rows[i, 1 + position % (self.dimensions - 1)] += 1.0
            rows[i] /= np.linalg.norm(rows[i])
        return rows[0] if single else rows

    def similarity(self, a: Any, b: Any) -> torch.Tensor:
        left = torch.as_tensor(np.atleast_2d(np.asarray(a)), dtype=torch.float32)
        right = torch.as_tensor(np.atleast_2d(np.asarray(b)), dtype=torch.float32)
        return left @ right.T


def _covers_chance(result: dict[str, Any]) -> None:
    interval = result["confidenceInterval"]
    assert interval["lower"] <= 0.5 <= interval["upper"], result
    assert abs(result["score"] - 0.5) <= 0.2, result


def test_example_embedding_texts_carry_no_markup() -> None:
    records = twin_records(12)
    split = split_records([json_format.ParseDict(r, pb.Activation()) for r in records])
    batches = embedding_scorers.example_batches(split, 20, random.Random(3))
    plain = {"".join(r["tokens"]) for r in records}
    for batch, _ in batches:
        shown = [
            *batch.positive_examples,
            *batch.negative_examples,
            batch.positive_query,
            batch.negative_query,
        ]
        assert all("<<" not in text and ">>" not in text for text in shown), batch
        assert set(shown) <= plain


@pytest.fixture
async def markup_app(fake_llm):
    backend = EmbeddingBackend(MarkupOnlyModel(), "markup only (tests)", window_s=0.001)
    async with in_process_app(app_settings(fake_llm.base_url)) as running:
        # Swap the bag-of-words model (which ignores punctuation) for one that sees only marks.
        bag_of_words, running.runtime.deps.embedding = running.runtime.deps.embedding, backend
        try:
            yield running
        finally:
            running.runtime.deps.embedding = bag_of_words
            await backend.close()


async def _score_both_doors(app: Any, body: dict[str, Any]) -> dict[str, Any]:
    request = json_format.ParseDict(body, pb.ScoreRequest())
    async with grpc.aio.insecure_channel(app.grpc_target) as channel:
        reply = await pb_grpc.AutoInterpStub(channel).Score(request, metadata=app.auth, timeout=120)
    over_grpc = to_json_dict(reply)
    response = await app.rest.post("/v1/score", json=body, headers=app.headers, timeout=120)
    assert response.status_code == 200, response.text
    assert response.json() == over_grpc
    return over_grpc


@pytest.mark.parametrize("seed", [1, 2, 3])
async def test_example_embedding_blind_to_highlights_on_both_doors(markup_app, seed) -> None:
    body = {
        "method": "example_embedding",
        "activations": twin_records(),
        "exampleEmbeddingParams": {"seed": seed},
    }
    _covers_chance(await _score_both_doors(markup_app, body))


async def test_embedding_blind_to_highlights_on_both_doors(markup_app) -> None:
    body = {"method": "embedding", "explanation": "a word", "activations": twin_records()}
    result = await _score_both_doors(markup_app, body)
    _covers_chance(result)
    assert result["score"] == 0.5


async def test_example_embedding_refuses_records_with_nothing_to_compare(markup_app) -> None:
    # Two copies of one text in each class: a query's only context would be its own text.
    same = twin_records(1)
    body = {"method": "example_embedding", "activations": same + same}
    response = await markup_app.rest.post("/v1/score", json=body, headers=markup_app.headers)
    assert response.status_code == 400, response.text
    assert response.json()["detail"].startswith("activations: the example_embedding scorer")


# --- the real sentence model, in its own process ---------------------------------------------


async def _real(server: Any, method: str, path: str, body: dict[str, Any], cls: type) -> Any:
    request = json_format.ParseDict(body, cls())
    async with grpc.aio.insecure_channel(server.grpc_target) as channel:
        reply = await getattr(pb_grpc.AutoInterpStub(channel), method)(
            request, metadata=(("x-secret-key", server.secret),), timeout=300
        )
    over_grpc = to_json_dict(reply)
    async with httpx.AsyncClient(base_url=server.http_base, timeout=300) as http:
        response = await http.post(path, json=body, headers={"X-SECRET-KEY": server.secret})
    assert response.status_code == 200, response.text
    assert response.json() == over_grpc
    return over_grpc


def cat_twins() -> list[dict[str, Any]]:
    """many_cat_records' 12 activating records, then the same 12 texts with no activation."""
    activating = [r for r in many_cat_records() if sum(r["values"]) > 0]
    return activating + [
        {"tokens": r["tokens"], "values": [0.0] * len(r["values"])} for r in activating
    ]


@pytest.mark.slow
@pytest.mark.parametrize("seed", [1, 2])
async def test_example_embedding_real_model_at_chance_on_twins(server, seed) -> None:
    # Before: 0.10-0.20 on these (seeds 1, 2, 42), the highlight marks and each query's twin
    # left among the other class's records deciding, not the text.
    body = {
        "method": "example_embedding",
        "activations": cat_twins(),
        "exampleEmbeddingParams": {"seed": seed},
    }
    result = await _real(server, "Score", "/v1/score", body, pb.ScoreRequest)
    _covers_chance(result)
    assert abs(result["score"] - 0.5) <= 0.1, result


@pytest.mark.slow
async def test_embedding_real_model_at_chance_on_twins(server) -> None:
    body = {"method": "embedding", "explanation": "weather", "activations": twin_records()}
    result = await _real(server, "Score", "/v1/score", body, pb.ScoreRequest)
    _covers_chance(result)
    assert result["score"] == 0.5
    legacy = {"explanation": "weather", "activations": twin_records()}
    old = await _real(
        server, "ScoreEmbedding", "/v1/score/embedding", legacy, pb.ScoreEmbeddingRequest
    )
    assert old["score"] == 0.5
