"""An answer shaped like the prompt's data is no explanation, and each format's failure names
its own answer shape (issue 18 item 9).

A small instruct model behind llama.cpp answered ``oai_token_act_pair`` with ``names of
day<TAB>0``: it continued the excerpts' ``token<TAB>activation`` lines, and that line was stored
as the explanation. Every explainer's format invites the same continuation in its own data
shape (delphi's ``Example N:`` lines, Neuronpedia's list tags and ``Neuron N`` header,
python-code's ``★`` marks, the attention head's ``Attention head N`` turn and ``[[ ]]``
markers); each such answer is unparsable: retried once, then a typed error naming what the
format asks for. The judges here are scripted clients in process, one answer per call.
"""

from __future__ import annotations

import contextlib
import math
import time
from typing import Any

import pytest

from autointerp_grpc.delphi_compat import Explainer, Response
from autointerp_grpc.errors import UpstreamBadResponse
from autointerp_grpc.gen.autointerp.v1 import autointerp_pb2 as pb
from autointerp_grpc.handlers.explain import explain_records
from autointerp_grpc.handlers.lookup import default_method
from autointerp_grpc.methods.explainers import answer_shape
from autointerp_grpc.methods.registry import EXPLAINER_REGISTRY
from autointerp_grpc.methods.spec import ExplainContext
from autointerp_grpc.records import activating_example, non_activating_example


class Scripted:
    """An LLM client that gives its answers in turn and records every prompt."""

    def __init__(self, *answers: str) -> None:
        self.answers = list(answers)
        self.prompts: list[Any] = []

    async def generate(self, prompt: Any, **_: Any) -> Response:
        self.prompts.append(prompt)
        return Response(text=self.answers.pop(0))


def _activating() -> list[pb.Activation]:
    return [
        pb.Activation(
            tokens=["The", " cat", " sat", " on", " the", " mat"], values=[0, 9, 0, 0, 0, 0]
        ),
        pb.Activation(tokens=["A", " cat", " ran", " for", " x", " in"], values=[0, 7, 1, 0, 0, 0]),
    ]


_NON_ACTIVATING = pb.Activation(tokens=["The", " bank", " shut"], values=[0, 0, 0])


def _attention() -> list[pb.AttentionRecord]:
    return [
        pb.AttentionRecord(
            tokens=["The", " cat", " saw", " it"], from_index=3, weights=[0.1, 0.8, 0.05, 0.05]
        )
    ]


async def _explain(name: str, client: Scripted) -> str:
    method = default_method(EXPLAINER_REGISTRY, name)
    needs = method.spec.needs
    return await explain_records(
        method,
        client,  # type: ignore[arg-type]
        [] if needs.attention else _activating(),
        [_NON_ACTIVATING],
        ["cat", "cats"],
        attention=_attention() if needs.attention else (),
    )


# What each format's prompt invites a model to continue with, in that format's data shape.
DATA_SHAPED: dict[str, list[str]] = {
    "default": [
        "[EXPLANATION]: Example 4:  the <<cat>> sat on the mat",
        '[EXPLANATION]: cats\nActivations: ("cat" : 9), ',
    ],
    "contrastive": [
        "[EXPLANATION]: NON-ACTIVATING EXAMPLES:\nExample 1:  The bank shut",
        "[EXPLANATION]: Example 3:  a <<cat>> ran",
    ],
    "oai_token_act_pair": ["names of day\t0", "<start>\nMonday\t9\n<end>", " cat\t10\n sat\t0"],
    "np_max_act": [
        "\n\nNeuron 4\n\n<MAX_ACTIVATING_TOKENS>\n\ncat\n\n</MAX_ACTIVATING_TOKENS>",
        "Explanation: <TOP_ACTIVATING_TEXTS>",
    ],
    "np_max_act_logits": [
        "Explanation: <TOP_POSITIVE_LOGITS>",
        "Neuron 5\n\n<TOKENS_AFTER_MAX_ACTIVATING_TOKEN>\n\nsat",
    ],
    "np_acts_logits_general": [
        "<MAX_ACTIVATING_TOKENS>\n\ncat\ncat\n\n</MAX_ACTIVATING_TOKENS>",
        "cats\n\n<TOP_POSITIVE_LOGITS>\n\ncat",
    ],
    "python_code": [
        "for x in \u2605range\u2605(10):",
        "<TOKENS_AFTER_MAX_ACTIVATING_TOKEN>\n\n(",
    ],
    "oai_attention_head": [
        "\n\nAttention head 6\nActivations:\nThe **cat** saw[[ it]]",
        " attends to **cat** from[[ it]]",
    ],
}

