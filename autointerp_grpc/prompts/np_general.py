"""Neuronpedia's batch-only explainers ``np_acts-logits-general`` and ``python-code``, in their
format: the prompt wording is the wire format and is the anchor's, word for word.

Anchor sources:

* PyPI ``automated-interpretability`` 0.0.24 (Neuronpedia's fork of OpenAI's neuron-explainer),
  ``neuron_explainer/explanations/explainer.py``:
  ``MaxActivationAndLogitsGeneralExplainer`` (lines 1270-1587: the list formatters 1313-1387,
  ``make_explanation_prompt`` 1389-1489 with the system prompt 1433-1456,
  ``_add_per_neuron_explanation_prompt`` 1494-1556, ``postprocess_explanations`` 1558-1587) and
  ``PythonCodeExplainer`` (lines 1589-1900: formatters 1634-1708, ``make_explanation_prompt``
  1710-1812 with the system prompt 1754-1775, ``_add_per_neuron_explanation_prompt``
  1817-1870, ``postprocess_explanations`` 1872-1900); ``NeuronExplainer.strip_explanation``
  and ``_simple_clean_explanation`` (lines 236-290) for the answer; ``prompt_builder.py``
  ``PromptBuilder.build`` (``PromptFormat.HARMONY_V4``: the messages as a list of
  ``{"role", "content"}``). Neuronpedia's blog links the same ``PythonCodeExplainer``
  (decoderesearch/automated-interpretability@f345c05, ``explainer.py#L1589``).
* hijohnnylin/neuronpedia ``utils/neuronpedia-utils/neuronpedia_utils/batch-autointerp.py``
  (the only caller of both): tokens and ``feature.pos_str`` (the top positive logits) go
  through ``replace_html_anomalies_and_special_chars`` (the table at lines 157-174, the
  explainer calls at 371-446); records with a text already read are skipped (679-683), the rest
  sorted by max value and the top ``MAX_TOP_ACTIVATIONS_TO_SHOW_EXPLAINER_PER_FEATURE`` (10,
  line 153) shown (697-715); the answer's final period and line breaks are removed (536-539)
  and answers that give up are replaced (548-556).

The format:

* two messages: the system prompt, then one user message (no few-shot examples, no
  ``Neuron N`` header);
* ``np_acts_logits_general``: ``<MAX_ACTIVATING_TOKENS>``, ``<TOKENS_AFTER_MAX_ACTIVATING_TOKEN>``,
  ``<TOP_POSITIVE_LOGITS>`` and ``<TOP_ACTIVATING_TEXTS>``, separated by two blank lines;
  ``python_code``: the same without ``<TOP_POSITIVE_LOGITS>`` (the anchor takes the logits and
  never shows them), separated by one blank line, the max token of each snippet between
  ``★`` marks;
* each tagged list has a blank line inside on both sides; the user message starts with two
  line breaks and ends "Explain the neuron above with a word or phrase, not a complete
  sentence.";
* the max token of a text is its first token with the largest value; texts are cut to
  ``window`` tokens either side of it, their line breaks written as two spaces; the listed
  tokens have line breaks removed and are stripped (an empty line when the max token is last);
* the whole answer is the explanation (:func:`parse_np_general_answer`).
"""

from __future__ import annotations

from collections.abc import Sequence

from autointerp_grpc.prompts.common import (
    Record,
    check_records,
    is_refusal,
    strip_reasoning,
    system_message,
)
from autointerp_grpc.prompts.neuronpedia import (
    AFTER_TOKENS_TAG,
    LOGITS_TAG,
    MAX_TOKENS_TAG,
    NP_TEXTS,
    NP_WINDOW,
    TEXTS_TAG,
    is_list_line,
    list_token,
    tagged_list,
    top_records,
    window_text,
)

