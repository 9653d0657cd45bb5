"""Golden bytes: what the REST door sends, byte for byte, and what it reads.

Each response type the record-heavy path prints goes through the real routes
(``routes.rpc_routes``) to a service that answers a fixed message, and the body that comes
back is compared with bytes written out here: non-ASCII tokens, emoji, control characters,
the characters JSON escapes, U+2028 and DEL (sent as they are), and the doubles whose text
differs between printers (1e-05, 1e+16, -0.0, 0.1 + 0.2, a float32 value, 2.5e-07, 64-bit
counts). Requests with the same characters, sent escaped and unescaped, must arrive as the
same message. These bytes are what ``json.dumps(..., ensure_ascii=False)`` of json_format's
mapping gave before the fast codec; they pin that it still does.
"""

from __future__ import annotations

import json
import struct
from collections.abc import AsyncGenerator
from typing import Any

import httpx
import pytest
from google.protobuf.message import Message
from starlette.applications import Starlette

from autointerp_grpc.config import Settings
from autointerp_grpc.gen.autointerp.v1 import autointerp_pb2 as pb
from autointerp_grpc.rest import routes

F32 = struct.unpack("<f", struct.pack("<f", 0.1))[0]  # 0.1 as a float32, in a double
TOKENS = [
    "caf\u00e9",
    " \U0001f408",
    "\u732b",
    "tab\there",
    "nl\n",
    "\x00\x1f",
    'q"\\',
    "\u2028",
    "\x7f",
]
VALUES = [1e-05, 1e16, -0.0, 0.1 + 0.2, F32, 0.0, 2.5e-07, 123.0]


class _FixedService:
    """Reads each request as the door parses it and answers ``response``."""

    def __init__(self, response: Message | list[Message]) -> None:
        self.response = response
        self.requests: list[Message] = []

    async def call(self, method: str, secret: Any, request_id: str, read: Any) -> Message:
        del secret, request_id
        binding = next(b for b in routes.http_bindings() if b.method.name == method)
        self.requests.append(await read(getattr(pb, binding.method.input_type.name)))
        assert isinstance(self.response, Message)
        return self.response

    def call_stream(
        self, method: str, secret: Any, request_id: str, read: Any
    ) -> AsyncGenerator[Message, None]:
        del method, secret, request_id, read
        messages = self.response
        assert isinstance(messages, list)

        async def stream() -> AsyncGenerator[Message, None]:
            for message in messages:
                yield message

        return stream()


async def _post(response: Message | list[Message], path: str, body: bytes) -> httpx.Response:
    service = _FixedService(response)
    limits = Settings(max_request_bytes=10**7, request_head_timeout_s=5.0)
    app = Starlette(routes=routes.rpc_routes(lambda: service, lambda: limits))  # type: ignore[arg-type, return-value]
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://door") as client:
        reply = await client.post(path, content=body, headers={"content-type": "application/json"})
    reply.extensions["requests"] = service.requests
    return reply


def _score_response() -> pb.ScoreResponse:
    score = pb.ScoreResponse(
        score=0.75,
        metric="balanced_accuracy",
        method="detection",
        chance=0.5,
        notes=["n\u00f6te \U0001f600"],
    )
    score.breakdown.add(
        record_index=0,
        text="".join(TOKENS),
        str_tokens=TOKENS,
        activating=True,
        prediction=True,
        correct=True,
        probability=1e-05,
    )
    score.breakdown.add(
        record_index=-1,
        activating=False,
        similarity=1e16,
        correlation=-0.0,
        predicted_activations=VALUES,
        intruder_index=2,
        delta_positive=0.1 + 0.2,
        delta_negative=F32,
        decoy=True,
    )
    score.usage.llm_calls = 2
    score.usage.prompt_tokens = 2**40
    score.usage.cost = 1e-06
    score.classifier.balanced_accuracy = 0.75
    score.classifier.auc = 0.5
    score.confidence_interval.lower = 0.5
    score.confidence_interval.upper = 1.0
    score.confidence_interval.level = 0.95
    score.confidence_interval.resamples = 1000
    score.coverage.answered = 2
    score.coverage.total = 2
    score.extra_metrics["decoy_rejection"] = 1e-05
    return score


