"""Tests for the fake OpenAI-compatible LLM server (autointerp_testing.fake_llm).

The server tests start a real server on a free port and talk to it with the real
``openai.AsyncOpenAI`` client, using delphi's own prompt builders and parsers and those of
autointerp_grpc.prompts.
"""

from __future__ import annotations

import asyncio
import json
import math
import signal
import subprocess
import sys
import time
from types import SimpleNamespace

import httpx
import openai
import pytest
from fake_llm_samples import (
    DETECTION,
    EXPLANATION,
    FUZZ,
    MODEL,
    TEXTS,
    chat,
    examples_block,
    explain_messages,
    scorer_for,
)

import autointerp_grpc.delphi_compat  # noqa: F401  (registers the vLLM shim before delphi)

# isort: split
from delphi.explainers.default.prompt_builder import build_prompt
from delphi.explainers.explainer import Explainer
from delphi.scorers.classifier.prompts import detection_prompt, fuzz_prompt

from autointerp_testing.fake_llm import (
    FakeLLMServer,
    answer_logprobs,
    classify_answer,
    explain_answer,
    explanation_keywords,
    parse_classification_prompt,
    request_kind,
)
from autointerp_testing.fake_llm import app as fake_llm_app
from autointerp_testing.fake_llm import faults as fake_llm_faults

# ------------------------------------------------------------------------------------------
# Pure helpers
# ------------------------------------------------------------------------------------------


def test_explain_answer_lists_spans_by_frequency_then_first_occurrence():
    assert explain_answer("x<< cat>> y<<cat >> z<<cat>>") == '[EXPLANATION]: Mentions of "cat"'
    text = "<<a>> <<b>> <<b>> <<c>> <<d>> <<d>> <<e>>"
    assert explain_answer(text) == '[EXPLANATION]: Mentions of "b", "d", "a"'
    assert explain_answer("<<one\ntwo>>") == '[EXPLANATION]: Mentions of "one\ntwo"'


def test_explain_answer_without_spans():
    assert explain_answer("no highlights here") == "[EXPLANATION]: No clear pattern"
    assert explain_answer("only blank << >> spans") == "[EXPLANATION]: No clear pattern"


def test_explanation_keywords_drop_stopwords():
    assert explanation_keywords('Mentions of "Cat", "felines"') == ["cat", "felines"]
    assert explanation_keywords("The word 'the' in a text about tokens") == []
    assert explanation_keywords("Dogs and dogs and don't") == ["dogs", "don't"]


def test_parse_classification_prompt_splits_on_markers_not_lines():
    message = detection_prompt.prompt(examples_block(TEXTS), EXPLANATION)[-1]["content"]
    parsed = parse_classification_prompt(message)
    assert parsed is not None
    explanation, texts = parsed
    assert explanation == EXPLANATION
    assert [t.strip() for t in texts] == [t.strip() for t in TEXTS]
    # A marker-like line inside a text that is out of sequence does not split it.
    tricky = examples_block(["first\nExample 7: not a marker", "second"])
    parsed = parse_classification_prompt(f"Latent explanation: x\n\nText examples:\n\n{tricky}\n")
    assert parsed is not None
    assert parsed[1] == [" first\nExample 7: not a marker", " second"]
    assert parse_classification_prompt("hello") is None


def test_classify_answer_detection_and_fuzz():
    detection = detection_prompt.prompt(examples_block(TEXTS), EXPLANATION)
    fuzz = fuzz_prompt.prompt(examples_block(TEXTS), EXPLANATION)
    assert classify_answer(detection[0]["content"], detection[-1]["content"]) == DETECTION
    assert classify_answer(fuzz[0]["content"], fuzz[-1]["content"]) == FUZZ


def test_classify_answer_without_keywords_is_all_zero():
    fuzz = fuzz_prompt.prompt(examples_block(TEXTS), "The words of a text")
    assert classify_answer(fuzz[0]["content"], fuzz[-1]["content"]) == [0] * len(TEXTS)
    assert classify_answer("system", "not a classifier prompt") == []


def test_request_kind_recognises_delphi_prompts():
    assert request_kind(explain_messages()) == "explain"
    assert request_kind(build_prompt(examples="a<<b>>", activations=True, cot=True)) == "explain"
    assert request_kind(detection_prompt.prompt(examples_block(TEXTS), EXPLANATION)) == "detection"
    assert request_kind(fuzz_prompt.prompt(examples_block(TEXTS), EXPLANATION)) == "fuzz"
    assert request_kind([{"role": "user", "content": "Hello"}]) == "other"


