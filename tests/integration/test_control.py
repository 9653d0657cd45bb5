"""Control explanations (issue 18 item 8): an unrelated explanation scored on the same records,
prompts and layout as the real one, reported in ``control``.

The examples themselves can reveal a concept (a judge keying on a rare word scores well
without reading the explanation), so ``chance`` alone cannot say what the explanation adds;
the control can: it is what a judge scores from the examples' content with an explanation
that does not fit them.
"""

from __future__ import annotations

import json
import re
from typing import Any

import grpc
import pytest
from google.protobuf import json_format
from support import BULK_DOORS

from autointerp_grpc.delphi_compat import Response
from autointerp_grpc.errors import AutoInterpError
from autointerp_grpc.gen.autointerp.v1 import autointerp_pb2 as pb
from autointerp_grpc.gen.autointerp.v1 import autointerp_pb2_grpc as pb_grpc
from autointerp_grpc.handlers import Deps
from autointerp_grpc.handlers.lookup import default_method
from autointerp_grpc.handlers.score import score_split
from autointerp_grpc.methods.registry import SCORER_REGISTRY
from autointerp_grpc.records import split_records

MODEL = "openai/gpt-4o-mini"
KEY = "sk-control-test-key"
RIGHT, CONTROL = "the word cat", "stock market finance"
EXAMPLE_RE = re.compile(r"^Example \d+:(.*)$", re.MULTILINE)


def _records(n_activating: int = 10, n_non_activating: int = 10) -> list[pb.Activation]:
    records = [
        pb.Activation(tokens=["The", " cat", f" id{i}"], values=[0, 0.9, 0])
        for i in range(n_activating)
    ]
    records += [
        pb.Activation(tokens=["The", " bank", f" id{i}"], values=[0, 0, 0])
        for i in range(n_activating, n_activating + n_non_activating)
    ]
    return records


def _body(method: str, **extra: Any) -> dict[str, Any]:
    return {
        "method": method,
        "explanation": RIGHT,
        "activations": [json_format.MessageToDict(r) for r in _records()],
        "llm": {"model": MODEL, "apiKey": KEY},
        **extra,
    }


@pytest.mark.parametrize("method", ["detection", "fuzz", "recall"])
async def test_rest_control_scores_the_unrelated_explanation_apart(app, clean_fake, method) -> None:
    plain = await app.rest.post("/v1/score", json=_body(method), headers=app.headers)
    assert plain.status_code == 200, plain.text
    response = await app.rest.post(
        "/v1/score", json=_body(method, controlExplanation=CONTROL), headers=app.headers
    )
    assert response.status_code == 200, response.text
    data = response.json()
    # The fake judge reads the explanation's keywords: the right one fits every activating
    # example, the control none, so the control scores chance and the headline does not move.
    assert data["score"] == plain.json()["score"] > 0.9
    control = data["control"]
    assert control["score"] == pytest.approx(0.5)
    assert control["confidenceInterval"]["lower"] < 0.5 < control["confidenceInterval"]["upper"]
    assert control["coverage"]["answered"] == data["coverage"]["answered"]
    # The control costs as many calls again.
    assert data["usage"]["llmCalls"] == 2 * plain.json()["usage"]["llmCalls"]
    assert plain.json()["control"] is None


async def test_grpc_control_snake_case_and_embedding(app, clean_fake) -> None:
    request = pb.ScoreRequest(
        method="embedding",
        explanation=RIGHT,
        activations=_records(),
        control_explanation=CONTROL,
    )
    async with grpc.aio.insecure_channel(app.grpc_target) as channel:
        response = await pb_grpc.AutoInterpStub(channel).Score(
            request, metadata=app.auth, timeout=30
        )
    assert response.HasField("control")
    assert response.score > response.control.score
    body = {**_body("embedding", control_explanation=CONTROL)}
    del body["llm"]
    rest = await app.rest.post("/v1/score", json=body, headers=app.headers)
    assert rest.status_code == 200, rest.text
    assert rest.json()["control"]["score"] == pytest.approx(response.control.score)


@pytest.mark.parametrize(
    ("method", "control", "needle"),
    [
        ("intruder", CONTROL, "intruder reads none"),
        ("example_embedding", CONTROL, "example_embedding reads none"),
        ("detection", "   ", "controlExplanation is blank"),
        ("detection", "x" * 100_000, "explanation"),
    ],
)
async def test_control_rejected_where_it_means_nothing(
    app, clean_fake, method, control, needle
) -> None:
    response = await app.rest.post(
        "/v1/score", json=_body(method, controlExplanation=control), headers=app.headers
    )
    assert response.status_code == 400, response.text
    assert needle in response.text
    request = pb.ScoreRequest(
        method=method,
        explanation=RIGHT,
        activations=_records(),
        llm=pb.LlmOptions(model=MODEL, api_key=KEY),
        control_explanation=control,
    )
    async with grpc.aio.insecure_channel(app.grpc_target) as channel:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await pb_grpc.AutoInterpStub(channel).Score(request, metadata=app.auth, timeout=30)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert needle in (caught.value.details() or "")