SCORE_BYTES = (
    '{"score":0.75,"metric":"balanced_accuracy","method":"detection","breakdown":['
    '{"recordIndex":0,"text":"café 🐈猫tab\\therenl\\n\\u0000\\u001fq\\"\\\\\u2028\x7f",'
    '"strTokens":["café"," 🐈","猫","tab\\there","nl\\n","\\u0000\\u001f","q\\"\\\\","\u2028",'
    '"\x7f"],"activating":true,"prediction":true,"correct":true,"probability":1e-05,'
    '"similarity":null,"correlation":null,"predictedActivations":[],"intruderIndex":null,'
    '"predictedIndex":null,"deltaPositive":null,"deltaNegative":null,"decoy":false},'
    '{"recordIndex":-1,"text":"","strTokens":[],"activating":false,"prediction":null,'
    '"correct":null,"probability":null,"similarity":1e+16,"correlation":-0.0,'
    '"predictedActivations":[1e-05,1e+16,-0.0,0.30000000000000004,0.10000000149011612,0.0,'
    '2.5e-07,123.0],"intruderIndex":2,"predictedIndex":null,"deltaPositive":0.30000000000000004,'
    '"deltaNegative":0.10000000149011612,"decoy":true}],'
    '"usage":{"llmCalls":2,"promptTokens":1099511627776,"completionTokens":0,"cost":1e-06,'
    '"cachedResponses":0,"cachedPromptTokens":0,"savedCost":null,"estimated":null},'
    '"classifier":{"balancedAccuracy":0.75,"accuracy":0.0,"precision":0.0,"recall":0.0,'
    '"f1":0.0,"auc":0.5,"truePositives":0,"trueNegatives":0,"falsePositives":0,'
    '"falseNegatives":0,"answered":0,"unanswered":0},'
    '"confidenceInterval":{"lower":0.5,"upper":1.0,"level":0.95,"resamples":1000},'
    '"notes":["nöte 😀"],"chance":0.5,"coverage":{"answered":2,"total":2,'
    '"activatingAnswered":0,"activatingTotal":0,"nonActivatingAnswered":0,'
    '"nonActivatingTotal":0},"extraMetrics":{"decoy_rejection":1e-05},"control":null}'
).encode()


async def test_score_response_bytes() -> None:
    body = json.dumps({"method": "detection", "activations": [{"tokens": ["a"], "values": [1]}]})
    reply = await _post(_score_response(), "/v1/score", body.encode())
    assert reply.status_code == 200
    assert reply.headers["content-type"] == "application/json"
    assert reply.content == SCORE_BYTES


def _fuzz_response() -> pb.ScoreFuzzDetectionResponse:
    fuzz = pb.ScoreFuzzDetectionResponse(score=0.5)
    fuzz.breakdown.add(
        str_tokens=TOKENS[:3],
        activations=VALUES[:3],
        distance=1,
        ground_truth=True,
        prediction=False,
        highlighted=True,
        probability=0.1 + 0.2,
        correct=False,
    )
    fuzz.breakdown.add(
        str_tokens=["\u00e9"], activations=[F32], distance=-1, ground_truth=False, highlighted=False
    )
    return fuzz


FUZZ_BYTES = (
    '{"score":0.5,"breakdown":[{"strTokens":["café"," 🐈","猫"],"activations":[1e-05,1e+16,'
    '-0.0],"distance":1,"groundTruth":true,"prediction":false,"highlighted":true,'
    '"probability":0.30000000000000004,"correct":false},{"strTokens":["é"],'
    '"activations":[0.10000000149011612],"distance":-1,"groundTruth":false,"prediction":null,'
    '"highlighted":false,"probability":null,"correct":null}]}'
).encode()


async def test_legacy_fuzz_detection_response_bytes() -> None:
    reply = await _post(_fuzz_response(), "/v1/score/fuzz-detection", b'{"type": "FUZZ"}')
    assert reply.status_code == 200
    assert reply.content == FUZZ_BYTES


