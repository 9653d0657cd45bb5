"""The scoring protocol (DESIGN.md §3a) on the one scoring path: coverage floor, chance per
request, failures that are never scores, decoys reported apart, held-out bulk scoring and
honest best-of-k. Scripted judges stand in for the model where the test needs one answer
pattern; the rest runs the whole app in process against the fake LLM."""

from __future__ import annotations

import json
import math
import re
from typing import Any

import grpc
import pytest
from google.protobuf import json_format

from autointerp_grpc.delphi_compat import Response
from autointerp_grpc.errors import AutoInterpError, Unavailable, UpstreamBadResponse
from autointerp_grpc.gen.autointerp.v1 import autointerp_pb2 as pb
from autointerp_grpc.gen.autointerp.v1 import autointerp_pb2_grpc as pb_grpc
from autointerp_grpc.handlers import Deps
from autointerp_grpc.handlers.lookup import default_method
from autointerp_grpc.handlers.score import score_split
from autointerp_grpc.methods.registry import SCORER_REGISTRY
from autointerp_grpc.records import split_records

MODEL = "openai/gpt-4o-mini"
KEY = "sk-protocol-test-key"
EXAMPLE_RE = re.compile(r"^Example \d+:(.*)$", re.MULTILINE)


def _records(n_activating: int, n_non_activating: int) -> list[pb.Activation]:
    """Activating records fire on " cat"; each record carries a unique token ``idN``."""
    records = []
    for i in range(n_activating):
        records.append(pb.Activation(tokens=["The", " cat", f" id{i}"], values=[0, 0.9, 0]))
    for i in range(n_activating, n_activating + n_non_activating):
        records.append(pb.Activation(tokens=["The", " bank", f" id{i}"], values=[0, 0, 0]))
    return records


class ScriptedJudge:
    """A stand-in LLM client for delphi's scorers: ``answer(call_number, prompt_text)``."""

    def __init__(self, answer) -> None:
        self.answer = answer
        self.calls = 0
        self.errors: list[AutoInterpError] = []
        self.logprobs_missing = False

    async def generate(self, prompt: Any, **_: Any) -> Response:
        self.calls += 1
        text = prompt if isinstance(prompt, str) else prompt[-1]["content"]
        return Response(text=self.answer(self.calls, text))


def _truthful(text: str) -> str:
    """Detection answer: 1 for every example mentioning cat."""
    return json.dumps([int(" cat" in e) for e in EXAMPLE_RE.findall(text)])


async def _detect(judge: ScriptedJudge, n_act: int = 40, n_non: int = 40, **kw):
    method = default_method(SCORER_REGISTRY, "detection")
    split = split_records(_records(n_act, n_non))
    deps = Deps(llm=None)  # type: ignore[arg-type]  (the judge is the client)
    return await score_split(method, "the word cat", split, deps, judge, **kw)  # type: ignore[arg-type]


# --- coverage floor ----------------------------------------------------------------------


async def test_a_judge_answering_one_prompt_in_eight_is_refused() -> None:
    judge = ScriptedJudge(lambda n, text: _truthful(text) if n % 8 == 1 else "no idea")
    with pytest.raises(Unavailable) as info:
        await _detect(judge)
    message = info.value.message
    assert "activating" in message and "minAnswered" in message
    assert re.search(r"\d+/40 activating and \d+/40 non-activating", message)


async def test_a_judge_answering_ninety_percent_is_scored_with_coverage() -> None:
    judge = ScriptedJudge(lambda n, text: "no idea" if n == 3 else _truthful(text))
    result = await _detect(judge)
    assert result.score == 1.0
    coverage = result.coverage
    assert coverage.total == 80 and coverage.answered == 75
    assert coverage.activating_total == coverage.non_activating_total == 40
    pattern = r"Scored on the \d+/40 activating and \d+/40 non-activating examples that got"
    assert any(re.search(pattern, note) for note in result.notes), result.notes
    # A lower floor, asked for, admits the sparse judge of the test above.
    sparse = ScriptedJudge(lambda n, text: _truthful(text) if n % 8 == 1 else "no idea")
    low = await _detect(sparse, min_answered=0.0)
    assert low.coverage.answered < 20


async def test_nothing_answered_is_an_error_never_a_score() -> None:
    with pytest.raises(UpstreamBadResponse):
        await _detect(ScriptedJudge(lambda n, text: "no idea"))


# --- chance, failures, decoys --------------------------------------------------------------


async def test_intruder_chance_follows_the_prompt_size(app, clean_fake) -> None:
    request = pb.ScoreRequest(
        method="intruder",
        activations=_records(12, 12),
        llm=pb.LlmOptions(model=MODEL, api_key=KEY),
        intruder_params=pb.IntruderScorerParams(examples_per_prompt=3),
    )
    async with grpc.aio.insecure_channel(app.grpc_target) as channel:
        response = await pb_grpc.AutoInterpStub(channel).Score(
            request, metadata=app.auth, timeout=30
        )
    assert math.isclose(response.chance, 1 / 3)
    assert response.coverage.total == len(response.breakdown)


async def test_an_intruder_index_past_the_last_example_is_no_answer() -> None:
    method = default_method(SCORER_REGISTRY, "intruder")  # 5 per prompt
    # Two activating records: prompts show 2 examples (one record is left out of each, the
    # intruder's highlight shape comes from it); index 4 is past the last one.
    split = split_records(_records(2, 10))
    judge = ScriptedJudge(lambda n, text: "[RESPONSE]: 4")
    with pytest.raises(UpstreamBadResponse):
        await score_split(method, "", split, Deps(llm=None), judge)  # type: ignore[arg-type]


