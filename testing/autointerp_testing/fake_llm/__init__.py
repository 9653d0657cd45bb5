"""A fake OpenAI-compatible chat-completions server for tests, benchmarks and client examples.

A real HTTP server on localhost (Starlette served by uvicorn on a background thread), so the
real ``openai`` client path is exercised end to end. It recognises every prompt the service
sends by its content (:mod:`.recognise`) and answers deterministically (:mod:`.answers`); the
request kind (in brackets) is what :meth:`FakeLLMServer.stats` counts:

* delphi's explanation prompt [explain] gets ``[EXPLANATION]: Mentions of "X", "Y"`` built
  from the most frequent ``<<highlighted>>`` spans of the last user message;
* delphi's detection and fuzzing prompts [detection, fuzz] get a list such as ``[1,0,1]``, one
  entry per ``Example N:``, decided by whether the explanation's keywords occur in the example
  (detection) or in every highlighted span (fuzzing); with ``logprobs: true`` per-token
  logprobs come back too;
* the OpenAI-style ``token<TAB>activation`` prompt [oai_token_act_pair] gets a phrase naming
  the most active tokens, e.g. ``the token "cat"``;
* the Neuronpedia-style prompts [np_max_act, np_max_act_logits, np_acts_logits_general,
  python_code] get a short label built from the most frequent token of the
  ``<MAX_ACTIVATING_TOKENS>`` list (and the top logits, for the two that list them);
* OpenAI's attention-head prompt [oai_attention_head] gets `` attends to "X" from "Y".``
  with the most frequent ``**to**`` and ``[[from]]`` tokens of its last ``Activations:``;
* the recall judge [recall] gets ``{"answers": [...]}``, true where an explanation keyword
  occurs in the text;
* delphi's JSON simulation prompt [simulation] gets the same JSON back with each activation 10
  where the token contains a keyword of ``to_find``, else 0;
* the expected-value simulation prompt [simulation_ev] (``token<TAB>\u0f17`` lines) gets
  ``token<TAB>digit\u0f17`` lines, the digit 10 where the token contains a keyword of the
  explanation and 0 elsewhere, and, when asked for, OpenAI-shaped ``logprobs.content`` whose
  top alternatives at each digit give an expected value near 9.4 or 0.2 (:mod:`.simulation_ev`);
* delphi's intruder prompt [intruder] gets ``[RESPONSE]: i`` for the example whose
  highlighted spans share the fewest items with the other examples' spans;
* anything else [other] gets ``I am a fake model.``.

``response_format`` is accepted and ignored (the JSON answers are JSON anyway). ``usage``
carries an OpenRouter-style ``cost``.

Faults ("429", "500", "bad_key", "no_credits", "garbage", "wrong_length", "hang", "think",
"no_logprobs", "reject_logprobs", "reject_json_schema", answers that are not chat
completions or arrive too slowly: "not_json", "choices_string", "no_message", "bad_usage",
"drip", and a hostile provider's: "huge_cost", "nested_body", "huge_body", "gzip_bomb",
"lying_length", "echo_key", "redirect_bomb", "logprobs_flood";
:mod:`.faults` describes each; ``@answer=<name>`` serves one of its hostile answers) and
latency can be injected through the constructor and setters, per request through the
model name (``gpt-4o-mini@fault=429@latency=200``) or at runtime with ``POST /_control``
(:mod:`.faults`). "think" prepends a ``<think>`` block holding a wrong ``[EXPLANATION]:``
line and a wrong list to the correct answer, as reasoning models do; the ``@reasoning=1``
model directive instead returns that trace in ``choices[0].message.reasoning`` (as OpenRouter
does) with a clean content. ``@logprobs=0`` makes it ignore ``logprobs: true``, like a
provider without log probabilities. ``GET /_stats`` and :meth:`FakeLLMServer.stats` report
request counts and the peak number of concurrent requests. A request-rate limit
(:meth:`FakeLLMServer.set_rate_limit`, ``rate_limit_rps`` in ``POST /_control``, a token
bucket, :mod:`.ratelimit`) answers requests beyond it with HTTP 429 and the ``retry-after-ms``
at which the next would pass. API keys are never logged or echoed.

Run standalone with ``python -m autointerp_testing.fake_llm --port 8900``.
"""

from __future__ import annotations

from autointerp_testing.fake_llm.answers import (
    NO_PATTERN,
    OTHER_ANSWER,
    Answer,
    answer_logprobs,
    attention_answer,
    classify_answer,
    explain_answer,
    explanation_keywords,
    format_labels,
    intruder_answer,
    np_answer,
    oai_answer,
    recall_answer,
    simulation_answer,
    simulation_ev_answer,
)
from autointerp_testing.fake_llm.app import COST_PER_TOKEN, MAX_HANG_S, build_app, warm_gzip_bomb
from autointerp_testing.fake_llm.faults import (
    FAULT_MODES,
    GARBAGE_ANSWER,
    LOGPROBS_REJECTED,
    LONG_ANSWER,
    THINK_TRACE,
)
from autointerp_testing.fake_llm.ratelimit import TokenBucket
from autointerp_testing.fake_llm.recognise import (
    ANCHOR_SIGNATURES,
    REQUEST_KINDS,
    SIGNATURES,
    TEST_ONLY_MARKERS,
    parse_classification_prompt,
    parse_recall_prompt,
    parse_simulation_ev_prompt,
    request_kind,
)
from autointerp_testing.fake_llm.server import FakeLLMServer
from autointerp_testing.fake_llm.simulation_ev import MATCH_DIGITS, OTHER_DIGITS, EvAnswer
from autointerp_testing.fake_llm.state import FakeLLMState

__all__ = [
    "ANCHOR_SIGNATURES",
    "COST_PER_TOKEN",
    "FAULT_MODES",
    "GARBAGE_ANSWER",
    "LOGPROBS_REJECTED",
    "LONG_ANSWER",
    "MATCH_DIGITS",
    "MAX_HANG_S",
    "NO_PATTERN",
    "OTHER_ANSWER",
    "OTHER_DIGITS",
    "REQUEST_KINDS",
    "SIGNATURES",
    "TEST_ONLY_MARKERS",
    "THINK_TRACE",
    "Answer",
    "EvAnswer",
    "FakeLLMServer",
    "FakeLLMState",
    "TokenBucket",
    "answer_logprobs",
    "attention_answer",
    "build_app",
    "classify_answer",
    "explain_answer",
    "explanation_keywords",
    "format_labels",
    "intruder_answer",
    "np_answer",
    "oai_answer",
    "parse_classification_prompt",
    "parse_recall_prompt",
    "parse_simulation_ev_prompt",
    "recall_answer",
    "request_kind",
    "simulation_answer",
    "simulation_ev_answer",
    "warm_gzip_bomb",
]
