"""Prompts are laid out for providers' automatic prompt caching (issue 21, item 6): the fixed
part of every LLM method's prompt (system prompt, few-shot turns) comes first and is
byte-identical across latents and across the calls of one request, so a provider that caches
prompt prefixes (OpenAI, DeepSeek, Anthropic via OpenRouter, vLLM's prefix cache, llama.cpp's
slot cache) can reuse it. Only the last message carries the latent's own records and
explanation.

Measured here (the fake LLM, cat vs. sun records of tests/samples.py): the shared prefix is
59-93 % of a prompt's characters (recall's short judge prompt is the low end)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from google.protobuf import json_format
from samples import cat_records
from support import InProcessApp

from autointerp_grpc.backends import llm as llm_module
from autointerp_grpc.gen.autointerp.v1 import autointerp_pb2 as pb
from autointerp_grpc.usage import Usage

METHODS = {
    "default": "explain",
    "contrastive": "explain",
    "np_max_act": "explain",
    "oai_token_act_pair": "explain",
    "np_acts_logits_general": "explain",
    "python_code": "explain",
    "detection": "score",
    "fuzz": "score",
    "simulation": "score",
    "intruder": "score",
    "recall": "score",
}


def _records(word: str) -> list[dict[str, Any]]:
    records = json.loads(json.dumps(cat_records()))
    for record in records:
        record["tokens"] = [token.replace("cat", word) for token in record["tokens"]]
    return records


def _body(method: str, word: str) -> dict[str, Any]:
    records = _records(word)
    body: dict[str, Any] = {
        "method": method,
        "llm": {"model": "openai/gpt-4o-mini", "apiKey": "sk-cache-layout-key"},
    }
    if METHODS[method] == "explain":
        body["activations"] = [r for r in records if max(r["values"]) > 0]
        if method == "contrastive":
            body["nonActivating"] = [r for r in records if max(r["values"]) <= 0]
    else:
        body["activations"] = records
    if method == "np_acts_logits_general":
        body["topPositiveLogits"] = [f" {word}"]
    if METHODS[method] == "score" and method != "intruder":
        body["explanation"] = f"the word {word}"
    return body


def _serial(messages: list[dict[str, Any]]) -> str:
    return "".join(f"<{m['role']}>{m['content']}" for m in messages)


def _common(a: str, b: str) -> int:
    n = 0
    while n < min(len(a), len(b)) and a[n] == b[n]:
        n += 1
    return n


@pytest.mark.parametrize("method", sorted(METHODS))
async def test_the_fixed_part_comes_first_and_never_changes(
    app: InProcessApp, clean_fake, monkeypatch: pytest.MonkeyPatch, method: str
) -> None:
    sent: list[list[dict[str, Any]]] = []
    generate = llm_module.LLMClient.generate

    async def capture(self: Any, prompt: Any, **kwargs: Any) -> Any:
        sent.append(llm_module.plain_messages(prompt))
        return await generate(self, prompt, **kwargs)

    monkeypatch.setattr(llm_module.LLMClient, "generate", capture)
    calls: dict[str, list[list[dict[str, Any]]]] = {}
    for word in ("cat", "sun"):
        sent.clear()
        path = f"/v1/{METHODS[method]}"
        response = await app.rest.post(path, json=_body(method, word), headers=app.headers)
        assert response.status_code == 200, response.text
        calls[word] = list(sent)
    first = calls["cat"][0]
    assert len(first) >= 2, first  # a fixed part, then the latent's own message
    fixed = _serial(first[:-1])
    # Every call of both latents starts with the same fixed messages, byte for byte.
    for prompt in [*calls["cat"], *calls["sun"]]:
        assert _serial(prompt[:-1]) == fixed, method
    shared = _common(_serial(first), _serial(calls["sun"][0]))
    assert shared >= len(fixed)
    assert shared / len(_serial(first)) >= 0.5, (method, shared, len(_serial(first)))


async def test_the_cached_share_is_reported(app: InProcessApp, clean_fake) -> None:
    """A provider's prompt-cache hits (``usage.prompt_tokens_details.cached_tokens``, played
    here by the fake) come back as ``usage.cachedPromptTokens``, and the CLI's summary line
    gives their share of the prompt tokens."""
    clean_fake.set_prompt_cache(True)
    usages = []
    for word in ("cat", "sun"):
        response = await app.rest.post(
            "/v1/score", json=_body("detection", word), headers=app.headers
        )
        assert response.status_code == 200, response.text
        usages.append(response.json()["usage"])
    # The first call of the first request is the cache's first sight of the fixed part.
    cached = [int(u.get("cachedPromptTokens", 0)) for u in usages]
    prompt = [int(u["promptTokens"]) for u in usages]
    assert 0 < cached[0] < prompt[0] and 0 < cached[1] < prompt[1], usages
    # The second request's calls all hit: the shared part is most of each prompt.
    assert cached[1] / prompt[1] > 0.5, usages

    total = Usage()
    for usage in usages:
        total.add(json_format.ParseDict(usage, pb.Usage()))
    share = total.cached_prompt_tokens / total.prompt_tokens
    assert f"{share:.0%}, from the provider's prompt cache" in total.describe()
