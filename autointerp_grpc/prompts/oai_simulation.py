"""The prompt of the expected-value ("logprob_ev") simulation: OpenAI's token<TAB>activation
simulator prompt for chat models, from Neuronpedia's fork of OpenAI's neuron-explainer
(``automated-interpretability`` 0.0.24, ``neuron_explainer/explanations/simulator.py``).

The wire format is the anchor's chat ("harmony") simulation prompt,
``LogprobFreeExplanationTokenSimulator._make_simulation_prompt`` (simulator.py lines
1065-1121, with ``_format_record_for_logprob_free_simulation``, lines 609-632): the system
message says the format is ``token<tab>activation`` with activations 0 to 10; each neuron is a
user message with its explanation ("the main thing this neuron does is find ...",
``EXPLANATION_PREFIX`` of explainer.py) and its tokens as ``token<TAB>༗`` lines, and the
assistant answers the same lines with the activation digit before the ``༗`` mark
(``token<TAB>4༗``). The ༗ character ends every line so that an answer splits on
``"༗\n"`` even where a token holds a newline. The few-shot examples are the anchor's
``FewShotExampleSet.NEWER`` (few_shot_examples.py lines 956-1482), their activations
normalised to 0-10 by each example's maximum over its records (``normalize_activations`` and
``calculate_max_activation``, activations/activation_records.py lines 15-32); they are
stored here as the normalised values. ``<|endoftext|>`` tokens are shown as
``<|not_endoftext|>`` (simulator.py lines 45-47, 624-626).

tests/fixtures/anchors/simulation/ holds the messages the anchor builds for sample records;
the unit tests check :func:`simulation_ev_messages` against them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from autointerp_grpc.prompts.common import EXPLANATION_PREFIX, MAX_ACTIVATION

__all__ = [
    "END_OF_TEXT",
    "END_OF_TEXT_REPLACEMENT",
    "LINE_END",
    "VALID_ACTIVATIONS",
    "blank_lines",
    "filled_lines",
    "sequences_instruction",
    "shown_token",
    "simulation_ev_batch_messages",
    "simulation_ev_messages",
]

LINE_END = "\u0f17"
"""The mark that ends every token line, before its newline (the anchor's "weird unicode
character ... to make it easier to parse the response")."""
END_OF_TEXT = "<|endoftext|>"
END_OF_TEXT_REPLACEMENT = "<|not_endoftext|>"
VALID_ACTIVATIONS: tuple[str, ...] = tuple(str(i) for i in range(MAX_ACTIVATION + 1))
"""The activation tokens a simulated line may hold, "0" to "10" (simulator.py lines 39-43)."""

_SYSTEM = (
    "We're studying neurons in a neural network. Each neuron looks for some particular thing "
    "in a short document. Look at an explanation of what the neuron does, and try to predict "
    "its activations on a particular token.\n\n"
    "The activation format is token<tab>activation, and activations range from 0 to 10. Most "
    "activations will be 0.\n"
    "For each sequence, you will see the tokens in the sequence where the activations are "
    "left blank. You will print the exact same tokens verbatim, but with the activations "
    "filled in according to the explanation.\n"
)


@dataclass(frozen=True)
class _FewShotRecord:
    tokens: tuple[str, ...]
    nonzero: dict[int, int]
    """Normalised activation (1-10) by token index; every other token is 0."""

    @property
    def activations(self) -> list[int]:
        return [self.nonzero.get(i, 0) for i in range(len(self.tokens))]


@dataclass(frozen=True)
class _FewShot:
    explanation: str
    records: tuple[_FewShotRecord, ...]


# The anchor's FewShotExampleSet.NEWER (few_shot_examples.py lines 956-1482), normalised.
# fmt: off
_FEW_SHOT: tuple[_FewShot, ...] = (
    _FewShot(
        "language related to something being groundbreaking",
        (
            _FewShotRecord(
                (
                    "The", " editors", " of", " Bi", "opol", "ym", "ers", " are", " delighted",
                    " to", " present", " the", " ", "201", "8", " Murray", " Goodman",
                    " Memorial", " Prize", " to", " Professor", " David", " N", ".", " Ber",
                    "atan", " in", " recognition", " of", " his", " seminal", " contributions",
                    " to", " bi", "oph", "ysics", " and", " their", " impact", " on", " our",
                    " understanding", " of", " charge", " transport", " in", " biom", "olecules",
                    ".\n\n", "In", "aug", "ur", "ated", " in", " ", "200", "7", " in", " honor",
                    " of", " the", " Bi", "opol", "ym", "ers", " Found", "ing", " Editor", ",",
                    " the", " prize", " is", " awarded", " for", " outstanding",
                    " accomplishments",
                ),
                {30: 10, 66: 1},
            ),
        ),
    ),
    _FewShot(
        "the word “variant” and other words with the same ”vari” root",
        (
            _FewShotRecord(
                (
                    "{\"", "widget", "Class", "\":\"", "Variant", "Matrix", "Widget", "\",\"",
                    "back", "order", "Message", "\":\"", "Back", "ordered", "\",\"", "back",
                    "order", "Message", "Single", "Variant", "\":\"", "This", " item", " is",
                    " back", "ordered", ".\",\"", "ordered", "Selection", "\":", "true", ",\"",
                    "product", "Variant", "Id", "\":", "0", ",\"", "variant", "Id", "Field",
                    "\":\"", "product", "196", "39", "_V", "ariant", "Id", "\",\"", "back",
                    "order", "To", "Message", "Single", "Variant", "\":\"", "This", " item",
                    " is", " back", "ordered", " and", " is", " expected", " by", " {", "0", "}.",
                    "\",\"", "low", "Price", "\":", "999", "9", ".", "0", ",\"", "attribute",
                    "Indexes", "\":[", "],\"", "productId", "\":", "196", "39", ",\"", "price",
                    "V", "ariance", "\":", "true", ",\"",
                ),
                {4: 6, 19: 5, 33: 5, 38: 6, 45: 5, 46: 5, 54: 4, 87: 3, 88: 3},
            ),
            _FewShotRecord(
                (
                    "A", " regular", " look", " at", " the", " ups", " and", " downs", " of",
                    " variant", " covers", " in", " the", " comics", " industry", "…\n\n", "Here",
                    " are", " the", " Lego", " variant", " sketch", " covers", " by", " Leon",
                    "el", " Cast", "ell", "ani", " for", " a", " variety", " of", " Marvel",
                    " titles", ",",
                ),
                {9: 9, 20: 2, 31: 4},
            ),
        ),
    ),
)
# fmt: on


def shown_token(token: str) -> str:
    """A token as the prompt shows it: ``<|endoftext|>`` becomes ``<|not_endoftext|>``."""
    return END_OF_TEXT_REPLACEMENT if token.strip() == END_OF_TEXT else token


def blank_lines(tokens: Sequence[str]) -> str:
    """``token<TAB>\u0f17`` lines, one per token: the tokens whose activations are asked for."""
    return "".join(f"{shown_token(token)}\t{LINE_END}\n" for token in tokens)


def filled_lines(tokens: Sequence[str], activations: Sequence[int]) -> str:
    """``token<TAB>activation\u0f17`` lines: the answer format."""
    return "".join(
        f"{shown_token(token)}\t{value}{LINE_END}\n"
        for token, value in zip(tokens, activations, strict=True)
    )


def _asked(number: int, tokens: Sequence[str]) -> str:
    return (
        f"Sequence {number} Tokens without Activations:\n{blank_lines(tokens)}\n\n"
        f"Sequence {number} Tokens with Activations:\n"
    )


def _neuron(number: int, explanation: str) -> str:
    return (
        f"Neuron {number}\nExplanation of neuron {number} behavior: {EXPLANATION_PREFIX} "
        f"{explanation}\n\n"
    )


def sequences_instruction(count: int) -> str:
    """What a prompt asking for ``count`` sequences adds before the answer's first heading."""
    return (
        f"Fill in the activations of all {count} sequences above, in order, each after its "
        'heading "Sequence N Tokens with Activations:".\n\n'
    )


def simulation_ev_batch_messages(
    explanation: str, records: Sequence[Sequence[str]]
) -> list[dict[str, str]]:
    """The chat messages that ask for the ``token<TAB>activation`` lines of several records
    at once: the anchor's system message and few-shot neurons (as in
    :func:`simulation_ev_messages`, which one record gets exactly), then one user message
    with each record as "Sequence N Tokens without Activations:", an instruction to fill
    them in in order, and the first answer heading. The few-shot preamble (about 1,100 prompt
    tokens with OpenAI's tokenizer, 3,000 with SmolLM2's) is then sent once for the records
    instead of once per record. ValueError when a record has no tokens."""
    if len(records) == 1:
        return simulation_ev_messages(explanation, records[0])
    if not records or not all(records):
        raise ValueError("there are no tokens to simulate")
    messages = simulation_ev_messages(explanation, records[0])
    asked = "".join(
        f"Sequence {number} Tokens without Activations:\n{blank_lines(tokens)}\n\n"
        for number, tokens in enumerate(records, start=1)
    )
    messages[-1] = {
        "role": "user",
        "content": _neuron(len(_FEW_SHOT) + 1, explanation)
        + asked
        + sequences_instruction(len(records))
        + "Sequence 1 Tokens with Activations:\n",
    }
    return messages


def simulation_ev_messages(explanation: str, tokens: Sequence[str]) -> list[dict[str, str]]:
    """The chat messages that ask the model to write ``token<TAB>activation`` lines for
    ``tokens`` under ``explanation``: the anchor's system message, its few-shot neurons
    (user: explanation and blank lines; assistant: filled lines) and the neuron to simulate.
    ValueError when there are no tokens."""
    if not tokens:
        raise ValueError("there are no tokens to simulate")
    messages = [{"role": "system", "content": _SYSTEM}]
    for index, example in enumerate(_FEW_SHOT, start=1):
        for number, record in enumerate(example.records, start=1):
            head = _neuron(index, example.explanation) if number == 1 else ""
            messages.append({"role": "user", "content": head + _asked(number, record.tokens)})
            answer = filled_lines(record.tokens, record.activations)
            messages.append({"role": "assistant", "content": answer + "\n\n"})
    asked = _neuron(len(_FEW_SHOT) + 1, explanation) + _asked(1, tokens)
    messages.append({"role": "user", "content": asked})
    return messages
