"""Which prompt a chat request carries, read from its content as a model would read it.

The service's prompts carry no marker for test doubles, so each format is recognised by the
sentences of its system prompt and the structure of its last user message:

* ``oai_token_act_pair`` (autointerp's OpenAI neuron-explainer format): a system prompt about
  interpreting "a single neuron" whose excerpts list ``token<TAB>activation`` lines, and a
  last user message that asks to ``Complete the sentence: "the main thing this neuron does
  is find ..."``;
* ``np_max_act`` / ``np_max_act_logits`` (Neuronpedia's max-activation format): a system
  prompt that explains "what a neuron in a neural network responds to" and walks "Method 1:
  Look at MAX_ACTIVATING_TOKENS", and a last user message with the ``<MAX_ACTIVATING_TOKENS>``
  and ``<TOP_ACTIVATING_TEXTS>`` lists and the "Explanation of neuron N behavior:" line; the
  logits variant's system prompt also has a method that looks at
  TOKENS_AFTER_MAX_ACTIVATING_TOKEN and answers 'say [the pattern]', and its user message the
  ``<TOKENS_AFTER_MAX_ACTIVATING_TOKEN>`` and ``<TOP_POSITIVE_LOGITS>`` lists;
* ``recall`` (the recall judge): a system prompt that checks explanations of features against
  text and wants "one boolean per text", and a user message with an ``Explanation:`` line
  and numbered ``Text N:`` lines;
* ``np_acts_logits_general`` and ``python_code`` (Neuronpedia's general max-activation and
  logits explainer and its Python-code explainer, from ``automated-interpretability``'s
  explainer.py): a system prompt that starts "You are explaining the behavior of a neuron in
  a neural network" and asks for "a concise explanation (3 to 20 words)"; the general one's
  lists TOP_POSITIVE_LOGITS among its four lists, the Python one says "This specific neuron
  is trained on Python code";
* ``oai_attention_head`` (OpenAI's attention-head explainer as Neuronpedia's webapp sends
  it): a system prompt that starts "We're studying attention heads in a neural network" and
  a last user message with the "Explanation of attention head N behavior:" line;
* ``simulation_ev`` (OpenAI's token<TAB>activation simulator for chat models, the
  expected-value simulation): a system prompt with "We're studying neurons in a neural
  network", "predict its activations" and "token<tab>activation", and a last user message
  with the "Tokens without Activations:" and "Tokens with Activations:" lines;
* delphi's prompts by their shapes: ``[EXPLANATION]`` in the system prompt (explain), a
  ``Latent explanation:`` / ``Text examples:`` block (detection, or fuzz when the system
  prompt talks about ``<<``/``>>`` highlighting), ``[RESPONSE]:`` and "intruder" in the system
  prompt (intruder), a last user message that is the simulation JSON (simulation);
* anything else is ``other``.

Sentences are compared with runs of whitespace (newlines included) read as one space, so a
re-wrapped prompt is still recognised.
"""

from __future__ import annotations

import itertools
import json
import re
from dataclasses import dataclass
from typing import Any

__all__ = [
    "ANCHOR_SIGNATURES",
    "REQUEST_KINDS",
    "SIGNATURES",
    "TEST_ONLY_MARKERS",
    "Signature",
    "is_fuzz_system_prompt",
    "is_intruder_system_prompt",
    "last_user_message",
    "message_text",
    "parse_classification_prompt",
    "parse_recall_prompt",
    "parse_simulation_ev_prompt",
    "parse_simulation_ev_sequences",
    "request_kind",
    "simulation_request",
    "split_examples",
    "system_prompt",
]

REQUEST_KINDS: tuple[str, ...] = (
    "explain",
    "detection",
    "fuzz",
    "oai_token_act_pair",
    "np_max_act",
    "np_max_act_logits",
    "np_acts_logits_general",
    "python_code",
    "oai_attention_head",
    "recall",
    "simulation",
    "simulation_ev",
    "intruder",
    "other",
)
"""Every kind :func:`request_kind` returns (the keys of ``stats()["by_kind"]``)."""


