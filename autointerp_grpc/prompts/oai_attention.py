"""OpenAI's attention-head explainer (``oai_attention_head``) as Neuronpedia's webapp sends it
(explanation type ``oai_attention-head``).

Anchor, the webapp (hijohnnylin/neuronpedia at ebb8426f), whose wording is the wire format here
byte for byte (the issue asks for the webapp's; ``tests/fixtures/anchors/oai_attention/``
holds what its own code sends for given records):

* ``apps/webapp/lib/external/autointerp-explainer-att.ts``: system prompt (lines 15-25), four
  few-shot user/assistant pairs (27-143), the final user message (153-165), the message list
  (172-183); the answer is stored as returned (193-195);
* ``apps/webapp/lib/external/autointerp-shared.ts`` ``makeOAIattentionActivation`` (48-63): a
  record as one run of tokens, "to" as ``**tok**``, "from" as ``[[tok]]``, each token through
  ``replaceHtmlAnomalies(token, false)`` (``apps/webapp/lib/utils/activations.ts`` 16-45,
  109-122);
* ``apps/webapp/app/api/explanation/generate/route.tsx`` (34, 212-230): the records shown.

The format: system prompt, the few-shot pairs ("Attention head 1" to "4"), then "Attention
head 5": a blank line, ``Attention head 5``, ``Activations:``, one run per record (records
separated by a ``<|sequence_separator|>`` line) and ``Explanation of attention head 5 behavior:
this attention head`` for the model to complete. Records: ``from_index`` is Neuronpedia's
``dfaTargetIndex``, the "to" token the first index of the largest of ``weights`` (``dfaValues``)
at or before it; duplicates by joined tokens shown once, strongest "to" weight first, the first
``max_records`` (Neuronpedia: 10).

Where we differ from the webapp: a token attending to itself is written ``[[**tok**]]``, as
the system prompt and the webapp's own few-shot example 4 say and the Python library writes
(``makeOAIattentionActivation`` tests the "to" index first and writes only ``**tok**``, which
the prompt says means a "from" token comes later); of duplicates we keep the strongest copy
(the webapp keeps the last copy's values).

The Python library Neuronpedia's batch runs use (PyPI automated-interpretability 0.0.24,
``neuron_explainer/explanations/explainer.py``: ``AttentionHeadExplainer`` 2409-2585,
``format_attention_head_token_pair*`` 2344-2386; examples in ``few_shot_examples.py``
1703-3125; called by neuronpedia ``utils/neuronpedia-utils/neuronpedia_utils/batch-autointerp.py``
322-345) differs from the webapp: its system prompt is one paragraph with the separator in
backticks; its few-shot example 1 is built from tokens (first line starts with a space, later
lines do not, no stray ``"`` and newline at the end; examples 2-4 and the answers are the
same); it does not clean tokens (batch-autointerp.py 155-174 does, with another table: straight
quotes, ``Ċ``/``<0x0A>`` as a newline, ``▁`` as a space, ``<bos>``-style tokens as a space); the
batch keeps the first copy of a text and sorts by max activation.

The answer completes "this attention head ...". Neuronpedia stores it as returned (webapp) or
without a final period and line breaks (batch); :func:`parse_attention_head_answer` returns the
completion alone (``attends to the token "golf" from golf-related tokens``, as the few-shot
answers and OpenAI's explanations read): a caller wanting a sentence prefixes "This attention
head".
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from typing import Protocol

from autointerp_grpc.prompts.common import (
    clean_phrase,
    first_line,
    is_refusal,
    strip_reasoning,
    system_message,
)

ATTENTION_EXPLANATION_PREFIX = "this attention head"
"""The sentence the answer completes."""
ATTENTION_SEQUENCE_SEPARATOR = "<|sequence_separator|>"
ATTENTION_RECORDS = 10
"""Records shown by default (Neuronpedia's ACTIVATIONS_TO_LOAD)."""


class AttentionRecordLike(Protocol):
    """One attention record: ``pb.AttentionRecord`` or anything shaped like it."""

    @property
    def tokens(self) -> Sequence[str]: ...

    @property
    def from_index(self) -> int: ...

    @property
    def weights(self) -> Sequence[float]: ...


# --------------------------------------------------------------------------------------------
# Tokens as the webapp shows them
# --------------------------------------------------------------------------------------------

_LINE_BREAK = "\u21b5"  # ↵, the webapp's LINE_BREAK_REPLACEMENT_CHAR
_HTML_ANOMALIES = {
    "\u00e2\u0122\u0136": "\u2014",  # em dash
    "\u00e2\u0122\u0135": "\u2013",  # en dash
    "\u00e2\u0122\u013e": "\u201c",  # left double quote
    "\u00e2\u0122\u013f": "\u201d",  # right double quote
    "\u00e2\u0122\u013a": "\u2018",  # left single quote
    "\u00e2\u0122\u013b": "\u2019",  # right single quote
    "\u00e2\u0122\u012d": " ",  # zero-width space (the webapp writes a space)
    "\u0120": " ",  # Ġ, byte-level BPE's space
    "\u010a": _LINE_BREAK,  # Ċ, byte-level BPE's newline
    "<0x0A>": _LINE_BREAK,  # sentencepiece's newline byte
    "\u0109": "\t",  # ĉ, byte-level BPE's tab
    "\u2581": "\u2004",  # ▁, sentencepiece's space: a three-per-em space
}
_HTML_ANOMALY_RE = re.compile("|".join(map(re.escape, _HTML_ANOMALIES)))


def clean_token_as_webapp(token: str) -> str:
    """A token as Neuronpedia's webapp writes it into prompts: ``replaceHtmlAnomalies(token,
    false)`` (hijohnnylin/neuronpedia ``apps/webapp/lib/utils/activations.ts``).

    Tokenizer artefacts become the characters they stand for, in one pass. As the webapp
    behaves, not as its table's comments say: it matches the keys of its no-line-break table
    but looks the replacement up in the other one, so ``Ċ`` and ``<0x0A>`` become ``↵``
    (U+21B5) rather than a newline, and ``▁`` becomes U+2004 (a three-per-em space). A raw
    newline or tab stays as it is. (Neuronpedia's batch runs clean with another table, in
    ``batch-autointerp.py``.)
    """
    return _HTML_ANOMALY_RE.sub(lambda match: _HTML_ANOMALIES[match.group(0)], token)


# --------------------------------------------------------------------------------------------
# Records
# --------------------------------------------------------------------------------------------


def attention_to_index(weights: Sequence[float], from_index: int) -> int:
    """The token attended to: the first index of the largest weight at or before
    ``from_index``."""
    best = 0
    for index in range(1, from_index + 1):
        if weights[index] > weights[best]:
            best = index
    return best


def format_attention_record(tokens: Sequence[str], from_index: int, to_index: int) -> str:
    """One record's line run: tokens joined as they are (cleaned by
    :func:`clean_token_as_webapp`), the "to" token as ``**tok**``, the "from" token as
    ``[[tok]]`` and a token that is both as ``[[**tok**]]``."""
    parts = []
    for index, token in enumerate(tokens):
        text = clean_token_as_webapp(token)
        if index == to_index:
            text = f"**{text}**"
        if index == from_index:
            text = f"[[{text}]]"
        parts.append(text)
    return "".join(parts)


def _checked(record: AttentionRecordLike, index: int) -> tuple[list[str], int, list[float]]:
    tokens, weights = [str(t) for t in record.tokens], [float(w) for w in record.weights]
    from_index = int(record.from_index)
    if not tokens:
        raise ValueError(f"record {index} has no tokens")
    if len(tokens) != len(weights):
        raise ValueError(
            f"record {index} needs one weight per token ({len(tokens)} tokens, "
            f"{len(weights)} weights)"
        )
    if not 0 <= from_index < len(tokens):
        raise ValueError(f"record {index} has from_index {from_index} outside its tokens")
    if not all(math.isfinite(w) for w in weights):
        raise ValueError(f"record {index} has a non-finite weight")
    if max(weights[: from_index + 1]) <= 0:
        raise ValueError(f"record {index} has no positive weight at or before from_index")
    return tokens, from_index, weights


def top_attention_records(
    records: Sequence[AttentionRecordLike], count: int = ATTENTION_RECORDS
) -> list[tuple[list[str], int, int]]:
    """``(tokens, from index, to index)`` of the ``count`` records shown, strongest first.

    As Neuronpedia's webapp picks them: records whose joined tokens repeat another's are shown
    once (we keep the strongest copy), ordered by the weight at their "to" token, strongest
    first (ties keep request order). ``ValueError`` for a record that is not usable.
    """
    strongest: dict[str, tuple[float, int, list[str], int, int]] = {}
    for index, record in enumerate(records):
        tokens, from_index, weights = _checked(record, index)
        to_index = attention_to_index(weights, from_index)
        text = "".join(tokens)
        candidate = (weights[to_index], index, tokens, from_index, to_index)
        kept = strongest.get(text)
        if kept is None or candidate[0] > kept[0]:
            strongest[text] = candidate
    ranked = sorted(strongest.values(), key=lambda item: (-item[0], item[1]))
    return [(tokens, from_index, to_index) for _, _, tokens, from_index, to_index in ranked[:count]]


# --------------------------------------------------------------------------------------------
# Messages
# --------------------------------------------------------------------------------------------


def _user_message(number: int, lines: Sequence[str]) -> str:
    body = f"\n{ATTENTION_SEQUENCE_SEPARATOR}\n".join(lines)
    return (
        f"\n\nAttention head {number}\nActivations:\n{body}\n"
        f"Explanation of attention head {number} behavior: {ATTENTION_EXPLANATION_PREFIX}"
    )


def oai_attention_head_messages(
    records: Sequence[AttentionRecordLike], max_records: int = ATTENTION_RECORDS
) -> list[dict[str, str]]:
    """Chat messages asking for an explanation of an attention head in OpenAI's format, as
    Neuronpedia's webapp sends them (see the module docstring).

    The ``max_records`` records chosen by :func:`top_attention_records` are shown. Parse the
    answer with :func:`parse_attention_head_answer`. ``ValueError`` when no record is given,
    a record is not usable or ``max_records`` is below 1.
    """
    if max_records < 1:
        raise ValueError("max_records must be at least 1")
    shown = top_attention_records(records, max_records)
    if not shown:
        raise ValueError("no attention records to show")
    lines = [format_attention_record(*record) for record in shown]
    few_shot: list[dict[str, str]] = []
    for user, assistant in _FEW_SHOT:
        few_shot += [{"role": "user", "content": user}, {"role": "assistant", "content": assistant}]
    return [
        system_message(_SYSTEM),
        *few_shot,
        {"role": "user", "content": _user_message(len(_FEW_SHOT) + 1, lines)},
    ]


# --------------------------------------------------------------------------------------------
# The answer
# --------------------------------------------------------------------------------------------

ATTENTION_ANSWER_SHAPE = (
    f'one line completing "{ATTENTION_EXPLANATION_PREFIX} ..." (attends to ... from ...), '
    "without the records' [[ ]] markers"
)
"""What an answer in this format must hold, as failure messages name it."""

_HEADER_RE = re.compile(r"attention\s++head\s++\d++\s*+:?$", re.IGNORECASE)


def is_attention_data_line(line: str) -> bool:
    """Whether a line of an answer is shaped like the prompt's records rather than like an
    explanation: an ``Attention head N`` header or ``Activations:`` line (a model writing the
    next few-shot turn), a ``<|sequence_separator|>`` line, or a line holding a ``[[...]]``
    "from" marker, which only the records carry (the system prompt says the explanation has
    no markers). Linear in the line."""
    stripped = line.strip()
    if _HEADER_RE.match(stripped) or stripped.lower() == "activations:":
        return True
    if ATTENTION_SEQUENCE_SEPARATOR in stripped:
        return True
    opened = stripped.find("[[")
    return opened >= 0 and stripped.find("]]", opened + 2) >= 0


_MARKS = "\"'`\u201c\u201d\u2018\u2019*_"
_ECHO_RE = re.compile(
    rf"^[\s{_MARKS}]*(?:explanation(?:\s+of\s+attention\s+head\s+\d+\s+behavior)?|answer)"
    rf"[{_MARKS}]*\s*:\s*",
    re.IGNORECASE,
)
_PREFIX_RE = re.compile(
    rf"^[\s{_MARKS}]*(?:this|the)\s+(?:attention\s+)?head\b(?!['\u2019])"
    rf"[{_MARKS}]*[ \t:,\-\u2013\u2014]*",
    re.IGNORECASE,
)


def parse_attention_head_answer(text: str) -> str:
    """What the answer says the head does, completing "this attention head ...".

    Reasoning blocks are dropped, then a leading "Explanation of attention head N behavior:"
    (or "Explanation:", "Answer:") label; from the first non-empty line after it, surrounding
    quotes, a restated "this attention head" ("This attention head", "The head", ...) and a
    final period are removed. The result is the completion alone (``attends to ... from
    ...``). ``ValueError`` when nothing is left, or when that line is shaped like the
    prompt's records (:func:`is_attention_data_line`: the model continued them).
    """
    answer = _ECHO_RE.sub("", strip_reasoning(text), count=1)
    if is_attention_data_line(first_line(answer)):
        raise ValueError("the answer copies the records instead of explaining the head")
    line = clean_phrase(first_line(answer))
    explanation = clean_phrase(_PREFIX_RE.sub("", line, count=1))
    if not explanation:
        raise ValueError("the answer has no explanation")
    if is_refusal(explanation):
        raise ValueError("the answer talks about the model, not the head")
    return explanation


# --------------------------------------------------------------------------------------------
# The webapp's system prompt and few-shot examples, verbatim (autointerp-explainer-att.ts
# 15-143; the Python library's examples, from gpt2-xl heads). Example 1 keeps the webapp's
# whitespace and its stray '"' before the final newline: that is what the webapp sends.
# --------------------------------------------------------------------------------------------

_SYSTEM = (
    "We're studying attention heads in a neural network. Each head looks at every pair of"
    " tokens in a short token sequence and activates for pairs of tokens that fit what it is"
    " looking for. Attention heads always attend from a token to a token earlier in the"
    " sequence (or from a token to itself).\n"
    "\n"
    'We will display multiple instances of sequences with the "to" token surrounded by double'
    ' asterisks (e.g., **token**) and the "from" token surrounded by double square brackets'
    " (e.g., [[token]]). If a token attends from itself to itself, it will be surrounded by"
    " both (e.g., [[**token**]]).\n"
    "\n"
    "Look at the pairs of tokens the head activates for and summarize in a single sentence"
    " what pattern the head is looking for. We do not display every activating pair of tokens"
    " in a sequence; you must generalize from limited examples.\n"
    "\n"
    "Remember, the head always attends to tokens earlier in the sentence (marked with ** **)"
    " from tokens later in the sentence (marked with [[ ]]), except when the head attends"
    " from a token to itself (marked with [[** **]]).\n"
    "\n"
    'The explanation takes the form: "This attention head attends to {pattern of tokens'
    " marked with ** **, which appear earlier} from {pattern of tokens marked with [[ ]],"
    ' which appear later}." The explanation does not include any of the markers (** **, [['
    " ]]), as these are just for your reference.\n"
    "\n"
    "Sequences are separated by <|sequence_separator|>."
)

_HEAD_1 = (
    "\n"
    "\n"
    "Attention head 1\n"
    "Activations:\n"
    "dreams of a future like her biggest idol, who was also born visually impaired.\n"
    "\n"
    '"My ultimate dream would be to sing at Carols [by Candlelight**]** and to become a'
    " famous musician like Andrea Bocelli[[ ...]] and to show people that if you have a"
    " disability it doesn't matter,\" she said.\n"
    "<|sequence_separator|>\n"
    "omes Ever Sequenced**]**[[\n"
    "]]\n"
    "One mystery of cat development is how cats have come to have such varied coats, from"
    ' solid colours to "mackerel" tabby patterns of thin vertical stripes. The researchers'
    ' were particularly interested in what turns the mackerel pattern into a "blotched" tabby'
    " pattern,\n"
    "<|sequence_separator|>\n"
    ", 6, 8, 4**]**[[':]]rb.sort.slice(1,2); # More advanced, this is Ruby's map and"
    " each_with_index # This shows the :rb postfix-operator sugar instead of EVAL"
    ' "[1,2,3,4]":rb .map(-> $\n'
    "<|sequence_separator|>\n"
    " him a WN [white nationalist**]** until there is an indication as such[[...]] The fact"
    ' that he targeted a church gives me an inkling that it was religion-related," wrote'
    " WhiteVirginian.\n"
    " \n"
    ' "Yep, bad news for gun rights advocates as well," wrote maththeorylover2008. "Another\n'
    " <|sequence_separator|>\n"
    " 23**]**\n"
    " [[\n"
    " ]]While preparing to take the fight to Primordus, Balthazar learned about Taimi's"
    " machine and how it could supposedly kill two Elder Dragons with a single blow, which"
    " piqued his interest. This piece of news, as well as Marjory's sudden departure from his"
    " side which\n"
    ' Explanation of attention head 1 behavior: this attention head"\n'
)
_HEAD_1_ANSWER = " attends to the latest closing square bracket from arbitrary subsequent tokens."

_HEAD_2 = (
    "\n"
    "\n"
    "Attention head 2\n"
    "Activations:\n"
    ' he said. "Coming off winning the year before, I love playing links** golf**, and I love'
    " playing the week before a major. It was tough to miss it. I'm just glad to be back.\"\n"
    "\n"
    "Fowler outplayed his partners[[ Rory]] McIlroy (74) and Henrik Stenson (72\n"
    "<|sequence_separator|>\n"
    " Club:\n"
    "\n"
    "1. World renowned** golf**[[ course]]\n"
    "\n"
    "2. Vern Morcom designed golf course\n"
    "\n"
    "3. Great family holiday destination\n"
    "\n"
    "4. Play amid our resident Eastern Grey kangaroo population\n"
    "\n"
    "5. Terrific friendly staff\n"
    "\n"
    "6. Natural picturesque bush setting\n"
    "\n"
    "7. L\n"
    "<|sequence_separator|>\n"
    "615 rpm on average). As a result, each player was hitting longer drives on their best"
    " shots, while achieving a straighter ball flight that was less affected by wind.\n"
    "\n"
    "Every** Golf**WRX Member gained yardage with a new[[ Taylor]]Made driver; the largest"
    " distance gain was an impressive +10.1 yards,\n"
    "<|sequence_separator|>\n"
    " of being? Well, having perfected the art of swimming, Phelps has moved on to another"
    " cherished summer pastime \u2013** golf**. Here he is participating in the Dunhill Links"
    " Championship at Kingsbarns in Scotland today. The[[ greens]] over there are really big,"
    " so the opportunity for 50-yard putts exist. Of\n"
    "<|sequence_separator|>\n"
    "OTUS is getting to see aliens.\n"
    "\n"
    "RELATED: Barack Obama joins second D.C.-area** golf** club\n"
    "\n"
    "\"He goes, 'they're freaking crazy looking.' And then he walks up, makes his putt, turns"
    ' back, walks off the[[ green]], leaves it at that and gives me a wink,"\n'
    "Explanation of attention head 2 behavior: this attention head"
)
_HEAD_2_ANSWER = ' attends to the token "golf" from golf-related tokens.'

_HEAD_3 = (
    "\n"
    "\n"
    "Attention head 3\n"
    "Activations:\n"
    " security by requiring the user to enter a numeric code sent to** his** or[[ her]]"
    " cellphone in addition to a password. A lot of websites have offered this feature for"
    " years, but Intuit just made it widely available earlier this year.\n"
    "\n"
    '"When you give your most sensitive data and that of your family to a company,\n'
    "<|sequence_separator|>\n"
    " 3 months, they separated the** men** and[[ women]] here. I don't know where they took"
    " the men and the children, but they took us women to Syria. They kept us in an"
    " underground prison. My only wish is that my children and husband escape ISIS. They"
    " brought us here from Raqqa, my sisters from the PKK\n"
    "<|sequence_separator|>\n"
    ' an emphasis on the pursuit of power despite interpersonal costs."\n'
    "\n"
    "The study, which involved over 600 young** men** and[[ women]], makes a strong case for"
    ' assessing such traits as "ruthless ambition," "discomfort with leadership" and'
    ' "hubristic pride" to understand psychopathologies.\n'
    "\n"
    "The researchers looked at\n"
    "<|sequence_separator|>\n"
    " 4 hours. These results, differ between** men** and[[ women]], however. We can see that"
    " although both groups have a large cluster of people at exactly 40 hours per week, there"
    " are more men reporting hours above 40, whereas there are more women reporting hours"
    " below 40. Result 3: Male Hours Worked [Info] Owner\n"
    "<|sequence_separator|>\n"
    " they were perceived as more emotional, which made participants more confident in their"
    ' own opinion."\n'
    "\n"
    "Ms Salerno said both** men** and[[ women]] reacted in the same way to women expressing"
    " themselves angrily.\n"
    "\n"
    '"Participants confidence in their own verdict dropped significantly after male holdouts'
    " expressed anger,\" the paper's findings stated.\n"
    "\n"
    "Explanation of attention head 3 behavior: this attention head"
)
_HEAD_3_ANSWER = " attends to male-related tokens from paired female-related tokens."

_HEAD_4 = (
    "\n"
    "\n"
    "Attention head 4\n"
    "Activations:\n"
    "Vietnamese[[** Ministry**]] of Foreign Affairs spokesperson Le Hai Binh is seen in this"
    " file photo. . Tuoi Tre\n"
    "\n"
    "The Ministry of Foreign Affairs has ordered a thorough investigation into a case in"
    " which a Vietnamese fisherman was shot dead on his boat in Vietnam's Truong Sa (Sprat\n"
    "<|sequence_separator|>\n"
    " J[[**okin**]]en tells a much different story. He almost sounded like a pitchman.\n"
    "\n"
    '"All the staff, team service guys, all the trainers, they\'re unbelievable guys," said'
    " Jokinen. \"It's not just the players, it's the staff around the team. I feel really bad"
    " for them\n"
    "<|sequence_separator|>\n"
    " a[[** Pv**]]E game, we probably would use it but based on the tests we've run on it,"
    " that wouldn't be our first choice for a live RvR game. Now, could we use it for"
    " prototyping? Yep, we are already doing that. Second, as to other engines there are both"
    " financial\n"
    "<|sequence_separator|>\n"
    "-[[**tun**]]er is also customisable for hassle-free experimentation. The Strix X399-E"
    " Gaming takes up to three double-wide cards in SLI or CrossFireX. Primary graphics slots"
    " are protected by SafeSlot from damages that heavy GPU coolers can potentially cause.\n"
    "\n"
    "Personalised RGB lighting is made possible\n"
    "<|sequence_separator|>\n"
    " to[[** abolish**]] such a complex? Are there ways vegans can eat more sustainably? What"
    " are some of the health challenges for new vegans, and how can we raise awareness of"
    " these issues so that, for instance, medical professionals are more supportive of"
    " veganism?\n"
    "\n"
    "Moreover, it is essential that vegans differentiate\n"
    "Explanation of attention head 4 behavior: this attention head"
)
_HEAD_4_ANSWER = (
    " attends from the second token in the sequence to the second token in the sequence."
)

_FEW_SHOT: tuple[tuple[str, str], ...] = (
    (_HEAD_1, _HEAD_1_ANSWER),
    (_HEAD_2, _HEAD_2_ANSWER),
    (_HEAD_3, _HEAD_3_ANSWER),
    (_HEAD_4, _HEAD_4_ANSWER),
)