NP_GENERAL_WINDOW = NP_WINDOW
"""Tokens either side of the max token in ``np_acts_logits_general`` (the anchor's
``tokens_around_max_activating_token`` default, 24)."""
PYTHON_CODE_WINDOW = 96
"""Tokens either side of the max token in ``python_code`` (the anchor's default, 96: "code is
dense")."""
NP_GENERAL_TEXTS = NP_TEXTS
"""Texts shown (batch-autointerp.py's MAX_TOP_ACTIVATIONS_TO_SHOW_EXPLAINER_PER_FEATURE, 10)."""
MAX_GENERAL_EXPLANATION_WORDS = 40
"""Longest answer :func:`parse_np_general_answer` accepts: twice the 20 words the prompt allows
(our guard; the anchor keeps any answer)."""

PYTHON_CODE_MARK = "\u2605"
"""``★``, around the max token of each snippet in ``python_code``."""

# batch-autointerp.py HTML_ANOMALY_AND_SPECIAL_CHARS_REPLACEMENTS (lines 157-174), in its order
# (each replacement runs over the whole text in turn). This is the batch's table, not the
# webapp's ``replaceHtmlAnomalies`` one: the batch writes line breaks as line breaks, curly
# quotes as straight ones and also blanks special tokens such as ``<bos>``.
HTML_ANOMALY_REPLACEMENTS: tuple[tuple[str, str], ...] = (
    ("\u00e2\u0122\u0136", "\u2014"),
    ("\u00e2\u0122\u0135", "\u2013"),
    ("\u00e2\u0122\u013e", '"'),
    ("\u00e2\u0122\u013f", '"'),
    ("\u00e2\u0122\u013a", "'"),
    ("\u00e2\u0122\u013b", "'"),
    ("\u00e2\u0122\u012d", " "),
    ("\u0120", " "),
    ("\u010a", "\n"),
    ("<0x0A>", "\n"),
    ("\u0109", "\t"),
    ("\u2581", " "),
    ("<|endoftext|>", " "),
    ("<bos>", " "),
    ("<|begin_of_text|>", " "),
    ("<|end_of_text|>", " "),
)

_REQUEST = "\nExplain the neuron above with a word or phrase, not a complete sentence."

NP_GENERAL_ANSWER_SHAPE = (
    "the whole answer a phrase of 3 to 20 words (at most "
    f"{MAX_GENERAL_EXPLANATION_WORDS}) saying what the neuron detects or predicts, not a copy "
    "of the prompt's lists"
)
"""What an answer in ``np_acts_logits_general`` must hold, as failure messages name it."""
PYTHON_CODE_ANSWER_SHAPE = (
    "the whole answer a phrase of 3 to 20 words (at most "
    f"{MAX_GENERAL_EXPLANATION_WORDS}) naming the Python concept the neuron detects, not a "
    f"copy of the prompt's lists or snippets (no {PYTHON_CODE_MARK} marks)"
)
"""What an answer in ``python_code`` must hold, as failure messages name it."""

# make_explanation_prompt, MaxActivationAndLogitsGeneralExplainer (explainer.py 1433-1456).
_GENERAL_SYSTEM = (
    "You are explaining the behavior of a neuron in a neural network. Your response should be "
    "a concise explanation (3 to 20 words) that captures what the neuron detects or predicts "
    "by finding patterns in lists.\n\n"
    "To determine the explanation, you are given four lists:\n\n"
    "- TOP_POSITIVE_LOGITS, which are the most likely words or tokens associated with this "
    "neuron.\n"
    "- TOP_ACTIVATING_TEXTS, which are top activating texts.\n\n"
    "- MAX_ACTIVATING_TOKENS, which are the top activating tokens in the top activating "
    "texts.\n"
    "- TOKENS_AFTER_MAX_ACTIVATING_TOKEN, which are the tokens immediately after the max "
    "activating token.\n"
    "Your job is to explain the behavior of the neuron in a single short phrase. You should "
    "look at the lists and find a pattern that helps you explain the behavior of the "
    "neuron.\n\n"
    "Rules:\n"
    "- Keep your explanation concise (3 to 20 words).\n"
    "- The explanation could be a single word, or phrase, or pattern.\n"
    "- The explanation could be about tokens following or preceding certain tokens.\n"
    "- The explanation could be about words starting with a sequence.\n"
    "- Avoid simply listing all the tokens. Instead, try to find patterns.\n"
    '- Just say the pattern itself, and do not start with phrases like "words related to", '
    '"concepts related to", or "variations of the word".\n'
    '- Do not start your explanation with "This neuron detects/predicts".\n'
    '- Do not mention "tokens" or "patterns" in your explanation.\n'
    "- Do not capitalize the first letter unless it is a proper noun.\n"
    '- The explanation should be specific. For example, "unique words" is not a specific '
    'enough pattern, nor is "foreign words".\n'
    "- Not ALL top activating texts/tokens have to match the exact same pattern, but a "
    "majority should.\n"
    "- If you absolutely cannot make any guesses, return the first token in "
    "MAX_ACTIVATING_TOKENS.\n\n"
    "Your response should be exactly a short phrase that explains the behavior of the neuron, "
    "not a full sentence."
)

