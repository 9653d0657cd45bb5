"""The fake LLM's answers, one builder per prompt format, all deterministic.

Each answer is what a perfectly literal model would say: it reads the highlighted spans,
listed max tokens or explanation keywords of the prompt and nothing else. :class:`Answer` holds
the correct answer to one request and what the answering faults ("garbage", "wrong_length")
make of it.
"""

from __future__ import annotations

import collections
import json
import math
import re
from collections.abc import Iterable
from typing import Any

from autointerp_testing.fake_llm.faults import GARBAGE_ANSWER, LONG_ANSWER
from autointerp_testing.fake_llm.recognise import (
    is_fuzz_system_prompt,
    parse_classification_prompt,
    parse_recall_prompt,
    parse_simulation_ev_sequences,
    simulation_request,
    split_examples,
)
from autointerp_testing.fake_llm.simulation_ev import EvAnswer, ev_answer

__all__ = [
    "NO_PATTERN",
    "OTHER_ANSWER",
    "STOPWORDS",
    "Answer",
    "answer_logprobs",
    "attention_answer",
    "classify_answer",
    "explain_answer",
    "explanation_keywords",
    "format_labels",
    "highlighted_spans",
    "intruder_answer",
    "intruder_examples",
    "np_answer",
    "oai_answer",
    "recall_answer",
    "simulation_answer",
    "simulation_ev_answer",
]

STOPWORDS: frozenset[str] = frozenset(
    (
        *("a", "an", "the", "of", "in", "on", "at", "by", "as", "and", "or", "to", "for"),
        *("with", "from", "into", "about", "is", "are", "was", "were", "be", "been"),
        *("that", "this", "these", "those", "it", "its", "word", "words", "token", "tokens"),
        *("mention", "mentions", "mentioned", "related", "text", "texts", "phrase", "phrases"),
    )
)
"""Words of an explanation that never count as keywords."""

OTHER_ANSWER = "I am a fake model."
"""The answer to a prompt the fake does not recognise."""
NO_PATTERN = "No clear pattern"
_MAX_LISTED_SPANS = 3
_MAX_NP_TOKEN_WORDS = 3

_HIGHLIGHT_RE = re.compile(r"<<(.*?)>>", re.DOTALL)
_KEYWORD_RE = re.compile(r"[a-z0-9']+")
_TOKEN_ACT_LINE_RE = re.compile(r"^(.*)\t(-?\d+(?:\.\d+)?)[ \t]*$", re.MULTILINE)
_ANSWER_TOKEN_RE = re.compile(r"\s*[\w']+|\s*[^\w\s]|\s+")


def highlighted_spans(text: str) -> list[str]:
    """The ``<<...>>`` spans of ``text``, whitespace-stripped, empty ones dropped."""
    spans = (span.strip() for span in _HIGHLIGHT_RE.findall(text))
    return [span for span in spans if span]


def _ranked(counts: dict[str, float]) -> list[str]:
    """Keys by value, highest first; ties keep insertion (first occurrence) order."""
    return sorted(counts, key=lambda key: -counts[key])


def explain_answer(last_user_message: str) -> str:
    """The fake explainer's answer to delphi's explanation prompt.

    Lists up to three distinct highlighted spans, most frequent first (ties keep first
    occurrence), as ``[EXPLANATION]: Mentions of "X", "Y"``.
    """
    spans = highlighted_spans(last_user_message)
    if not spans:
        return f"[EXPLANATION]: {NO_PATTERN}"
    counts = collections.Counter(spans)  # keeps first-occurrence order; sorted() is stable
    listed = ", ".join(f'"{span}"' for span in _ranked(dict(counts))[:_MAX_LISTED_SPANS])
    return f"[EXPLANATION]: Mentions of {listed}"


def explanation_keywords(explanation: str) -> list[str]:
    """Lowercase words of ``explanation`` minus :data:`STOPWORDS`, deduplicated in order."""
    seen: dict[str, None] = {}
    for word in _KEYWORD_RE.findall(explanation.lower()):
        stripped = word.strip("'")
        if stripped and stripped not in STOPWORDS:
            seen.setdefault(stripped, None)
    return list(seen)