def test_answer_logprobs_tokens():
    entries = answer_logprobs("[1,0]")
    assert [e["token"] for e in entries] == ["[", "1", ",", "0", "]"]
    one = entries[1]
    assert one["logprob"] == pytest.approx(math.log(0.9))
    assert {t["token"]: round(math.exp(t["logprob"]), 6) for t in one["top_logprobs"]} == {
        "1": 0.9,
        "0": 0.1,
    }
    assert entries[0]["top_logprobs"] == [{"token": "[", "logprob": 0.0, "bytes": None}]


# ------------------------------------------------------------------------------------------
# Real server, real openai client
# ------------------------------------------------------------------------------------------


async def test_explanation_end_to_end(fake, client):
    response = await chat(client, explain_messages(), model=MODEL, max_tokens=500)
    content = response.choices[0].message.content
    assert content == f"[EXPLANATION]: {EXPLANATION}"
    assert Explainer.parse_explanation(SimpleNamespace(), content) == EXPLANATION
    assert response.model == MODEL
    assert response.object == "chat.completion"
    assert response.choices[0].finish_reason == "stop"
    assert response.usage.prompt_tokens > 1
    assert response.usage.total_tokens == (
        response.usage.prompt_tokens + response.usage.completion_tokens
    )


async def test_detection_and_fuzz_end_to_end(fake, client):
    examples = examples_block(TEXTS)
    detection = await chat(client, detection_prompt.prompt(examples, EXPLANATION))
    fuzz = await chat(client, fuzz_prompt.prompt(examples, EXPLANATION))
    scorer = scorer_for(len(TEXTS))
    assert scorer._parse(detection.choices[0].message.content)[0] == [bool(x) for x in DETECTION]
    assert scorer._parse(fuzz.choices[0].message.content)[0] == [bool(x) for x in FUZZ]
    assert detection.choices[0].logprobs is None
    stats = fake.stats()
    assert stats["by_kind"] == {"detection": 1, "fuzz": 1}
    assert [(r["kind"], r["n_examples"], r["model"]) for r in stats["records"]] == [
        ("detection", len(TEXTS), MODEL),
        ("fuzz", len(TEXTS), MODEL),
    ]


async def test_logprobs_feed_delphis_parser(fake, client):
    messages = detection_prompt.prompt(examples_block(TEXTS), EXPLANATION)
    response = await chat(client, messages, logprobs=True, top_logprobs=5)
    choice = response.choices[0]
    content = choice.logprobs.content
    assert "".join(entry.token for entry in content) == choice.message.content
    predictions, probabilities = scorer_for(len(TEXTS))._parse(choice.message.content, content)
    assert predictions == [bool(x) for x in DETECTION]
    assert probabilities == pytest.approx([0.9 if x else 0.1 for x in DETECTION])


@pytest.mark.parametrize(
    ("mode", "error", "status"),
    [
        ("429", openai.RateLimitError, 429),
        ("500", openai.InternalServerError, 500),
        ("bad_key", openai.AuthenticationError, 401),
        ("no_credits", openai.APIStatusError, 402),
    ],
)
async def test_error_faults_map_to_sdk_errors(fake, client, mode, error, status):
    fake.set_fault(mode)
    with pytest.raises(error) as info:
        await chat(client, explain_messages())
    assert info.value.status_code == status
    assert isinstance(info.value.body, dict) and info.value.body.get("message")
    if mode == "429":
        assert info.value.response.headers["retry-after-ms"] == "50"
        assert "retry-after" in info.value.response.headers
    assert fake.stats()["by_status"] == {status: 1}


