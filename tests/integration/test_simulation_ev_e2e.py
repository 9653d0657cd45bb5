"""The simulation scorer's modes end to end, over both doors, against the fake LLM (in
process): auto picks the expected-value simulation (logprob_ev) where the provider sends top
log probabilities and JSON where it does not, saying which in ``notes``; logprob_ev asked for
without them is an error, never a score; a right explanation beats a wrong one either way."""

from __future__ import annotations

import json
from typing import Any

import grpc
import pytest
from google.protobuf import json_format
from samples import RIGHT_EXPLANATION, WRONG_EXPLANATION, cat_records

from autointerp_grpc.gen.autointerp.v1 import autointerp_pb2 as pb
from autointerp_grpc.gen.autointerp.v1 import autointerp_pb2_grpc as pb_grpc
from autointerp_grpc.rest.jsonmap import to_json_dict

LLM = {"model": "openai/gpt-4o-mini", "apiKey": "sk-simulation-ev-test-key"}
NO_LOGPROBS_LLM = {**LLM, "model": "some/model@logprobs=0"}


def _body(explanation: str = RIGHT_EXPLANATION, llm: dict[str, str] = LLM, **params: Any):
    body: dict[str, Any] = {
        "method": "simulation",
        "explanation": explanation,
        "activations": cat_records(),
        "llm": llm,
    }
    if params:
        body["simulationParams"] = params
    return body


async def _grpc(app, body: dict[str, Any]) -> dict[str, Any]:
    request = json_format.ParseDict(body, pb.ScoreRequest())
    async with grpc.aio.insecure_channel(app.grpc_target) as channel:
        reply = await pb_grpc.AutoInterpStub(channel).Score(request, metadata=app.auth, timeout=60)
    return to_json_dict(reply)


async def _rest(app, body: dict[str, Any]):
    headers = {**app.headers, "Content-Type": "application/json"}
    return await app.rest.post("/v1/score", content=json.dumps(body), headers=headers, timeout=60)


async def _both_doors(app, body: dict[str, Any]) -> dict[str, Any]:
    over_grpc = await _grpc(app, body)
    response = await _rest(app, body)
    assert response.status_code == 200, response.text
    assert response.json() == over_grpc
    return over_grpc


async def _refused(app, body: dict[str, Any]) -> tuple[grpc.aio.AioRpcError, dict[str, str]]:
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await _grpc(app, body)
    response = await _rest(app, body)
    assert response.status_code >= 400
    return info.value, {**response.json(), "status": response.status_code}


async def test_auto_runs_logprob_ev_and_says_so(app, clean_fake) -> None:
    result = await _both_doors(app, _body())
    assert result["notes"][0].startswith("Simulated with mode logprob_ev (auto)")
    assert result["score"] > 0.9 and result["chance"] == 0.0
    assert result["coverage"]["answered"] == result["coverage"]["total"] == 14
    cat = result["breakdown"][0]
    assert cat["strTokens"][1] == " cat"
    assert cat["predictedActivations"][1] == pytest.approx(9.3776, abs=1e-4)
    # 14 records on each door in two calls (at most 8 records each): the first call's answer
    # had log probabilities, so the second followed.
    assert clean_fake.stats()["by_kind"] == {"simulation_ev": 4}


async def test_auto_falls_back_to_json_and_says_why(app, clean_fake) -> None:
    result = await _both_doors(app, _body(llm=NO_LOGPROBS_LLM))
    note = result["notes"][0]
    assert note.startswith("Simulated with mode json (auto)")
    assert "no top log probabilities" in note
    assert result["score"] > 0.9
    # Two calls per door found out (the first call, then the probe of the provider); then
    # every record went to the JSON simulation.
    assert clean_fake.stats()["by_kind"] == {"simulation_ev": 4, "simulation": 28}

    clean_fake.set_fault("reject_logprobs")
    result = await _grpc(app, _body())
    assert "rejected the request for them" in result["notes"][0]
    assert result["coverage"]["answered"] == 14
    assert not any("failed" in note for note in result["notes"])


@pytest.mark.parametrize("llm", [NO_LOGPROBS_LLM, LLM])
async def test_explicit_logprob_ev_without_logprobs_is_an_error(app, clean_fake, llm) -> None:
    if llm is LLM:
        clean_fake.set_fault("no_logprobs")
    error, rest = await _refused(app, _body(llm=llm, mode="logprob_ev"))
    assert error.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert rest["status"] == 400 and rest["code"] == "FAILED_PRECONDITION"
    assert rest["detail"] == error.details()
    assert "mode logprob_ev needs the provider's top log probabilities" in rest["detail"]
    # It asked twice per door (the first record, then the probe of the provider), then stopped.
    assert clean_fake.stats()["by_kind"] == {"simulation_ev": 4}


async def test_right_beats_wrong_in_both_modes(app, clean_fake) -> None:
    scores: dict[tuple[str, str], float] = {}
    for mode in ("logprob_ev", "json"):
        for explanation in (RIGHT_EXPLANATION, WRONG_EXPLANATION):
            result = await _both_doors(app, _body(explanation, mode=mode))
            assert result["notes"][0].startswith(f"Simulated with mode {mode}:")
            interval = result["confidenceInterval"]
            assert interval["lower"] <= result["score"] <= interval["upper"]
            scores[mode, explanation] = result["score"]
        right, wrong = scores[mode, RIGHT_EXPLANATION], scores[mode, WRONG_EXPLANATION]
        assert right > wrong + 0.5, scores
    print("simulation scores (mode, explanation) -> score:", scores)


async def test_a_bad_mode_names_the_field(app, clean_fake) -> None:
    error, rest = await _refused(app, _body(mode="points"))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert rest["status"] == 400 and rest["code"] == "INVALID_ARGUMENT"
    assert "simulationParams.mode must be one of auto, json, logprob_ev" in rest["detail"]
    assert "points" not in rest["detail"]  # a caller's value is never quoted back
    assert clean_fake.stats()["requests"] == 0


async def test_list_methods_describes_the_mode(app) -> None:
    response = await app.rest.get("/v1/methods", headers=app.headers)
    [simulation] = [m for m in response.json()["methods"] if m["name"] == "simulation"]
    assert simulation["requires"]["logprobs"] is True
    [mode] = [p for p in simulation["parameters"] if p["name"] == "mode"]
    assert mode["allowed"] == ["auto", "json", "logprob_ev"]
    assert mode["defaultValue"] == '"auto"'