def _detect(keywords: list[str], text: str) -> int:
    plain = text.replace("<<", "").replace(">>", "").lower()
    return int(any(keyword in plain for keyword in keywords))


def _fuzz(keywords: list[str], text: str) -> int:
    spans = [span.lower() for span in _HIGHLIGHT_RE.findall(text)]
    if not spans:
        return 0
    return int(all(any(keyword in span for keyword in keywords) for span in spans))


def classify_answer(system_prompt: str, last_user_message: str) -> list[int]:
    """The fake classifier's 0/1 labels, one per example; [] if the message isn't a classifier
    prompt. Detection says 1 where an explanation keyword occurs in the example; fuzzing (told
    apart by ``system_prompt``) where every highlighted span holds one."""
    parsed = parse_classification_prompt(last_user_message)
    if parsed is None:
        return []
    explanation, examples = parsed
    keywords = explanation_keywords(explanation)
    if not keywords:
        return [0] * len(examples)
    judge = _fuzz if is_fuzz_system_prompt(system_prompt) else _detect
    return [judge(keywords, text) for text in examples]


def format_labels(labels: Iterable[int]) -> str:
    """``[1,0,1]``: the list format delphi's few-shot answers use."""
    return "[" + ",".join(str(label) for label in labels) + "]"


def oai_answer(last_user_message: str) -> str:
    """The fake answer to the OpenAI-style ``token<TAB>activation`` prompt.

    Names up to three distinct stripped tokens whose best activation is at least half the
    largest one, highest first: ``the token "cat"`` or ``the tokens "cat", "dog"``.
    """
    best: dict[str, float] = {}
    for match in _TOKEN_ACT_LINE_RE.finditer(last_user_message):
        token, value = match.group(1).strip(), float(match.group(2))
        if token and value > 0:
            best[token] = max(best.get(token, 0.0), value)
    if not best:
        return NO_PATTERN.lower()
    top = max(best.values())
    chosen = [token for token in _ranked(best) if best[token] * 2 >= top][:_MAX_LISTED_SPANS]
    listed = ", ".join(f'"{token}"' for token in chosen)
    return f"the token {listed}" if len(chosen) == 1 else f"the tokens {listed}"


def _tagged_lines(last_user_message: str, tag: str) -> list[str]:
    """The non-empty stripped lines of the last ``<tag>`` ... ``</tag>`` list of a Neuronpedia
    prompt ([] when there is none)."""
    start = last_user_message.rfind(f"<{tag}>")
    if start < 0:
        return []
    body = last_user_message[start + len(tag) + 2 :]
    end = body.find(f"</{tag}>")
    lines = body[: end if end >= 0 else len(body)].splitlines()
    return [line.strip() for line in lines if line.strip()]


def np_answer(last_user_message: str, logits: bool = False) -> str:
    """The fake answer to the Neuronpedia-style prompts: at most six words containing the most
    frequent token of the ``<MAX_ACTIVATING_TOKENS>`` list (ties: first listed), e.g.
    ``mentions of cat``; with ``logits`` and a non-empty ``<TOP_POSITIVE_LOGITS>`` list,
    ``cat predicting dog`` (its first token). A literal model: it answers with the bare
    label, without walking the methods."""
    counts = collections.Counter(_tagged_lines(last_user_message, "MAX_ACTIVATING_TOKENS"))
    if not counts:
        return NO_PATTERN.lower()
    top = " ".join(_ranked(dict(counts))[0].split()[:_MAX_NP_TOKEN_WORDS])
    promoted = _tagged_lines(last_user_message, "TOP_POSITIVE_LOGITS") if logits else []
    if promoted:
        return f"{top} predicting " + " ".join(promoted[0].split()[:_MAX_NP_TOKEN_WORDS])
    return f"mentions of {top}"


_TO_RE = re.compile(r"\*\*(.*?)\*\*", re.DOTALL)
_FROM_RE = re.compile(r"\[\[(.*?)\]\]", re.DOTALL)