async def test_api_keys_are_checked_and_never_echoed(fake):
    for key, status, error in [
        ("bad-key", 401, openai.AuthenticationError),
        ("no-credits-secret", 402, openai.APIStatusError),
    ]:
        async with openai.AsyncOpenAI(base_url=fake.base_url, api_key=key, max_retries=0) as oai:
            with pytest.raises(error) as info:
                await chat(oai, explain_messages())
        assert info.value.status_code == status
        assert key not in info.value.response.text
    assert info.value.body["code"] == "insufficient_credits"
    async with httpx.AsyncClient() as raw:
        url = f"{fake.base_url}/chat/completions"
        body = {"model": MODEL, "messages": [{"role": "user", "content": "hi"}]}
        missing = await raw.post(url, json=body)
        assert missing.status_code == 401
        bad = await raw.post(url, json=body, headers={"Authorization": "Bearer bad-key"})
        assert bad.json() == {
            "error": {
                "message": "Invalid API key",
                "type": "invalid_request_error",
                "param": None,
                "code": "invalid_api_key",
            }
        }
    stats = fake.stats()
    assert stats["by_kind"] == {"explain": 2, "other": 2}  # rejected requests keep their kind
    assert stats["by_status"] == {401: 3, 402: 1}
    assert set(stats["records"][0]) == {
        "kind",
        "model",
        "status",
        "n_examples",
        "prompt",
        "response_format",
        "fault",
        "duration_ms",
    }
    assert "bad-key" not in json.dumps(fake.stats())
    assert "secret" not in json.dumps(fake.stats())


async def test_garbage_fault(fake, client):
    fake.set_fault("garbage")
    explain = await chat(client, explain_messages())
    assert "[EXPLANATION]" not in explain.choices[0].message.content
    detection = await chat(client, detection_prompt.prompt(examples_block(TEXTS), EXPLANATION))
    with pytest.raises(ValueError, match="No match"):
        scorer_for(len(TEXTS))._parse(detection.choices[0].message.content)


async def test_wrong_length_fault(fake, client):
    fake.set_fault("wrong_length")
    detection = await chat(client, detection_prompt.prompt(examples_block(TEXTS), EXPLANATION))
    labels = json.loads(detection.choices[0].message.content)
    assert labels == DETECTION[:-1]
    with pytest.raises(AssertionError):
        scorer_for(len(TEXTS))._parse(detection.choices[0].message.content)
    explain = await chat(client, explain_messages())
    assert "[EXPLANATION]" not in explain.choices[0].message.content


async def test_hang_times_out_and_stop_returns_promptly(fake):
    fake.set_fault("hang")
    async with openai.AsyncOpenAI(
        base_url=fake.base_url, api_key="k", max_retries=0, timeout=0.5
    ) as oai:
        started = time.monotonic()
        with pytest.raises(openai.APITimeoutError):
            await chat(oai, explain_messages())
        assert time.monotonic() - started < 2
    # The handler notices the client left and stops counting the request as in flight.
    deadline = time.monotonic() + 2
    while fake.stats()["in_flight"] and time.monotonic() < deadline:
        await asyncio.sleep(0.02)
    assert fake.stats()["in_flight"] == 0
    assert fake.stats()["by_status"] == {0: 1}

    async with openai.AsyncOpenAI(
        base_url=fake.base_url, api_key="k", max_retries=0, timeout=30
    ) as oai:
        pending = asyncio.create_task(chat(oai, explain_messages()))
        deadline = time.monotonic() + 2
        while fake.stats()["in_flight"] == 0 and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        assert fake.stats()["in_flight"] == 1
        started = time.monotonic()
        await asyncio.to_thread(fake.stop)
        assert time.monotonic() - started < 2
        with pytest.raises(openai.APIConnectionError):
            await pending
    fake.stop()  # idempotent


async def test_model_directives(fake, client):
    with pytest.raises(openai.RateLimitError):
        await chat(client, explain_messages(), model=f"{MODEL}@fault=429")
    started = time.monotonic()
    response = await chat(client, explain_messages(), model="x@fault=garbage@latency=50")
    assert time.monotonic() - started >= 0.05
    assert response.model == "x"
    assert "[EXPLANATION]" not in response.choices[0].message.content
    fake.set_fault("500")
    response = await chat(client, explain_messages(), model="x@fault=none")
    assert response.choices[0].message.content.startswith("[EXPLANATION]:")
    with pytest.raises(openai.BadRequestError):
        await chat(client, explain_messages(), model="x@fault=teapot")
    assert [r["model"] for r in fake.stats()["records"]] == [MODEL, "x", "x", None]


