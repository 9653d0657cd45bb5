"""Neuronpedia's max-activation explainers (np_max_act and np_max_act_logits), in their format.

Anchor sources, read for the format (the code, the instructions' wording and the few-shot
examples here are our own; structure, tags, window, few-shot shape and answer line are
theirs):

* hijohnnylin/neuronpedia ``apps/webapp/lib/external/autointerp-explainer-acts.ts``
  (explanation type ``np_max-act``) and ``.../autointerp-explainer-logits.ts``
  (``np_max-act-logits``): system prompt, few-shot turns, the final user message and the
  answer post-processing;
* hijohnnylin/neuronpedia ``apps/webapp/app/api/explanation/generate/route.tsx``: which
  records are shown (duplicates by text removed, sorted by max value, the top 10);
* hijohnnylin/automated-interpretability ``neuron_explainer/explanations/explainer.py``
  (``MaxActivationExplainer``, ``MaxActivationAndLogitsExplainer``): the same format in the
  Python library Neuronpedia's batch runs use (``▁`` read as a space, neuron numbering).

The format, as the anchor sends it:

* messages: system prompt, then one user/assistant pair per few-shot example (3 for
  np_max_act, 4 for np_max_act_logits), then the user message for this latent;
* each user message: a blank line, ``Neuron N``, then tagged lists separated by two blank
  lines, each list between ``<TAG>``/``</TAG>`` lines with a blank line inside on both sides,
  and the answer line ``Explanation of neuron N behavior: `` (N is the few-shot count + 1;
  the webapp's np_max-act writes "Neuron 4" but "neuron 5" there, a slip the Python library
  does not make: we number both 4);
* lists: ``<MAX_ACTIVATING_TOKENS>`` (each shown text's max token, newlines removed and
  stripped, one per line, duplicates kept) and ``<TOP_ACTIVATING_TEXTS>`` (each shown text
  cut to 24 tokens either side of its max token, tokens joined as they are, newlines written
  as two spaces, the max token *not* marked); np_max_act_logits puts
  ``<TOKENS_AFTER_MAX_ACTIVATING_TOKEN>`` (the token right after each max token, an empty
  line when the max token is last) first and ``<TOP_POSITIVE_LOGITS>`` (one per line,
  stripped) between the max tokens and the texts;
* the max token of a text is its first token with the largest value;
* the answer walks through "Method k" steps and ends with ``Explanation: <1-6 words>``;
  :func:`parse_short_explanation` takes what follows the last ``Explanation:``.

Neuronpedia's batch-only ``np_acts-logits-general`` and ``python-code`` formats (no few-shot
examples, no ``Neuron N`` header, the whole answer is the explanation) live in
:mod:`autointerp_grpc.prompts.np_general`; they reuse this module's list helpers
(:func:`top_records`, :func:`tagged_list`, :func:`window_text`, :func:`list_token`).
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from autointerp_grpc.prompts.common import (
    MAX_SHORT_EXPLANATION_WORDS,
    Record,
    check_records,
    clean_phrase,
    first_line,
    strip_reasoning,
    system_message,
)

NP_WINDOW = 24
"""Tokens shown on each side of a text's max token (Neuronpedia's
TOKENS_AROUND_MAX_ACTIVATING_TOKEN)."""
NP_TEXTS = 10
"""Texts shown (Neuronpedia's ACTIVATIONS_TO_LOAD)."""

MAX_TOKENS_TAG = "MAX_ACTIVATING_TOKENS"
AFTER_TOKENS_TAG = "TOKENS_AFTER_MAX_ACTIVATING_TOKEN"
LOGITS_TAG = "TOP_POSITIVE_LOGITS"
TEXTS_TAG = "TOP_ACTIVATING_TEXTS"

_SENTENCEPIECE_SPACE = "\u2581"

# --------------------------------------------------------------------------------------------
# System prompts (our wording, the anchor's shape: task, lists, ordered methods, rules, how to
# answer)
# --------------------------------------------------------------------------------------------

_ROLE = (
    "You explain what a neuron in a neural network responds to. Reply with a very concise "
    "explanation (1-6 words) of what the neuron detects or predicts, found by looking for "
    "patterns in lists."
)
_LIST_MAX = (
    f"- {MAX_TOKENS_TAG}: in each top activating text, the token on which the neuron is "
    "most active."
)
_LIST_AFTER = f"- {AFTER_TOKENS_TAG}: the token that comes right after each max activating token."
_LIST_LOGITS = (
    f"- {LOGITS_TAG}: the output words or tokens this neuron makes most likely (its top "
    "positive logits)."
)
_LIST_TEXTS = f"- {TEXTS_TAG}: the texts on which the neuron is most active."
_ORDER = (
    "Try the methods below in order. As soon as one of them gives you a pattern, stop and "
    "answer with that pattern; do not go on to the later methods."
)
_METHOD_MAX = (
    f"Look at {MAX_TOKENS_TAG}. If they have something specific in common, or are all one "
    "token in different forms (other casing, other conjugation), answer with that token."
)
_METHOD_AFTER = (
    f"Look at {AFTER_TOKENS_TAG}. Look for one specific thing all of them share; often they "
    "all start with the same letter. If you find one (such as 's words', 'the ending -ing', "
    "'number 8'), answer 'say [the pattern]'. Upper and lower case count as the same here."
)
_METHOD_LOGITS = f"Look at {LOGITS_TAG} for what they share and name it very briefly (1-3 words)."
_METHOD_TEXTS = (
    f"Look at {TEXTS_TAG} and give your best guess at their broad theme or context, leaving "
    "the max activating tokens aside."
)
_RULES_HEAD = (
    "Rules:",
    "- Keep the explanation extremely concise: 1-6 words, usually 1-3.",
    '- Leave out filler such as "words related to", "concepts related to" or "variations of '
    'the word".',
    '- Never mention "tokens" or "patterns" in the explanation.',
    '- Be specific: "unique words" or "foreign words" are too vague.',
)
_RULE_SAY = f"- When Method 2 ({AFTER_TOKENS_TAG}) gives the pattern, answer 'say [the pattern]'."
_RULE_FALLBACK = (
    f"- If you cannot make any guess at all, answer with the first token of {MAX_TOKENS_TAG}."
)
_HOW_TO_ANSWER = (
    "Work through the methods by number until one explains what the neuron detects or "
    "predicts; for each method that does not help, say briefly why, then go on to the next. "
    "End with the method you used and why, then the explanation on a last line that starts "
    "with 'Explanation: '."
)


def _system_prompt(logits: bool) -> str:
    if logits:
        lists = (_LIST_MAX, _LIST_AFTER, _LIST_LOGITS, _LIST_TEXTS)
        methods = (_METHOD_MAX, _METHOD_AFTER, _METHOD_LOGITS, _METHOD_TEXTS)
        rules = (*_RULES_HEAD, _RULE_SAY, _RULE_FALLBACK)
    else:
        lists = (_LIST_MAX, _LIST_TEXTS)
        methods = (_METHOD_MAX, _METHOD_TEXTS)
        rules = (*_RULES_HEAD, _RULE_FALLBACK)
    count = "four" if logits else "two"
    numbered = "\n".join(f"Method {n}: {text}" for n, text in enumerate(methods, start=1))
    return "\n\n".join(
        (
            _ROLE,
            f"You are given {count} lists:",
            "\n".join(lists),
            f"{_ORDER}\n{numbered}",
            "\n".join(rules),
            _HOW_TO_ANSWER,
        )
    )


# --------------------------------------------------------------------------------------------
# The lists (list_token, window_text, tagged_list and top_records are np_general's too)
# --------------------------------------------------------------------------------------------


def _peak(values: Sequence[float]) -> int:
    """The first index of the largest value."""
    best = 0
    for index, value in enumerate(values):
        if value > values[best]:
            best = index
    return best


def list_token(token: str) -> str:
    """A token as one line of a tagged list: newlines removed, stripped."""
    return token.replace("\n", "").strip()


def window_text(tokens: Sequence[str], peak: int, window: int) -> str:
    """The text of ``window`` tokens either side of index ``peak`` (the max token, unmarked),
    tokens joined as they are, newlines written as two spaces."""
    start, stop = max(0, peak - window), min(len(tokens), peak + window + 1)
    return "".join(tokens[start:stop]).replace("\n", "  ")


def tagged_list(tag: str, lines: Sequence[str]) -> str:
    """``lines`` between ``<TAG>`` and ``</TAG>``, with a blank line inside on both sides."""
    body = "\n".join(lines)
    return f"<{tag}>\n\n{body}\n\n</{tag}>"


def _user_message(number: int, sections: Sequence[str]) -> str:
    body = "\n\n\n".join(sections)
    return f"\n\nNeuron {number}\n\n{body}\n\n\nExplanation of neuron {number} behavior: "


def _sections(
    shown: Sequence[tuple[list[str], int]],
    *,
    window: int,
    logits: bool,
    top_positive_logits: Sequence[str],
    top_tokens: int,
    next_tokens: int,
) -> list[str]:
    """The tagged lists of one user message, in the anchor's order."""
    max_tokens = tagged_list(
        MAX_TOKENS_TAG, [list_token(tokens[peak]) for tokens, peak in shown[:top_tokens]]
    )
    texts = tagged_list(TEXTS_TAG, [window_text(tokens, peak, window) for tokens, peak in shown])
    if not logits:
        return [max_tokens, texts]
    after = [
        list_token(tokens[peak + 1]) if peak + 1 < len(tokens) else ""
        for tokens, peak in shown[:next_tokens]
    ]
    promoted = [
        token.replace(_SENTENCEPIECE_SPACE, " ").replace("\n", "").strip()
        for token in top_positive_logits
    ]
    return [
        tagged_list(AFTER_TOKENS_TAG, after),
        max_tokens,
        tagged_list(LOGITS_TAG, promoted),
        texts,
    ]


def top_records(
    records: Sequence[tuple[list[str], list[float]]], count: int
) -> list[tuple[list[str], int]]:
    """``(tokens, max index)`` of the ``count`` strongest records, strongest first.

    As Neuronpedia picks them: records whose joined text repeats an earlier one are dropped
    (we keep the strongest copy), the rest ordered by their largest value (ties keep request
    order). Records with no token or no positive value are not top activating texts and are
    left out. ``▁`` (sentencepiece's space) is read as a space.
    """
    candidates = []
    for index, (tokens, values) in enumerate(records):
        if tokens and max(values) > 0:
            candidates.append((max(values), index, tokens, values))
    candidates.sort(key=lambda item: (-item[0], item[1]))
    seen: set[str] = set()
    top: list[tuple[list[str], int]] = []
    for _, _, tokens, values in candidates:
        spaced = [token.replace(_SENTENCEPIECE_SPACE, " ") for token in tokens]
        text = "".join(spaced)
        if text in seen:
            continue
        seen.add(text)
        top.append((spaced, _peak(values)))
        if len(top) == count:
            break
    return top


# --------------------------------------------------------------------------------------------
# Few-shot examples (our own, in the anchor's shape: two texts each, answers that walk the
# methods and end with "Explanation: ...")
# --------------------------------------------------------------------------------------------

_WORD_RE = re.compile(r"\s*\S+")

# (sentence, index of its max word) per text, top positive logits, the answer.
_Example = tuple[tuple[tuple[str, int], ...], tuple[str, ...], str]

_EXAMPLES: tuple[_Example, ...] = (
    (
        (
            ("She practised the violin every evening before dinner.", 3),
            ("The cello section tuned up quietly before the concert.", 1),
        ),
        (),
        "Method 1 succeeds: The MAX_ACTIVATING_TOKENS (violin, cello) are both string "
        "instruments.\nExplanation: string instruments",
    ),
    (
        (
            ("Most of the guests had already gone home.", 1),
            ("Of all the routes, this one is the shortest.", 0),
        ),
        (),
        'Method 1 succeeds: All MAX_ACTIVATING_TOKENS are the word "of".\nExplanation: of',
    ),
    (
        (
            ("The players walked onto the pitch as the crowd began to cheer.", 2),
            ("He scored again early in the second half of the match.", 7),
        ),
        (),
        "Method 1 fails: The MAX_ACTIVATING_TOKENS (walked, half) have nothing specific in "
        "common.\nMethod 2 succeeds: Both TOP_ACTIVATING_TEXTS describe a football match.\n"
        "Explanation: football matches",
    ),
)

_LOGITS_EXAMPLES: tuple[_Example, ...] = (
    (
        (
            ("My lucky number is 7 and always has been.", 3),
            ("Please wait in Room 7 on the second floor.", 3),
        ),
        ("seven", "7", "Seven", "07", "VII", "7th", "77", "700"),
        "Method 1 fails: The MAX_ACTIVATING_TOKENS (is, Room) are not similar.\n"
        "Method 2 succeeds: All TOKENS_AFTER_MAX_ACTIVATING_TOKEN are the number 7.\n"
        "Explanation: say 7",
    ),
    (
        (
            ("The meeting moved to Monday morning at nine.", 4),
            ("We fly out on Friday after lunch.", 4),
        ),
        ("weekend", "holiday", "shift", "meeting", "deadline", "calendar", "week", "agenda"),
        "Method 1 succeeds: The MAX_ACTIVATING_TOKENS (Monday, Friday) are days of the week.\n"
        "Explanation: weekdays",
    ),
    (
        (
            ("It looked easy, but the last step took hours.", 3),
            ("But nobody answered the phone that night.", 0),
        ),
        ("lamp", "river", "pencil", "orbit", "carpet", "violet", "engine", "saddle"),
        'Method 1 succeeds: All MAX_ACTIVATING_TOKENS are the word "but".\nExplanation: but',
    ),
    (
        (
            ("We left early to miss the traffic.", 1),
            ("She came home from work late again.", 3),
        ),
        ("Lisbon", "Porto", "Portugal", "Portuguese", "Algarve", "Madeira", "Coimbra", "Braga"),
        "Method 1 fails: The MAX_ACTIVATING_TOKENS (left, from) have nothing in common.\n"
        "Method 2 fails: The TOKENS_AFTER_MAX_ACTIVATING_TOKEN (early, work) share no "
        "pattern.\nMethod 3 succeeds: The TOP_POSITIVE_LOGITS are all places in Portugal.\n"
        "Explanation: Portugal",
    ),
)


def _few_shot(logits: bool, window: int) -> list[dict[str, str]]:
    examples = _LOGITS_EXAMPLES if logits else _EXAMPLES
    messages: list[dict[str, str]] = []
    for number, (texts, promoted, answer) in enumerate(examples, start=1):
        shown = [(_WORD_RE.findall(sentence), peak) for sentence, peak in texts]
        sections = _sections(
            shown,
            window=window,
            logits=logits,
            top_positive_logits=promoted,
            top_tokens=len(shown),
            next_tokens=len(shown),
        )
        messages.append({"role": "user", "content": _user_message(number, sections)})
        messages.append({"role": "assistant", "content": answer})
    return messages


def np_max_act_messages(  # noqa: PLR0917 (positional signature is the documented API)
    records: Sequence[Record],
    top_tokens: int = NP_TEXTS,
    top_texts: int = NP_TEXTS,
    window: int = NP_WINDOW,
    logits: bool = False,
    top_positive_logits: Sequence[str] | None = None,
    next_tokens: int = NP_TEXTS,
) -> list[dict[str, str]]:
    """Chat messages in Neuronpedia's ``np_max-act`` (``logits``: ``np_max-act-logits``) format.

    The ``top_texts`` strongest records (see :func:`top_records`) are shown, each cut to
    ``window`` tokens either side of its max token. ``<MAX_ACTIVATING_TOKENS>`` lists the max
    token of the first ``top_tokens`` of them and, with ``logits``,
    ``<TOKENS_AFTER_MAX_ACTIVATING_TOKEN>`` the next token of the first ``next_tokens`` of
    them (Neuronpedia lists every shown text: the defaults, 10 each, do the same) and
    ``<TOP_POSITIVE_LOGITS>`` the given tokens (empty when none are given). The defaults are
    Neuronpedia's (10 texts, a window of 24).

    Parse the answer with :func:`parse_short_explanation`. ``ValueError`` if no record has a
    positive activation.
    """
    if top_tokens < 1 or top_texts < 1 or next_tokens < 1 or window < 0:
        raise ValueError("top_tokens, top_texts and next_tokens must be >= 1 and window >= 0")
    shown = top_records(check_records(records), top_texts)
    if not shown:
        raise ValueError("no record has a positive activation")
    sections = _sections(
        shown,
        window=window,
        logits=logits,
        top_positive_logits=[str(token) for token in top_positive_logits or ()],
        top_tokens=top_tokens,
        next_tokens=next_tokens,
    )
    few_shot = _few_shot(logits, window)
    number = len(few_shot) // 2 + 1
    return [
        system_message(_system_prompt(logits)),
        *few_shot,
        {"role": "user", "content": _user_message(number, sections)},
    ]


# --------------------------------------------------------------------------------------------
# The answer
# --------------------------------------------------------------------------------------------

# Linear on any answer (issue 17: "Explanation: a" + 2500 spaces + "b" took seconds, and 4 KiB
# of spaces a minute): no two quantifiers can split one run between them (possessive ``*+``
# and ``++``), and a pattern that starts with ``\s*`` only starts where a whitespace run
# starts (``(?<!\s)``: a match from inside a run is also one from its start, which is further
# left, so the leftmost match is unchanged), so no run is rescanned from each of its positions.
_FINAL_RE = re.compile(
    r"explanation(?:\s++(?:of|for)\s++neuron\s++\d++\s++behavior)?\]?[\s*_]*+:", re.IGNORECASE
)
_LABEL_RE = re.compile(
    r"^[\s*#>_]*+\[?(?:final\s++)?(?:explanation|label|answer)\]?[\s*_]*+[:\-\u2013\u2014]"
    r"[\s*_]*+",
    re.IGNORECASE,
)
# What models append after the label (the cases Neuronpedia's Python library strips):
# "(Method 3)", "(used Method 2)", "- Method 1, because ...", ". Method 3 ...", a bare
# "Method 4" or "Method: 4" at the end.
_METHOD_TAILS = tuple(
    re.compile(pattern, re.IGNORECASE)
    for pattern in (
        r"(?<!\s)\s*+[\-\u2013\u2014]?\s*+\(\s*+(?:used\s++)?method\s++\d++\s*+\)\s*+$",
        r"(?<!\s)\s*+[\-\u2013\u2014]\s*+method\s++\d.*$",
        r"\.\s*+method\s++\d.*$",
        r"(?<!\s)\s*+method\s*+:?\s*+\d++\s*+$",
    )
)
_METHOD_RE = re.compile(r"\bmethod\s*+:?\s*+\d", re.IGNORECASE)
_NEURON_HEADER_RE = re.compile(r"neuron\s++\d++\s*+:?$", re.IGNORECASE)
LIST_TAGS = (MAX_TOKENS_TAG, AFTER_TOKENS_TAG, LOGITS_TAG, TEXTS_TAG)
"""The list names of Neuronpedia's formats (here and in :mod:`.np_general`)."""

NP_ANSWER_SHAPE = (
    "a last line 'Explanation: <1-6 words>' after the method steps (at most "
    f"{MAX_SHORT_EXPLANATION_WORDS} words; not a line of the lists)"
)
"""What an answer in this format must hold, as failure messages name it."""


def is_list_line(line: str) -> bool:
    """Whether a line of an answer is one of the prompt's list tags (``<MAX_ACTIVATING_TOKENS>``,
    ``</TOP_ACTIVATING_TEXTS>``, or a bare list name): a model continuing the prompt's lists
    writes them, and a list name explains nothing."""
    name = line.strip().removeprefix("<").removeprefix("/").removesuffix(">").strip()
    return name.upper() in LIST_TAGS


def is_np_data_line(line: str) -> bool:
    """Whether a line of an np_max_act answer is shaped like the prompt's data: a list tag
    (:func:`is_list_line`) or a ``Neuron N`` header (a model writing the next few-shot turn)."""
    return is_list_line(line) or bool(_NEURON_HEADER_RE.match(line.strip()))


def parse_short_explanation(text: str) -> str:
    """The short explanation of an answer to :func:`np_max_act_messages`.

    As Neuronpedia reads it: reasoning blocks dropped, then what follows the last
    ``Explanation:`` (any case; also ``[EXPLANATION]:`` and an echoed ``Explanation of neuron
    N behavior:``), or the whole answer when there is none; its first non-empty line, without
    a leading ``Label:``/``Answer:``, a trailing "(Method k)"-style note, surrounding quotes or
    a trailing period. ``ValueError`` if that is empty, still names a method (the answer gave
    its reasoning but no explanation; Neuronpedia drops those too), is shaped like the
    prompt's data (:func:`is_np_data_line`: the model continued the lists or wrote the next
    neuron's header) or is longer than 12 words.
    """
    answer = strip_reasoning(text)
    finals = list(_FINAL_RE.finditer(answer))
    if finals:
        answer = answer[finals[-1].end() :]
    line = first_line(answer)
    if is_np_data_line(line):
        raise ValueError("the answer copies the prompt's lists instead of explaining them")
    label = clean_phrase(_LABEL_RE.sub("", line, count=1))
    for tail in _METHOD_TAILS:
        label = tail.sub("", label)
    label = clean_phrase(label)
    if not label:
        raise ValueError("the answer has no explanation")
    if _METHOD_RE.search(label):
        raise ValueError("the answer names a method but gives no explanation")
    if is_np_data_line(label):
        raise ValueError("the answer copies the prompt's lists instead of explaining them")
    words = len(label.split())
    if words > MAX_SHORT_EXPLANATION_WORDS:
        raise ValueError(
            f"the explanation has {words} words; at most {MAX_SHORT_EXPLANATION_WORDS} allowed"
        )
    return label