def _most_common(tokens: list[str]) -> str | None:
    shown = [token.strip() or token for token in tokens if token]
    return _ranked(dict(collections.Counter(shown)))[0] if shown else None


def attention_answer(last_user_message: str) -> str:
    """The fake answer to OpenAI's attention-head prompt: what completes "this attention head"
    from the last ``Activations:`` block's markers, `` attends to "X" from "Y".`` with X the
    most frequent ``**to**`` token and Y the most frequent ``[[from]]`` token (stripped; ties:
    first seen). A token marked both ways (``[[**x**]]``) counts for both."""
    start = last_user_message.rfind("Activations:")
    block = last_user_message[start + len("Activations:") :] if start >= 0 else last_user_message
    end = block.rfind("Explanation of attention head")
    block = block[:end] if end >= 0 else block
    to = _most_common(_TO_RE.findall(block))
    source = _most_common(
        [token.removeprefix("**").removesuffix("**") for token in _FROM_RE.findall(block)]
    )
    if to is None or source is None:
        return f" attends to {NO_PATTERN.lower()}."
    return f' attends to "{to}" from "{source}".'


def recall_answer(last_user_message: str) -> list[bool] | None:
    """The fake judge's booleans: true where one of the explanation's keywords occurs in the
    text (case-insensitive); None if the message isn't a recall prompt."""
    parsed = parse_recall_prompt(last_user_message)
    if parsed is None:
        return None
    explanation, texts = parsed
    keywords = explanation_keywords(explanation)
    return [any(keyword in text.lower() for keyword in keywords) for text in texts]


def simulation_answer(last_user_message: str, drop_last: bool = False) -> str | None:
    """delphi's simulation JSON with each activation filled in: 10 where the token (stripped,
    lowercased) contains a keyword of ``to_find``, else 0; tokens verbatim, one entry per
    token (one fewer with ``drop_last``). None if the message isn't a simulation prompt."""
    data = simulation_request(last_user_message)
    if data is None:
        return None
    keywords = explanation_keywords(data["to_find"])
    activations = []
    for entry in data["activations"]:
        token = entry["token"].strip().lower()
        hit = any(keyword in token for keyword in keywords)
        activations.append({"token": entry["token"], "activation": 10 if hit else 0})
    if drop_last:
        activations = activations[:-1]
    answer = {
        "to_find": data["to_find"],
        "document": data.get("document", ""),
        "activations": activations,
    }
    return json.dumps(answer, ensure_ascii=False)


def simulation_ev_answer(last_user_message: str) -> EvAnswer | None:
    """The ``token<TAB>digit`` lines (and their log probabilities) answering the
    expected-value simulation prompt: 10 where the token contains a keyword of the explanation
    (as :func:`simulation_answer` decides), else 0; None if the message isn't one."""
    parsed = parse_simulation_ev_sequences(last_user_message)
    if parsed is None:
        return None
    explanation, sequences = parsed
    return ev_answer(sequences, explanation_keywords(explanation))


def intruder_examples(last_user_message: str) -> list[str]:
    """The ``Example N:`` texts of delphi's intruder prompt (numbered from 0, no space)."""
    return split_examples(last_user_message)


def intruder_answer(last_user_message: str) -> int:
    """Index of the example whose highlighted spans (stripped, lowercased) share the fewest
    items with the other examples' spans; ties go to the lowest index, no examples give 0."""
    span_sets = [
        {span.lower() for span in highlighted_spans(text)}
        for text in intruder_examples(last_user_message)
    ]
    best_index, best_shared = 0, None
    for index, spans in enumerate(span_sets):
        others: set[str] = set()
        for other_index, other in enumerate(span_sets):
            if other_index != index:
                others |= other
        shared = len(spans & others)
        if best_shared is None or shared < best_shared:
            best_index, best_shared = index, shared
    return best_index


def _top_entry(token: str, logprob: float) -> dict[str, Any]:
    return {"token": token, "logprob": logprob, "bytes": None}