# A well-formed answer per format, near the new rules (so they do not refuse real answers).
GOOD: dict[str, tuple[str, str]] = {
    "default": ("The <<cat>> marks it.\n[EXPLANATION]: the word cat", "the word cat"),
    "contrastive": ("[EXPLANATION]: mentions of cats, not banks", "mentions of cats, not banks"),
    "oai_token_act_pair": ("names of animals such as cat", "names of animals such as cat"),
    "np_max_act": ("Method 1 succeeds: all are cat.\nExplanation: cat", "cat"),
    "np_max_act_logits": ("Method 2 succeeds.\nExplanation: say 7", "say 7"),
    "np_acts_logits_general": (
        "the word cat in animal contexts",
        "the word cat in animal contexts",
    ),
    "python_code": ("loop variable after the for keyword", "loop variable after the for keyword"),
    "oai_attention_head": (
        ' attends to "cat" from the pronoun **it** later on.',
        'attends to "cat" from the pronoun **it** later on',
    ),
}

# A fragment of the answer shape each format's failure names.
SHAPE: dict[str, str] = {
    "default": "a last line '[EXPLANATION]: <explanation>'",
    "contrastive": "a last line '[EXPLANATION]: <explanation>'",
    "oai_token_act_pair": 'one line completing "the main thing this neuron does is find ..."',
    "np_max_act": "a last line 'Explanation: <1-6 words>'",
    "np_max_act_logits": "a last line 'Explanation: <1-6 words>'",
    "np_acts_logits_general": "the whole answer a phrase of 3 to 20 words",
    "python_code": "naming the Python concept",
    "oai_attention_head": 'one line completing "this attention head ..."',
}


def test_every_explainer_is_covered() -> None:
    assert set(DATA_SHAPED) == set(GOOD) == set(SHAPE) == set(EXPLAINER_REGISTRY)


@pytest.mark.parametrize("name", sorted(EXPLAINER_REGISTRY))
async def test_a_data_shaped_answer_is_never_an_explanation(name: str) -> None:
    for answer in DATA_SHAPED[name]:
        # Twice: the typed error, after exactly two calls.
        client = Scripted(answer, answer)
        with pytest.raises(UpstreamBadResponse, match="no parsable explanation in 2 attempts"):
            await _explain(name, client)
        assert not client.answers, (name, answer)
        # Once: retried, and the second answer is the explanation.
        good, parsed = GOOD[name]
        assert await _explain(name, Scripted(answer, good)) == parsed, (name, answer)


@pytest.mark.parametrize("name", sorted(EXPLAINER_REGISTRY))
async def test_a_well_formed_answer_still_parses(name: str) -> None:
    good, parsed = GOOD[name]
    client = Scripted(good)
    assert await _explain(name, client) == parsed
    assert len(client.prompts) == 1


@pytest.mark.parametrize("name", sorted(EXPLAINER_REGISTRY))
async def test_each_failure_names_its_own_answer_shape(name: str) -> None:
    with pytest.raises(UpstreamBadResponse) as info:
        await _explain(name, Scripted("", ""))
    message = info.value.message
    assert SHAPE[name] in message, message
    assert message == (
        f"The model gave no parsable explanation in 2 attempts (expected {_shape_of(name)}); "
        "try again or use another model"
    )
    if name not in ("default", "contrastive"):
        assert "[EXPLANATION]" not in message, message  # not the default explainers' format


def _shape_of(name: str) -> str:
    """The answer shape of the explainer that method ``name`` builds."""
    return answer_shape(_explainer(name))


def _explainer(name: str) -> Explainer:
    """The explainer that method ``name`` builds (on a scripted client)."""
    method = default_method(EXPLAINER_REGISTRY, name)
    ctx = ExplainContext(
        params=method.params,
        client=Scripted(),  # type: ignore[arg-type]
        activating=[activating_example(r, latent_max=9.0) for r in _activating()],
        non_activating=[non_activating_example(_NON_ACTIVATING, latent_max=9.0)],
        top_positive_logits=["cat"],
        attention=_attention(),
    )
    # An explainer's build makes its delphi explainer and record synchronously.
    explainer, _ = method.spec.build(ctx)
    return explainer


# --- the new checks are linear in the answer (DESIGN §3b) ------------------------------------

CAP = 256 * 1024
HOSTILE = {
    "tabs": "a" + "\t" * CAP + "0",
    "tab digit runs": "x" + "\t 1" * (CAP // 3),
    "from-marker opens": "[[" * (CAP // 2),
    "angle brackets": "<" * CAP,
    "neuron then spaces": "neuron " + " " * CAP + "5",
    "example lines": "Example 1\n" * (CAP // 10),
    "attention head then spaces": "attention head" + " " * CAP,
    "stars": "\u2605" * CAP,
}


def _best_of_three(parse: Any, text: str) -> float:
    best = math.inf
    for _ in range(3):
        start = time.perf_counter()
        with contextlib.suppress(ValueError):
            parse(text)
        best = min(best, time.perf_counter() - start)
        if best < 0.5:
            break
    return best


@pytest.mark.parametrize("name", sorted(EXPLAINER_REGISTRY))
def test_the_data_shape_checks_are_linear_at_the_answer_cap(name: str) -> None:
    explainer = _explainer(name)
    for case, text in HOSTILE.items():
        for answer in (text, "[EXPLANATION]: " + text, "Explanation: " + text):
            elapsed = _best_of_three(explainer.parse_explanation, answer)
            assert elapsed < 0.5, (name, case, elapsed)