@dataclass(frozen=True)
class Signature:
    """What a prompt format's messages contain: ``kind`` matches when the system prompt
    contains every sentence in ``system`` and the last user message every line in ``user``."""

    kind: str
    system: tuple[str, ...]
    user: tuple[str, ...]

    def matches(self, system: str, last_user: str) -> bool:
        """Whether a request with this system prompt and last user message has this format
        (whitespace runs compare as one space)."""
        return self._matches(_spaced(system), _spaced(last_user))

    def _matches(self, system: str, last_user: str) -> bool:
        return all(_spaced(text) in system for text in self.system) and all(
            _spaced(text) in last_user for text in self.user
        )


def _spaced(text: str) -> str:
    """``text`` with every run of whitespace read as one space, and none at either end."""
    return " ".join(text.split())


SIGNATURES: tuple[Signature, ...] = (
    Signature(
        "oai_token_act_pair",
        system=("interpret a single neuron inside a language model", "token<TAB>activation"),
        user=('Complete the sentence: "the main thing this neuron does is find ..."',),
    ),
    # The logits variant first: its prompts also hold everything the plain one has.
    Signature(
        "np_max_act_logits",
        system=(
            "what a neuron in a neural network responds to",
            "Method 1: Look at MAX_ACTIVATING_TOKENS.",
            "Method 2: Look at TOKENS_AFTER_MAX_ACTIVATING_TOKEN.",
            "answer 'say [the pattern]'",
        ),
        user=(
            "<TOKENS_AFTER_MAX_ACTIVATING_TOKEN>",
            "<MAX_ACTIVATING_TOKENS>",
            "<TOP_POSITIVE_LOGITS>",
            "<TOP_ACTIVATING_TEXTS>",
            "behavior: ",
        ),
    ),
    Signature(
        "np_max_act",
        system=(
            "what a neuron in a neural network responds to",
            "Method 1: Look at MAX_ACTIVATING_TOKENS.",
            "Method 2: Look at TOP_ACTIVATING_TEXTS",
        ),
        user=("<MAX_ACTIVATING_TOKENS>", "<TOP_ACTIVATING_TEXTS>", "behavior: "),
    ),
    Signature(
        "recall",
        system=("You check explanations of features of a language model", "one boolean per text"),
        user=("Explanation: ", "Text 1: "),
    ),
)
"""autointerp's own prompt formats, by content, in the order they are tried."""

ANCHOR_SIGNATURES: tuple[Signature, ...] = (
    Signature(
        "python_code",
        system=(
            "You are explaining the behavior of a neuron in a neural network.",
            "This specific neuron is trained on Python code.",
            "a concise explanation (3 to 20 words)",
        ),
        user=(),
    ),
    Signature(
        "np_acts_logits_general",
        system=(
            "You are explaining the behavior of a neuron in a neural network.",
            "a concise explanation (3 to 20 words)",
            "TOP_POSITIVE_LOGITS, which are the most likely words or tokens",
        ),
        user=(),
    ),
    Signature(
        "oai_attention_head",
        system=(
            "We're studying attention heads in a neural network.",
            "Attention heads always attend from a token to a token earlier in the sequence",
        ),
        user=("Explanation of attention head",),
    ),
    Signature(
        "simulation_ev",
        system=(
            "We're studying neurons in a neural network.",
            "try to predict its activations",
            "The activation format is token<tab>activation",
        ),
        user=("Tokens without Activations:", "Tokens with Activations:"),
    ),
)
"""The formats autointerp writes from the anchors' own sources (Neuronpedia's and OpenAI's),
recognised by the anchors' fixed system-prompt sentences; tried after :data:`SIGNATURES`."""