# make_explanation_prompt, PythonCodeExplainer (explainer.py 1754-1775).
_PYTHON_SYSTEM = (
    "You are explaining the behavior of a neuron in a neural network. This specific neuron is "
    "trained on Python code. Your response should be a concise explanation (3 to 20 words) "
    "that captures what the neuron detects or predicts by finding patterns in lists.\n\n"
    "To determine the explanation, you are given three lists:\n\n"
    "- MAX_ACTIVATING_TOKENS, which are the top activating tokens in the top activating "
    "texts.\n"
    "- TOKENS_AFTER_MAX_ACTIVATING_TOKEN, which are the tokens immediately after the max "
    "activating token.\n"
    "- TOP_ACTIVATING_TEXTS, which are top activating texts (snippets of Python code). The top "
    "activating token is highlighted between the symbol \u2605. For example, if the top "
    "activating token is the beginning parenthesis character '(', the snippet would be "
    "'print\u2605(\u2605\"Hello world\")'. \n\n"
    "Your job is to explain the behavior of the neuron in a single short phrase. You should "
    "look at the lists and find a pattern that helps you explain the behavior of the "
    "neuron.\n\n"
    "Rules:\n"
    "- Keep your explanation concise (3 to 20 words).\n"
    "- The explanation should be related a specific Python concept, like a specific "
    "code-related pattern or symbol. For example, it could be a loop, or keyword, a symbol, or "
    'a part of code like "second argument of a method definition".\n'
    "- The explanation could be about tokens following or preceding certain tokens.\n"
    "- Avoid simply listing all the tokens. Instead, try to find patterns.\n"
    '- Just say the pattern itself, and do not start with phrases like "words related to", '
    '"concepts related to", or "variations of the word".\n'
    '- Do not start your explanation with "This neuron detects/predicts".\n'
    '- Do not mention "tokens" or "patterns" in your explanation.\n'
    "- Do not capitalize the first letter unless it is a proper noun.\n"
    '- The explanation should be specific. For example, "code snippets" is not a specific '
    'enough pattern, nor is "various symbols".\n'
    "- Not ALL top activating texts/tokens have to match the exact same pattern, but a "
    "majority should.\n"
    "- If you absolutely cannot make any guesses, return the first token in "
    "MAX_ACTIVATING_TOKENS.\n\n"
    "Your response should be exactly a short phrase that explains the behavior of the neuron, "
    "not a full sentence."
)


def replace_html_anomalies(text: str) -> str:
    """``text`` with Neuronpedia's batch replacements applied (byte-level BPE leftovers such as
    ``âĢĶ``, ``Ġ`` and ``Ċ``, sentencepiece's ``▁``, and special tokens such as ``<bos>``)."""
    for old, new in HTML_ANOMALY_REPLACEMENTS:
        text = text.replace(old, new)
    return text