async def test_fault_count_then_recovery_and_sdk_retry(fake, client):
    fake.set_fault("500", count=2)
    for _ in range(2):
        with pytest.raises(openai.InternalServerError):
            await chat(client, explain_messages())
    ok = await chat(client, explain_messages())
    assert ok.choices[0].message.content.startswith("[EXPLANATION]:")
    # The SDK's own retry honours retry-after-ms (50 ms) and then succeeds.
    fake.set_fault("429", count=1)
    retrying = client.with_options(max_retries=2)
    started = time.monotonic()
    ok = await chat(retrying, explain_messages())
    assert ok.choices[0].message.content.startswith("[EXPLANATION]:")
    assert time.monotonic() - started < 2
    assert fake.stats()["by_status"] == {500: 2, 200: 2, 429: 1}


async def test_control_and_stats_over_http(fake, client):
    root = fake.base_url.removesuffix("/v1")
    async with httpx.AsyncClient(base_url=root) as raw:
        assert (await raw.get("/health")).json() == {"status": "ok"}
        config = (await raw.post("/_control", json={"fault": "429", "fault_count": 1})).json()
        assert config["fault"] == "429" and config["fault_count"] == 1
        with pytest.raises(openai.RateLimitError):
            await chat(client, explain_messages())
        await chat(client, explain_messages())  # the one fault is used up

        await raw.post("/_control", json={"fault": "500"})
        with pytest.raises(openai.InternalServerError):
            await chat(client, explain_messages())
        await raw.post("/_control", json={"fault": None, "latency_ms": 100})
        started = time.monotonic()
        await chat(client, explain_messages())
        assert time.monotonic() - started >= 0.1
        assert (await raw.post("/_control", json={"fault": "nope"})).status_code == 400

        stats = (await raw.get("/_stats")).json()
        assert stats["requests"] == 4
        assert stats["by_status"] == {"429": 1, "200": 2, "500": 1}
        assert stats["by_kind"] == {"explain": 4}
        assert stats["in_flight"] == 0
        assert len(stats["records"]) == 4
        assert (await raw.delete("/_stats")).json()["requests"] == 0
    assert fake.stats()["requests"] == 0


async def test_unknown_routes_answer_openai_style_errors(fake):
    root = fake.base_url.removesuffix("/v1")
    async with httpx.AsyncClient(base_url=root) as raw:
        missing = await raw.get("/v1/nothing")
        assert missing.status_code == 404
        assert missing.json()["error"]["code"] == "not_found"
        wrong_method = await raw.get("/v1/chat/completions")
        assert wrong_method.status_code == 405
        assert wrong_method.json()["error"]["type"] == "invalid_request_error"
    assert fake.stats()["requests"] == 0


async def test_hang_gives_up_at_its_cap(fake, client, monkeypatch):
    monkeypatch.setattr(fake_llm_app, "MAX_HANG_S", 0.1)
    with pytest.raises(openai.APIStatusError) as info:
        await chat(client, explain_messages(), model=f"{MODEL}@fault=hang")
    assert info.value.status_code == 504
    assert fake.stats()["by_status"] == {504: 1}


async def test_models_and_other_prompts(fake, client):
    models = await client.models.list()
    assert MODEL in [m.id for m in models.data]
    other = await chat(client, [{"role": "user", "content": "Hello?"}])
    assert other.choices[0].message.content == "I am a fake model."
    assert fake.stats()["by_kind"] == {"other": 1}


async def test_peak_in_flight_with_concurrent_requests(fake, client):
    fake.set_latency(0.2)
    started = time.monotonic()
    responses = await asyncio.gather(*(chat(client, explain_messages()) for _ in range(4)))
    elapsed = time.monotonic() - started
    assert len(responses) == 4
    assert elapsed < 0.6  # they overlapped
    stats = fake.stats()
    assert stats["peak_in_flight"] >= 4
    assert stats["in_flight"] == 0
    fake.reset_stats()
    assert fake.stats()["peak_in_flight"] == 0


def test_lifecycle():
    srv = FakeLLMServer(latency_s=0.0, fault="garbage", fault_count=1, retry_after_ms=10)
    srv.stop()  # not started: no-op
    with srv:
        assert srv.port > 0
        assert srv.base_url == f"http://127.0.0.1:{srv.port}/v1"
        with pytest.raises(RuntimeError):
            srv.start()
    srv.stop()
    with pytest.raises(ValueError):
        srv.set_fault("teapot")
    with srv:  # restartable
        assert httpx.get(f"http://127.0.0.1:{srv.port}/health").status_code == 200


