"""Samples and helpers the fake LLM's tests share."""

from __future__ import annotations

import openai

import autointerp_grpc.delphi_compat  # noqa: F401  (registers the vLLM shim before delphi)

# isort: split
from delphi.explainers.default.prompt_builder import build_prompt
from delphi.scorers.classifier.classifier import Classifier
from delphi.scorers.classifier.prompts import detection_prompt

MODEL = "openai/gpt-4o-mini"
EXPLANATION = 'Mentions of "cat", "felines"'
TEXTS = [
    " The cat sat\non the mat",  # 1 for detection (cat); no spans -> 0 for fuzz
    " A dog barked",  # 0 / 0
    " I like<< felines>> a lot",  # 1 / 1
    "<< Cat>> and<< dog>>",  # 1 / 0 (one span without a keyword)
    " fe<<lines>> split by markers",  # 1 (markers removed) / 0 ("lines" has no keyword)
]
DETECTION = [1, 0, 1, 1, 1]
FUZZ = [0, 0, 1, 0, 0]


def examples_block(texts: list[str]) -> str:
    """The examples block exactly as delphi's Classifier._build_prompt writes it."""
    return "\n".join(f"Example {i}: {text}" for i, text in enumerate(texts))


def explain_messages() -> list[dict]:
    return build_prompt(
        examples="The<< cat>> sat\nI like<< felines>>", activations=False, cot=False
    )


class _Scorer(Classifier):
    """Concrete Classifier so delphi's own _parse/_parse_logprobs can check our answers."""

    def _prepare(self, record):  # pragma: no cover - unused
        raise NotImplementedError

    def prompt(self, examples: str, explanation: str) -> list[dict]:  # pragma: no cover
        return detection_prompt.prompt(examples, explanation)


def scorer_for(n: int) -> _Scorer:
    return _Scorer(client=None, verbose=False, n_examples_shown=n)


async def chat(oai: openai.AsyncOpenAI, messages: list[dict], model: str = MODEL, **kwargs):
    return await oai.chat.completions.create(model=model, messages=messages, **kwargs)