def _shown(records: Sequence[Record], top_texts: int, window: int) -> list[tuple[list[str], int]]:
    """``(cleaned tokens, max index)`` of the texts shown, strongest first.

    Picked and ordered as in :func:`autointerp_grpc.prompts.neuronpedia.top_records` (repeated
    texts once, by max value, ties in request order; records with no positive value left out);
    then each token cleaned by :func:`replace_html_anomalies`, as batch-autointerp.py cleans
    them before the explainer sees them.
    """
    if top_texts < 1 or window < 0:
        raise ValueError("top_texts must be >= 1 and window >= 0")
    top = top_records(check_records(records), top_texts)
    if not top:
        raise ValueError("no record has a positive activation")
    return [([replace_html_anomalies(token) for token in tokens], peak) for tokens, peak in top]


def _max_tokens(shown: Sequence[tuple[list[str], int]]) -> str:
    return tagged_list(MAX_TOKENS_TAG, [list_token(tokens[peak]) for tokens, peak in shown])


def _after_tokens(shown: Sequence[tuple[list[str], int]]) -> str:
    after = [
        list_token(tokens[peak + 1]) if peak + 1 < len(tokens) else "" for tokens, peak in shown
    ]
    return tagged_list(AFTER_TOKENS_TAG, after)


def _marked(tokens: Sequence[str], peak: int) -> list[str]:
    marked = list(tokens)
    marked[peak] = f"{PYTHON_CODE_MARK}{tokens[peak]}{PYTHON_CODE_MARK}"
    return marked


def _user_message(sections: Sequence[str], separator: str) -> str:
    return f"\n\n{separator.join(sections)}\n\n{_REQUEST}"


def np_acts_logits_general_messages(
    records: Sequence[Record],
    top_positive_logits: Sequence[str],
    *,
    top_texts: int = NP_GENERAL_TEXTS,
    window: int = NP_GENERAL_WINDOW,
) -> list[dict[str, str]]:
    """Chat messages in Neuronpedia's ``np_acts-logits-general`` format.

    The ``top_texts`` strongest records are shown (see :func:`_shown`), each cut to ``window``
    tokens either side of its max token. ``top_positive_logits`` are cleaned like the tokens,
    line breaks removed and stripped, one per line (an empty list leaves the tag empty, as the
    anchor does). Parse the answer with :func:`parse_np_general_answer`. ``ValueError`` if no
    record has a positive activation.
    """
    shown = _shown(records, top_texts, window)
    logits = [list_token(replace_html_anomalies(str(token))) for token in top_positive_logits]
    sections = (
        _max_tokens(shown),
        _after_tokens(shown),
        tagged_list(LOGITS_TAG, logits),
        tagged_list(TEXTS_TAG, [window_text(tokens, peak, window) for tokens, peak in shown]),
    )
    return [
        system_message(_GENERAL_SYSTEM),
        {"role": "user", "content": _user_message(sections, "\n\n\n")},
    ]


def python_code_messages(
    records: Sequence[Record],
    *,
    top_texts: int = NP_GENERAL_TEXTS,
    window: int = PYTHON_CODE_WINDOW,
) -> list[dict[str, str]]:
    """Chat messages in Neuronpedia's ``python-code`` format (for models trained on Python
    code, such as OpenAI's circuit-sparsity CircuitGPT-python).

    As :func:`np_acts_logits_general_messages` without the logits list, with a wider default
    window and each snippet's max token between ``★`` marks (a max token that is a line break
    shows as ``★  ★``). The prompt only shows code: nothing is executed. Parse the answer with
    :func:`parse_np_general_answer`. ``ValueError`` if no record has a positive activation.
    """
    shown = _shown(records, top_texts, window)
    texts = [window_text(_marked(tokens, peak), peak, window) for tokens, peak in shown]
    sections = (_max_tokens(shown), _after_tokens(shown), tagged_list(TEXTS_TAG, texts))
    return [
        system_message(_PYTHON_SYSTEM),
        {"role": "user", "content": _user_message(sections, "\n\n")},
    ]


# --------------------------------------------------------------------------------------------
# The answer
# --------------------------------------------------------------------------------------------