TEST_ONLY_MARKERS: tuple[str, ...] = (
    "FORMAT:",
    "oai_token_act_pair",
    "np_max_act",
    "recall_judge",
    "@fault=",
    "@latency=",
    "@logprobs=",
    "@reasoning=",
)
"""Text that would exist only for a test double: format-name markers and the model-name
directives this fake reads. No prompt the service sends may contain any of them."""

_CLASSIFICATION_RE = re.compile(
    r"Latent explanation:[ \t]*(?P<explanation>.*?)\s*\n\s*"
    r"Te(?:x|s)t examples:[ \t]*\n?(?P<examples>.*)",
    re.DOTALL,
)
_EXAMPLE_MARKER_RE = re.compile(r"^Example (\d+):", re.MULTILINE)
_TEXT_MARKER_RE = re.compile(r"^Text (\d+):", re.MULTILINE)
_RECALL_EXPLANATION_RE = re.compile(r"^Explanation:[ \t]*(.*)$", re.MULTILINE)
_SYSTEM_ROLES = ("system", "developer")


def message_text(message: Any) -> str:
    """The text of one chat message; list-of-parts content is joined."""
    if not isinstance(message, dict):
        return ""
    content = message.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = [
            part.get("text", "")
            for part in content
            if isinstance(part, dict) and isinstance(part.get("text"), str)
        ]
        return "".join(parts)
    return ""


def last_user_message(messages: list[Any]) -> str:
    """The text of the last ``user`` message ("" if there is none)."""
    for message in reversed(messages):
        if isinstance(message, dict) and message.get("role") == "user":
            return message_text(message)
    return ""


def system_prompt(messages: list[Any]) -> str:
    """The ``system`` and ``developer`` messages, joined by newlines."""
    return "\n".join(
        message_text(m) for m in messages if isinstance(m, dict) and m.get("role") in _SYSTEM_ROLES
    )


def split_examples(block: str, marker_re: re.Pattern[str] = _EXAMPLE_MARKER_RE) -> list[str]:
    """Split ``Example N:`` blocks; numbers must run consecutively so text can't fake a marker."""
    markers = list(marker_re.finditer(block))
    if not markers:
        return []
    accepted: list[re.Match[str]] = []
    expected = int(markers[0].group(1))
    for marker in markers:
        if int(marker.group(1)) == expected:
            accepted.append(marker)
            expected += 1
    texts = []
    for current, following in itertools.zip_longest(accepted, accepted[1:]):
        end = following.start() if following is not None else len(block)
        text = block[current.end() : end]
        texts.append(text.removesuffix("\n") if following is not None else text.rstrip("\n"))
    return texts


def parse_classification_prompt(last_user_message: str) -> tuple[str, list[str]] | None:
    """``(explanation, example texts)`` of a delphi classifier prompt, or None if it isn't one."""
    match = _CLASSIFICATION_RE.search(last_user_message)
    if match is None:
        return None
    return match.group("explanation").strip(), split_examples(match.group("examples"))


def parse_recall_prompt(last_user_message: str) -> tuple[str, list[str]] | None:
    """``(explanation, texts)`` of a recall-judge prompt, or None if it isn't one."""
    explanation = _RECALL_EXPLANATION_RE.search(last_user_message)
    if explanation is None:
        return None
    texts = split_examples(last_user_message[explanation.end() :], _TEXT_MARKER_RE)
    # Each text is one line; the last one is followed by the closing instruction.
    return explanation.group(1).strip(), [text.split("\n", 1)[0].strip() for text in texts]


def is_fuzz_system_prompt(system_prompt: str) -> bool:
    """Fuzzing's system prompt talks about ``<<``/``>>`` highlighting; detection's does not."""
    return "<<" in system_prompt and ">>" in system_prompt


def is_intruder_system_prompt(system_prompt: str) -> bool:
    """delphi's intruder prompt asks for ``[RESPONSE]:`` and talks about an intruder."""
    return "[RESPONSE]:" in system_prompt and "intruder" in system_prompt.lower()