class _RecordingJudge:
    """A detection judge that answers truthfully for ``RIGHT`` and with garbage (no list) for
    the control when ``break_control``, recording each prompt's examples per explanation."""

    def __init__(self, break_control: bool = False) -> None:
        self.break_control = break_control
        self.errors: list[AutoInterpError] = []
        self.logprobs_missing = False
        self.prompts: dict[str, list[list[str]]] = {RIGHT: [], CONTROL: []}

    async def generate(self, prompt: Any, **_: Any) -> Response:
        text = prompt if isinstance(prompt, str) else prompt[-1]["content"]
        examples = EXAMPLE_RE.findall(text)
        explanation = CONTROL if "stock market" in text else RIGHT
        self.prompts[explanation].append(examples)
        if explanation == CONTROL and self.break_control:
            return Response(text="I cannot tell.")
        return Response(text=json.dumps([int(" cat" in e) for e in examples]))


async def _score_with_control(judge: _RecordingJudge, method: str = "detection") -> Any:
    scorer = default_method(SCORER_REGISTRY, method)
    split = split_records(_records(12, 13))
    return await score_split(
        scorer,
        RIGHT,
        split,
        Deps(llm=None),
        judge,  # type: ignore[arg-type]
        control_explanation=CONTROL,
        control_client=judge,  # type: ignore[arg-type]
    )


@pytest.mark.parametrize("method", ["detection", "fuzz"])
async def test_control_is_judged_on_the_same_layout(method) -> None:
    judge = _RecordingJudge()
    result = await _score_with_control(judge, method)
    assert result.control is not None
    # The same examples, in the same prompts, in the same order: a paired comparison.
    assert sorted(judge.prompts[RIGHT]) == sorted(judge.prompts[CONTROL])
    assert len(judge.prompts[RIGHT]) == 5  # 25 examples, 5 per prompt


async def test_a_failed_control_is_a_note_never_the_requests_failure() -> None:
    result = await _score_with_control(_RecordingJudge(break_control=True))
    assert result.control is None
    assert result.score == 1.0
    assert any("control explanation could not be scored" in note for note in result.notes)


async def test_list_methods_describes_each_scorers_controls(app) -> None:
    response = await app.rest.get("/v1/methods", headers=app.headers)
    assert response.status_code == 200, response.text
    scorers = {
        m["name"]: m for m in response.json()["methods"] if m["kind"] != "METHOD_KIND_EXPLAINER"
    }
    assert scorers
    for name, method in scorers.items():
        assert method["controls"], f"{name} describes no controls"
        reads_explanation = method["requires"]["explanation"]
        offers_control = any("controlExplanation" in c for c in method["controls"])
        assert offers_control == reads_explanation, name


# --- bulk: Feature.controlExplanation -------------------------------------------------------


async def _bulk_result(app, door: str, feature: dict[str, Any], **extra: Any) -> dict[str, Any]:
    body = {
        "features": [feature],
        "explainer": {"method": "default"},
        "scorers": [{"method": "intruder"}, {"method": "detection"}],
        "llm": {"model": MODEL, "apiKey": KEY},
        **extra,
    }
    return await BULK_DOORS[door](app, body)


def _feature(**extra: Any) -> dict[str, Any]:
    records = [json_format.MessageToDict(r) for r in _records(12, 12)]
    return {"id": "f", "activations": records[:12], "nonActivating": records[12:], **extra}


@pytest.mark.parametrize("door", ["grpc", "rest"])
async def test_bulk_control_on_every_scorer_that_reads_an_explanation(
    app, clean_fake, door
) -> None:
    result = await _bulk_result(app, door, _feature(controlExplanation=CONTROL))
    intruder, detection = result["scores"]
    assert intruder["method"] == "intruder" and not intruder.get("control")
    assert detection["method"] == "detection"
    assert detection["control"]["score"] == pytest.approx(0.5)
    assert detection["score"] > detection["control"]["score"]
    assert detection["control"]["coverage"]["answered"] == detection["coverage"]["answered"]
    plain = await _bulk_result(app, door, _feature())
    assert not plain["scores"][1].get("control")
    assert result["usage"]["llmCalls"] > plain["usage"]["llmCalls"]


@pytest.mark.parametrize("door", ["grpc", "rest"])
async def test_bulk_blank_control_fails_its_feature(app, clean_fake, door) -> None:
    result = await _bulk_result(app, door, _feature(controlExplanation="  "))
    assert result["error"]["code"] == "INVALID_ARGUMENT"
    assert "controlExplanation is blank" in result["error"]["message"]


async def test_default_candidate_scorer_is_the_first_that_reads_the_explanation(
    app, clean_fake
) -> None:
    # intruder comes first but reads no explanation: detection ranks the candidates.
    result = await _bulk_result(app, "grpc", _feature(), options={"candidates": 2})
    assert "error" not in result, result
    assert len(result["candidates"]) == 2
    assert result["validationRecords"] > 0