@pytest.mark.parametrize(
    ("path", "response", "expected"),
    [
        (
            "/v1/score/embedding",
            pb.ScoreEmbeddingResponse(
                score=0.5,
                breakdown=[
                    pb.ScoreEmbeddingBreakdownItem(
                        text="caf\u00e9 \U0001f408", distance=-1, similarity=-1e-05
                    )
                ],
            ),
            '{"score":0.5,"breakdown":[{"text":"café 🐈","distance":-1,"similarity":-1e-05}]}',
        ),
        (
            "/v1/explain/default",
            pb.ExplainDefaultResponse(explanation="the word \u201ccat\u201d \U0001f408"),
            '{"explanation":"the word “cat” 🐈"}',
        ),
        (
            "/v1/explain",
            pb.ExplainResponse(explanation="cats", raw_answer="cats\n", method="default"),
            '{"explanation":"cats","rawAnswer":"cats\\n","usage":null,"method":"default"}',
        ),
    ],
)
async def test_other_response_bytes(path: str, response: Message, expected: str) -> None:
    reply = await _post(response, path, b"{}")
    assert reply.status_code == 200
    assert reply.content == expected.encode()


async def test_error_response_bytes() -> None:
    body = b'{"activations": [{"tokens": ["a\\ud800"], "values": [1]}]}'
    reply = await _post(pb.ExplainDefaultResponse(), "/v1/explain/default", body)
    assert reply.status_code == 400
    assert reply.headers["content-type"] == "application/json"
    assert reply.content == (
        b'{"detail":"Invalid request body: activations[0].tokens[0] holds text that is not '
        b'valid Unicode (an unpaired surrogate)","code":"INVALID_ARGUMENT"}'
    )


async def test_stream_line_bytes() -> None:
    result = pb.ExplainAndScoreEvent()
    result.result.id = "f\u00e9"
    result.result.explanation = "\U0001f408"
    outcome = result.result.scores.add(method="detection", score=1e-05, chance=0.5)
    outcome.extra_metrics["x"] = 1e16
    progress = pb.ExplainAndScoreEvent(progress=pb.Progress(done=1, total=2))
    reply = await _post([progress, result], "/v1/explain-and-score", b"{}")
    assert reply.status_code == 200
    assert (
        reply.content
        == (
            '{"progress":{"done":1,"total":2,"failed":0,"usage":null,"pending":0}}\n'
            '{"result":{"id":"fé","explanation":"🐈","scores":[{"method":"detection",'
            '"score":1e-05,"metric":"","confidenceInterval":null,"error":null,"chance":0.5,'
            '"coverage":null,"notes":[],"extraMetrics":{"x":1e+16},"control":null}],'
            '"candidates":[],"trainRecords":0,"testRecords":0,"usage":null,"error":null,'
            '"seconds":0.0,"inSample":false,"validationRecords":0,"notes":[],'
            '"validationSeenRecords":0,"pending":false}}\n'
        ).encode()
    )


@pytest.mark.parametrize("ensure_ascii", [True, False])
async def test_requests_with_any_characters_arrive_as_sent(ensure_ascii: bool) -> None:
    values = [*VALUES, 7, 2**63, True]
    body = {
        "activations": [{"tokens": TOKENS, "values": values}, {"tokens": [], "values": []}],
        "openrouterKey": "k\u00e9y",
        "model": "m\U0001f600",
    }
    text = json.dumps(body, ensure_ascii=ensure_ascii).encode()
    reply = await _post(pb.ExplainDefaultResponse(), "/v1/explain/default", text)
    assert reply.status_code == 200
    [request] = reply.extensions["requests"]
    assert request == pb.ExplainDefaultRequest(
        activations=[
            pb.Activation(tokens=TOKENS, values=[*VALUES, 7.0, 9.223372036854776e18, 1.0]),
            pb.Activation(),
        ],
        openrouter_key="k\u00e9y",
        model="m\U0001f600",
    )