def simulation_request(last_user_message: str) -> dict[str, Any] | None:
    """The JSON object of delphi's simulation prompt (``to_find``, ``document``,
    ``activations``), or None if the message isn't one."""
    text = last_user_message.strip()
    if not text.startswith("{"):
        return None
    try:
        data = json.loads(text)
    except ValueError:
        return None
    if not isinstance(data, dict) or not isinstance(data.get("to_find"), str):
        return None
    entries = data.get("activations")
    if not isinstance(entries, list) or not all(
        isinstance(entry, dict) and isinstance(entry.get("token"), str) for entry in entries
    ):
        return None
    return data


_EV_PROMPT_RE = re.compile(
    r"Explanation of neuron \d+ behavior:[ \t]*(?P<explanation>.*?)\s*\n\s*\n"
    r"Sequence 1 Tokens without Activations:[ \t]*\n(?P<body>.*)\n"
    r"Sequence 1 Tokens with Activations:\s*$",
    re.DOTALL,
)
_EV_LINE_END = "\u0f17\n"
_EV_PREFIX = "the main thing this neuron does is find"


_EV_ASKED_RE = re.compile(r"Sequence \d+ Tokens without Activations:[ \t]*\n")


def parse_simulation_ev_sequences(last_user_message: str) -> tuple[str, list[list[str]]] | None:
    """``(explanation, tokens of each sequence)`` of the expected-value simulation prompt's
    last user message (the explanation without "the main thing this neuron does is find"), or
    None if it isn't one. A prompt may ask for several sequences ("Sequence 1 Tokens without
    Activations:", "Sequence 2 ..."), answered in turn. Tokens are the ``token<TAB>\u0f17``
    lines' texts, verbatim (newlines included)."""
    match = _EV_PROMPT_RE.search(last_user_message)
    if match is None:
        return None
    explanation = match.group("explanation").strip()
    if explanation.lower().startswith(_EV_PREFIX):
        explanation = explanation[len(_EV_PREFIX) :].strip()
    asked = "Sequence 1 Tokens without Activations:\n" + match.group("body")
    sequences = []
    for body in _EV_ASKED_RE.split(asked)[1:]:
        if _EV_LINE_END in body:
            lines = body.split(_EV_LINE_END)[:-1]  # what follows the last mark is no line
        else:  # a prompt written without the end-of-line mark
            lines = [line for line in body.split("\n") if "\t" in line]
        sequences.append([line.rpartition("\t")[0] if "\t" in line else line for line in lines])
    return explanation, sequences


def parse_simulation_ev_prompt(last_user_message: str) -> tuple[str, list[str]] | None:
    """``(explanation, tokens)`` of a one-sequence expected-value simulation prompt (see
    :func:`parse_simulation_ev_sequences`), or None if it isn't one."""
    parsed = parse_simulation_ev_sequences(last_user_message)
    if parsed is None or len(parsed[1]) != 1:
        return None
    return parsed[0], parsed[1][0]


def request_kind(messages: list[Any]) -> str:
    """One of :data:`REQUEST_KINDS` for a chat request's messages (see the module docstring)."""
    system = system_prompt(messages)
    last_user = last_user_message(messages)
    spaced_system, spaced_user = _spaced(system), _spaced(last_user)
    for signature in (*SIGNATURES, *ANCHOR_SIGNATURES):
        if signature._matches(spaced_system, spaced_user):
            return signature.kind
    if "[EXPLANATION]" in system:
        return "explain"
    if parse_classification_prompt(last_user) is not None:
        return "fuzz" if is_fuzz_system_prompt(system) else "detection"
    if is_intruder_system_prompt(system):
        return "intruder"
    if simulation_request(last_user) is not None:
        return "simulation"
    if not system and any(
        "[EXPLANATION]:" in message_text(m)
        for m in messages
        if isinstance(m, dict) and m.get("role") == "assistant"
    ):
        return "explain"
    return "other"