# NeuronExplainer.strip_explanation (explainer.py 248-290): the first prefix and the first
# suffix that match are removed (case-sensitive).
_PREFIXES = (
    "References to ",
    "Associated with ",
    "Relates to ",
    "Relating to ",
    "Occurrences of ",
    "Mentions of ",
    "Related to ",
    "Words related to ",
    "Concepts related to ",
    "Variations of the word ",
    "Words indicating ",
    "Words ",
    "The word ",
    "The phrase ",
    "The tokens ",
    "This neuron detects",
    "This neuron predicts",
    "This neuron activates for",
)
_SUFFIXES = (
    " or related terms",
    " and related terms",
    " or its variations",
    " and its variations",
    " or related forms",
    " and related forms",
)
# batch-autointerp.py (lines 551-556): answers that give up.
_GIVE_UP = ("unclear", "unsure", "first token")


def _without_period(text: str) -> str:
    return text[:-1] if text.endswith(".") else text


def parse_np_general_answer(text: str) -> str:
    """The explanation in an answer to :func:`np_acts_logits_general_messages` or
    :func:`python_code_messages`: the whole answer, cleaned as Neuronpedia cleans it.

    Reasoning blocks dropped (:func:`strip_reasoning`); then, as the anchor does: the first
    matching filler prefix ("Words related to ", "This neuron detects", ...) and suffix
    (" or related terms", ...) removed, narrow and em/en spaces normalised, stripped, a final
    period removed (up to three times: ``strip_explanation``, ``postprocess_explanations`` and
    the batch script each remove one). The batch then deletes line breaks ("two\\nlines" becomes
    "twolines"); we join the lines with one space instead. (The LLM client has already stripped
    the answer, so the anchor's prefix check on the unstripped text reads the same here.)

    ``ValueError`` (unparsable: the caller retries, then fails) when nothing is left, when the
    answer gives up ("unclear", "unsure", "first token": Neuronpedia's batch puts the top
    text's max token in its place; we do not substitute one), when it is longer than
    :data:`MAX_GENERAL_EXPLANATION_WORDS` words, or when a line of it is the prompt's (a list
    tag such as ``<MAX_ACTIVATING_TOKENS>``, or the closing request: the model continued the
    prompt instead of answering it).
    """
    answer = strip_reasoning(text)
    if any(is_list_line(line) or line.strip() == _REQUEST.strip() for line in answer.splitlines()):
        raise ValueError("the answer copies the prompt instead of explaining the neuron")
    for prefix in _PREFIXES:
        if answer.startswith(prefix):
            answer = answer[len(prefix) :]
            break
    for suffix in _SUFFIXES:
        if answer.endswith(suffix):
            answer = answer[: -len(suffix)]
            break
    answer = answer.replace("\u202f", " ").replace("\u2003", "").replace("\u2002", "").strip()
    answer = _without_period(_without_period(_without_period(answer).strip()))
    # The batch deletes line breaks, gluing the words either side; we join the lines with a space.
    answer = " ".join(line.strip() for line in answer.splitlines() if line.strip())
    if not answer:
        raise ValueError("the answer has no explanation")
    lowered = answer.lower()
    if any(phrase in lowered for phrase in _GIVE_UP) or is_refusal(answer):
        raise ValueError("the answer gives up instead of explaining")
    words = len(answer.split())
    if words > MAX_GENERAL_EXPLANATION_WORDS:
        raise ValueError(
            f"the answer has {words} words; a phrase of at most "
            f"{MAX_GENERAL_EXPLANATION_WORDS} is expected"
        )
    return answer


def parse_python_code_answer(text: str) -> str:
    """The explanation in an answer to :func:`python_code_messages`: as
    :func:`parse_np_general_answer`, and ``ValueError`` for an answer holding the ``★`` mark,
    which only the prompt's snippets carry (a model copying a snippet, not explaining it)."""
    explanation = parse_np_general_answer(text)
    if PYTHON_CODE_MARK in explanation:
        raise ValueError("the answer copies a snippet instead of explaining the neuron")
    return explanation