async def test_a_constant_simulation_is_an_error_not_a_zero() -> None:
    method = default_method(SCORER_REGISTRY, "simulation", structured_output=False, mode="json")

    def zeros(n: int, text: str) -> str:
        asked = json.loads(text)["activations"]  # delphi's JSON prompt: one entry per token
        return json.dumps({"activations": [{"token": a["token"], "activation": 0} for a in asked]})

    split = split_records(_records(5, 5))
    with pytest.raises(UpstreamBadResponse, match="same activation"):
        await score_split(method, "cats", split, Deps(llm=None), ScriptedJudge(zeros))  # type: ignore[arg-type]


async def test_recall_headline_excludes_decoys() -> None:
    method = default_method(SCORER_REGISTRY, "recall")

    def fits_everything(n: int, text: str) -> str:
        count = len(re.findall(r"^Text \d+:", text, re.MULTILINE))
        return json.dumps({"answers": [True] * count})

    split = split_records(_records(10, 10))
    result = await score_split(
        method,
        "anything",
        split,
        Deps(llm=None),
        ScriptedJudge(fits_everything),  # type: ignore[arg-type]
    )
    # Fitting every real text is chance on the real texts, whatever the decoys say.
    assert result.score == 0.5
    assert result.extra_metrics == {"decoy_rejection": 0.0}
    assert result.classifier.answered == 20
    assert any(item.decoy for item in result.breakdown)


@pytest.mark.parametrize(("n_act", "n_non"), [(10, 11), (11, 11), (12, 11), (20, 15), (20, 20)])
async def test_example_embedding_sizes_score_or_refuse_never_fail(app, n_act, n_non) -> None:
    body = json_format.MessageToDict(
        pb.ScoreRequest(method="example_embedding", activations=_records(n_act, n_non))
    )
    response = await app.rest.post("/v1/score", json=body, headers=app.headers)
    assert response.status_code in (200, 400), response.text
    if response.status_code == 200:
        data = response.json()
        assert 0 <= data["score"] <= 1 and data["chance"] == 0.5


async def test_score_response_carries_chance_and_coverage(app, clean_fake) -> None:
    body = {
        "method": "detection",
        "explanation": "the word cat",
        "activations": [json_format.MessageToDict(r) for r in _records(10, 10)],
        "llm": {"model": MODEL, "apiKey": KEY},
    }
    response = await app.rest.post("/v1/score", json=body, headers=app.headers)
    assert response.status_code == 200, response.text
    data = response.json()
    assert data["chance"] == 0.5
    assert data["coverage"]["activatingTotal"] == 10
    assert data["coverage"]["answered"] == 20
    low, high = data["confidenceInterval"]["lower"], data["confidenceInterval"]["upper"]
    assert low < high <= 1.0  # a perfect score still gets an interval of some width


# --- bulk: held out by default, honest best-of-k --------------------------------------------

ID_RE = re.compile(r"id(\d+)")


def _ids(text: str) -> set[int]:
    return {int(m) for m in ID_RE.findall(text)}


async def _bulk(app, options: pb.BulkOptions | None = None) -> pb.FeatureResult:
    records = _records(12, 12)
    request = pb.ExplainAndScoreRequest(
        features=[pb.Feature(id="f", activations=records[:12], non_activating=records[12:])],
        explainer=pb.ExplainerChoice(method="default"),
        scorers=[pb.ScorerChoice(method="detection")],
        llm=pb.LlmOptions(model=MODEL, api_key=KEY),
    )
    if options is not None:
        request.options.CopyFrom(options)
    async with grpc.aio.insecure_channel(app.grpc_target) as channel:
        stream = pb_grpc.AutoInterpStub(channel).ExplainAndScore(
            request, metadata=app.auth, timeout=60
        )
        results = [e.result async for e in stream if e.HasField("result")]
    assert len(results) == 1 and not results[0].HasField("error"), results
    return results[0]


async def test_bulk_default_scores_records_the_explainer_never_saw(app, clean_fake) -> None:
    result = await _bulk(app)
    assert not result.in_sample
    assert result.test_records > 0
    records = clean_fake.stats()["records"]
    explained = set().union(*(_ids(r["prompt"]) for r in records if r["kind"] == "explain"))
    scored = set().union(*(_ids(r["prompt"]) for r in records if r["kind"] == "detection"))
    assert explained and scored
    assert not explained & scored
    assert result.scores[0].HasField("score")


async def test_bulk_in_sample_is_an_explicit_opt_in_and_marked(app, clean_fake) -> None:
    result = await _bulk(app, pb.BulkOptions(holdout=0))
    assert result.in_sample
    assert any("in-sample" in note for note in result.scores[0].notes)


async def test_best_of_k_reports_on_records_no_candidate_was_selected_on(app, clean_fake) -> None:
    result = await _bulk(app, pb.BulkOptions(candidates=3))
    assert len(result.candidates) == 3
    assert result.validation_records > 0
    detection = [r for r in clean_fake.stats()["records"] if r["kind"] == "detection"]
    final_prompts = math.ceil(result.test_records / 5)
    ranking, final = detection[:-final_prompts], detection[-final_prompts:]
    ranked_on = set().union(*(_ids(r["prompt"]) for r in ranking))
    reported_on = set().union(*(_ids(r["prompt"]) for r in final))
    assert ranked_on and reported_on
    assert not ranked_on & reported_on