def answer_logprobs(answer: str, top_n: int | None = None) -> list[dict[str, Any]]:
    """OpenAI-style ``logprobs.content`` for ``answer``.

    A ``0``/``1`` label token gets probability 0.9 with the other label at 0.1 among its
    top logprobs; every other token gets logprob 0.0 and only itself as top logprob.
    """
    p_chosen, p_other = math.log(0.9), math.log(0.1)
    entries = []
    for piece in _ANSWER_TOKEN_RE.findall(answer):
        if piece in ("0", "1"):
            other = "0" if piece == "1" else "1"
            top = [_top_entry(piece, p_chosen), _top_entry(other, p_other)]
            logprob = p_chosen
        else:
            top = [_top_entry(piece, 0.0)]
            logprob = 0.0
        if top_n is not None:
            top = top[: max(top_n, 0)]
        entries.append({"token": piece, "logprob": logprob, "bytes": None, "top_logprobs": top})
    return entries


class Answer:
    """The correct answer to one request, and what each answering fault makes of it.

    ``n_examples`` counts the examples of a detection, fuzz or intruder prompt, the texts of a
    recall prompt and the tokens of a simulation prompt (None for the other kinds).
    """

    __slots__ = ("_correct", "_ev", "_wrong_length", "n_examples")

    def __init__(self, kind: str, system: str, last_user: str) -> None:
        self.n_examples: int | None = None
        self._ev: EvAnswer | None = None
        correct, wrong_length = OTHER_ANSWER, OTHER_ANSWER
        if kind == "explain":
            correct, wrong_length = explain_answer(last_user), GARBAGE_ANSWER
        elif kind in ("detection", "fuzz"):
            labels = classify_answer(system, last_user)
            self.n_examples = len(labels)
            correct, wrong_length = format_labels(labels), format_labels(labels[:-1])
        elif kind == "oai_token_act_pair":
            correct, wrong_length = oai_answer(last_user), ""
        elif kind in ("np_max_act", "np_max_act_logits", "np_acts_logits_general"):
            correct = np_answer(last_user, logits=kind != "np_max_act")
            wrong_length = LONG_ANSWER
        elif kind == "python_code":
            correct, wrong_length = np_answer(last_user), LONG_ANSWER
        elif kind == "oai_attention_head":
            correct, wrong_length = attention_answer(last_user), LONG_ANSWER
        elif kind == "recall":
            answers = recall_answer(last_user) or []
            self.n_examples = len(answers)
            correct = json.dumps({"answers": answers})
            wrong_length = json.dumps({"answers": answers[:-1]})
        elif kind == "simulation":
            correct = simulation_answer(last_user) or OTHER_ANSWER
            wrong_length = simulation_answer(last_user, drop_last=True) or OTHER_ANSWER
            self.n_examples = len((simulation_request(last_user) or {}).get("activations", []))
        elif kind == "simulation_ev":
            self._ev = simulation_ev_answer(last_user)
            if self._ev is not None:
                self.n_examples = len(self._ev.lines)
                correct, wrong_length = self._ev.text(), self._ev.text(drop_last=True)
        elif kind == "intruder":
            self.n_examples = len(intruder_examples(last_user))
            correct = f"[RESPONSE]: {intruder_answer(last_user)}"
            wrong_length = f"[RESPONSE]: {self.n_examples}"  # one past the last example
        self._correct = correct
        self._wrong_length = wrong_length

    def content(self, fault: str | None) -> str:
        """The message content under ``fault`` (None: the correct answer)."""
        if fault == "garbage":
            return GARBAGE_ANSWER
        if fault == "wrong_length":
            return self._wrong_length
        return self._correct

    def logprobs(self, content: str, top_n: int | None) -> list[dict[str, Any]]:
        """``logprobs.content`` for ``content`` (what :meth:`content` gave, perhaps after a
        reasoning trace): the simulation lines' own entries where it ends with them (a trace
        before them gets :func:`answer_logprobs`), else :func:`answer_logprobs`."""
        if self._ev is not None:
            for drop_last in (False, True):
                lines = self._ev.text(drop_last)
                if lines and content.endswith(lines):
                    head = content[: len(content) - len(lines)]
                    before = answer_logprobs(head, top_n) if head else []
                    return before + self._ev.logprobs(top_n, drop_last)
        return answer_logprobs(content, top_n)