def test_cli_serves_until_sigterm():
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "autointerp_testing.fake_llm",
            "--port",
            "0",
            "--latency-ms",
            "0",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        line = proc.stdout.readline()
        base_url = line.strip().rsplit(" ", 1)[-1]
        assert base_url.startswith("http://127.0.0.1:") and base_url.endswith("/v1")
        health = httpx.get(base_url.removesuffix("/v1") + "/health")
        assert health.json() == {"status": "ok"}
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=5) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


# ------------------------------------------------------------------------------------------
# Hostile answers: 200s that are not chat completions, implausible usage, a slow drip
# ------------------------------------------------------------------------------------------


async def _raw_chat(fake, model: str, **client_options) -> httpx.Response:
    async with httpx.AsyncClient(**client_options) as raw:
        return await raw.post(
            f"{fake.base_url}/chat/completions",
            json={"model": model, "messages": explain_messages()},
            headers={"Authorization": "Bearer k"},
        )


async def test_not_json_fault_is_a_200_json_response_that_is_not_json(fake):
    response = await _raw_chat(fake, f"{MODEL}@fault=not_json")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")
    assert response.text.startswith('{"id": "chatcmpl-fake-')  # a completion cut off
    with pytest.raises(json.JSONDecodeError):
        response.json()
    assert fake.stats()["by_status"] == {200: 1}
    assert fake.stats()["records"][0]["fault"] == "not_json"


async def test_choices_string_and_no_message_faults(fake):
    fake.set_fault("choices_string")
    body = (await _raw_chat(fake, MODEL)).json()
    assert body["choices"] == "oops"
    assert body["object"] == "chat.completion" and body["usage"]["total_tokens"] > 0
    fake.set_fault(None)
    response = await _raw_chat(fake, f"{MODEL}@fault=no_message")
    assert response.status_code == 200
    [choice] = response.json()["choices"]
    assert "message" not in choice
    assert choice["finish_reason"] == "stop"
    assert fake.stats()["by_status"] == {200: 2}


async def test_body_faults_over_control(fake):
    root = fake.base_url.removesuffix("/v1")
    async with httpx.AsyncClient(base_url=root) as raw:
        for mode in sorted(fake_llm_faults.BODY_FAULTS | {"bad_usage", "drip"}):
            config = (await raw.post("/_control", json={"fault": mode, "fault_count": 1})).json()
            assert (config["fault"], config["fault_count"]) == (mode, 1)
    assert fake_llm_faults.BODY_FAULTS < fake_llm_faults.FAULT_MODES


async def test_bad_usage_fault_answers_right_with_implausible_counts(fake, client):
    bad = fake_llm_faults.BAD_USAGES
    # Each kind of implausible count (negative, huge, not a number) on every field in turn.
    for field in ("prompt_tokens", "completion_tokens", "total_tokens"):
        values = [usage[field] for usage in bad]
        assert any(isinstance(v, int) and v < 0 for v in values)
        assert 10**15 in values
        assert any(isinstance(v, str) and not v.isdigit() for v in values)
    fake.set_fault("bad_usage")
    for expected in [*bad, bad[0]]:  # taken in turn, from the first
        body = (await _raw_chat(fake, MODEL)).json()
        assert body["choices"][0]["message"]["content"] == f"[EXPLANATION]: {EXPLANATION}"
        usage = body["usage"]
        assert {k: usage[k] for k in expected} == expected
        assert usage["cost"] > 0  # the cost stays plausible
    # The openai SDK hands the counts over without validating them.
    response = await chat(client, explain_messages())
    assert response.choices[0].message.content == f"[EXPLANATION]: {EXPLANATION}"
    assert response.usage.completion_tokens == bad[1]["completion_tokens"]


async def test_drip_fault_sends_the_right_answer_slowly(fake, client, monkeypatch):
    monkeypatch.setattr(fake_llm_app, "DRIP_INTERVAL_S", 0.001)
    monkeypatch.setattr(fake_llm_app, "DRIP_CHUNK_BYTES", 64)
    response = await chat(client, explain_messages(), model=f"{MODEL}@fault=drip")
    assert response.choices[0].message.content == f"[EXPLANATION]: {EXPLANATION}"
    assert response.usage.prompt_tokens > 1
    stats = fake.stats()
    assert stats["by_status"] == {200: 1} and stats["in_flight"] == 0
    assert stats["records"][0]["fault"] == "drip"


async def test_drip_fault_beats_a_per_read_timeout(fake):
    # No single read waits longer than DRIP_INTERVAL_S (0.2 s), so a 0.5 s read timeout never
    # fires, though the whole answer takes minutes.
    fake.set_fault("drip")
    url = f"{fake.base_url}/chat/completions"
    body = {"model": MODEL, "messages": explain_messages()}
    async with httpx.AsyncClient(timeout=0.5) as raw:
        async with raw.stream("POST", url, json=body, headers={"Authorization": "k"}) as r:
            assert r.status_code == 401  # auth is checked before any fault
        headers = {"Authorization": "Bearer k"}
        async with raw.stream("POST", url, json=body, headers=headers) as response:
            assert response.status_code == 200
            size = int(response.headers["content-length"])
            assert size > 200  # some hundred bytes: over 40 s at 1 byte per 0.2 s
            received = b""
            started = time.monotonic()
            async for piece in response.aiter_raw():
                received += piece
                if time.monotonic() - started > 0.7:
                    break
            assert 2 <= len(received) <= 8, received
            assert received == b'{"id": "chatcmpl-fake-'[: len(received)]
            assert fake.stats()["in_flight"] == 1  # a drip is in flight until its last byte
    # The client left: the drip stops and is recorded as unanswered.
    deadline = time.monotonic() + 2
    while fake.stats()["in_flight"] and time.monotonic() < deadline:
        await asyncio.sleep(0.02)
    assert fake.stats()["by_status"] == {401: 1, 0: 1}
    # The SDK's timeout bounds each read, not the whole answer: only a total limit ends it.
    async with openai.AsyncOpenAI(
        base_url=fake.base_url, api_key="k", max_retries=0, timeout=0.5
    ) as oai:
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(1.2):
                await chat(oai, explain_messages())


# --- a hostile provider (issue 17) ----------------------------------------------------------


async def test_answer_directive_serves_each_hostile_answer(fake):
    for name, content in fake_llm_faults.HOSTILE_ANSWERS.items():
        body = (await _raw_chat(fake, f"{MODEL}@answer={name}")).json()
        assert body["choices"][0]["message"]["content"] == content
    assert fake_llm_faults.HOSTILE_ANSWERS["spaces"] == "Explanation: a" + " " * 2500 + "b"
    assert fake_llm_faults.HOSTILE_ANSWERS["brackets"] == "[" * 60000
    assert fake_llm_faults.HOSTILE_ANSWERS["think"] == "<think>" * 8000
    response = await _raw_chat(fake, f"{MODEL}@answer=nope")
    assert response.status_code == 400
    assert "answer directive 'nope'" in response.json()["error"]["message"]


async def test_hostile_body_faults(fake):
    body = (await _raw_chat(fake, f"{MODEL}@fault=huge_cost")).json()
    assert body["usage"]["cost"] == 1e308
    assert body["choices"][0]["message"]["content"] == f"[EXPLANATION]: {EXPLANATION}"
    response = await _raw_chat(fake, f"{MODEL}@fault=nested_body")
    assert response.content == b"[" * 100_000 + b"]" * 100_000
    url = f"{fake.base_url}/chat/completions"
    request = {"model": f"{MODEL}@fault=gzip_bomb", "messages": explain_messages()}
    async with (
        httpx.AsyncClient(timeout=30) as raw,
        raw.stream("POST", url, json=request, headers={"Authorization": "Bearer k"}) as bomb,
    ):
        assert bomb.headers["content-encoding"] == "gzip"
        sent = 0
        async for piece in bomb.aiter_raw():
            sent += len(piece)
        assert sent < 1024 * 1024  # about 200 KB on the wire, 200 MB decoded
    key = "sk-echo-0123456789abcdef"
    async with httpx.AsyncClient(timeout=30) as raw:
        response = await raw.post(
            url,
            json={"model": f"{MODEL}@fault=echo_key", "messages": explain_messages()},
            headers={"Authorization": f"Bearer {key}"},
        )
    assert response.status_code == 400
    message = response.json()["error"]["message"]
    assert key in message and key.upper() in message
    assert "\\u0073\\u006b" in message  # JSON-escaped, character by character
