"""Blind judges stay at chance on the intruder scorer (DESIGN.md §3a; issue 18 item 3).

A blind judge picks the intruder from the prompt's layout alone: where an example's highlight
starts, how many tokens it covers, whether its shape repeats another example's, delphi's filler
sentence, or simply one fixed index. delphi's IntruderScorer gives such judges tells: the
intruder's highlight sits at token ``len - len // 4`` (issue 18: 0.93 on sparse latents); it
covers as many tokens as the real examples have *non-zero* activations on average, or, if the
intruder has a positive value, follows its own activations, so on dense latents its count gives
it away (0.98); a one-token intruder becomes a filler sentence; and a constant seed puts the
intruder on the same places for every latent of one size.

Here, over 60 latents of each kind (sparse, varied record lengths from 1 to 40 tokens, dense
GELU-like, dense firing broadly), 2,400 prompts, every blind judge must score chance
(1/options: 0.2 at 5 per prompt) ± 0.05 (measured: 0.187-0.211); a fair judge's standard error
there is 0.007-0.011 (clustered by latent, and checked to stay under 0.05 / 3.5), so the
tolerance is more than four of them. Against delphi's layout (these tests run on the scorer
before issue 18) the same judges scored 0.84-0.88 (highlight start), 0.26 and 0.02 (fewest and
most highlighted, sparse), 0.61 (most highlighted, dense), 0.60 (fewest highlighted, dense
firing broadly), and a fixed index 0.125-0.30, the same on every latent. A sighted judge (it
knows the latent's keyword, which the examples' content shows) still finds every intruder. The
latents are synthetic: both classes draw their tokens from one vocabulary; activating records
also hold the keyword.

The judges answer through a fake client's ``generate`` from the prompt text, as an LLM would.
Every judge of the panel reads every prompt; one of them, in turn per latent, gives the answer
the scorer gets, so each judge's picks are scored by the scorer's own path (``score_split``) on
some latents, and on the rest against the intruder index the breakdown reports for the same
prompt (the two are checked to agree).
"""

from __future__ import annotations

import asyncio
import math
import random
import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import pytest

from autointerp_grpc.delphi_compat import (
    IntruderScorer,
    Latent,
    LatentRecord,
    Response,
)
from autointerp_grpc.errors import AutoInterpError
from autointerp_grpc.gen.autointerp.v1 import autointerp_pb2 as pb
from autointerp_grpc.handlers import Deps
from autointerp_grpc.handlers.lookup import default_method
from autointerp_grpc.handlers.score import score_split
from autointerp_grpc.methods.registry import SCORER_REGISTRY
from autointerp_grpc.methods.spec import ScoreResult
from autointerp_grpc.records import Split, activating_example, non_activating_example

PER_PROMPT = 5
CHANCE = 1 / PER_PROMPT
TOLERANCE = 0.05
N_ACT, N_NON = 20, 40  # one prompt per non-activating record: 40 prompts per latent
LATENTS = 60  # 2,400 prompts per kind: a fair judge's standard error is about 0.008-0.011
KEYWORD = " cat"
WORDS = [" the", " a", " of", " dog", " sat", " on", " mat", " and", " then", " ran", " to", " by"]
FILLER_MARK = "NNsight"  # in delphi's filler sentence

# --- latents ---------------------------------------------------------------------------------


def _gelu(x: float) -> float:
    return 0.5 * x * (1 + math.erf(x / math.sqrt(2)))


def _latent(
    seed: int,
    lengths: Callable[[random.Random], int],
    noise: Callable[[random.Random], float],
    quiet: Callable[[random.Random], float] | None = None,
) -> Split:
    """``N_ACT`` activating records (the keyword on one token, or two: adjacent or apart, at
    2-6) and ``N_NON`` non-activating ones, ``noise`` on every other token (``quiet``, if
    given, on the non-activating records), lengths drawn independently per record from one
    distribution."""
    rng = random.Random(seed)
    acts = []
    for _ in range(N_ACT):
        n = lengths(rng)
        tokens = [rng.choice(WORDS) for _ in range(n)]
        values = [noise(rng) for _ in range(n)]
        first = rng.randrange(n)
        active = {first}
        if n > 2 and rng.random() < 0.5:
            active.add(first + 1 if first + 1 < n and rng.random() < 0.5 else rng.randrange(n))
        for i in active:
            tokens[i], values[i] = KEYWORD, rng.uniform(2.0, 6.0)
        acts.append(activating_example(pb.Activation(tokens=tokens, values=values)))
    nons = []
    for _ in range(N_NON):
        n = lengths(rng)
        record = pb.Activation(
            tokens=[rng.choice(WORDS) for _ in range(n)],
            values=[(quiet or noise)(rng) for _ in range(n)],
        )
        nons.append(non_activating_example(record))
    return Split(acts, nons, [*acts, *nons])


def _zero(rng: random.Random) -> float:
    return 0.0


KINDS: dict[str, Callable[[int], Split]] = {
    # One or two active tokens; all-zero elsewhere and on the non-activating records.
    "sparse": lambda seed: _latent(seed, lambda r: r.randint(8, 32), _zero),
    # Lengths from one token to 40 (delphi makes a one-token intruder its filler sentence).
    "varied_lengths": lambda seed: _latent(seed, lambda r: r.randint(1, 40), _zero),
    # GELU-like: every token a small value, some of them positive, a few large.
    "dense": lambda seed: _latent(
        seed, lambda r: r.randint(8, 32), lambda r: _gelu(r.gauss(-0.3, 0.8))
    ),
    # GELU-like, firing broadly on activating records (many tokens near their peak), against
    # quieter non-activating ones.
    "dense_broad": lambda seed: _latent(
        seed,
        lambda r: r.randint(8, 32),
        lambda r: _gelu(r.gauss(1.0, 1.0)),
        lambda r: _gelu(r.gauss(-0.3, 0.8)),
    ),
}

# --- reading a prompt as a judge does --------------------------------------------------------

_EXAMPLE_RE = re.compile(r"^Example \d+:(.*)$", re.MULTILINE)
_TOKEN_RE = re.compile(r"\s*\S+")


@dataclass(frozen=True)
class Shown:
    """One example as a judge reads it: its text, its tokens and which are highlighted."""

    text: str
    tokens: list[str]
    flags: list[bool]

    @cached_property
    def count(self) -> int:
        return sum(self.flags)

    @cached_property
    def shape(self) -> tuple[tuple[int, int], ...]:
        """The highlight's runs as (start, size)."""
        runs, start = [], None
        for i, on in enumerate([*self.flags, False]):
            if on and start is None:
                start = i
            elif not on and start is not None:
                runs.append((start, i - start))
                start = None
        return tuple(runs)


def read(text: str) -> Shown:
    """The tokens of a highlighted text and which are inside ``<< >>``, from the text alone
    (delphi marks whole tokens, and every token here starts with a space; its filler sentence
    splits on spaces)."""
    tokens: list[str] = []
    flags: list[bool] = []
    on = False
    for part in re.split(r"(<<|>>)", text):
        if part in ("<<", ">>"):
            on = part == "<<"
            continue
        found = _TOKEN_RE.findall(part)
        tokens += found
        flags += [on] * len(found)
    return Shown(text, tokens, flags)


Judge = Callable[[list[Shown]], int]
"""The prompt's examples, in order → the index it names as the intruder."""


def _pick(score: Callable[[Shown], float]) -> Judge:
    """The example with the highest ``score`` (the first on ties)."""

    def judge(examples: list[Shown]) -> int:
        scores = [score(example) for example in examples]
        return scores.index(max(scores))

    return judge


def _first_where(test: Callable[[Shown, list[Shown]], bool]) -> Judge:
    """The first example for which ``test(example, examples)`` holds; 0 when none does."""
    return lambda examples: next((i for i, e in enumerate(examples) if test(e, examples)), 0)


def _starts_at_delphis_place(example: Shown) -> bool:
    at = len(example.tokens) - len(example.tokens) // 4
    return True in example.flags and example.flags.index(True) == at


def _latest_start(example: Shown) -> float:
    flags = example.flags
    return flags.index(True) / len(flags) if True in flags else 2.0


BLIND_JUDGES: dict[str, Judge] = {
    # delphi's fixed place for the intruder's highlight
    "starts_at_len-len//4": _first_where(lambda e, _: _starts_at_delphis_place(e)),
    "latest_highlight_start": _pick(_latest_start),
    # how much is highlighted
    "fewest_highlighted": _pick(lambda e: -e.count),
    "most_highlighted": _pick(lambda e: e.count),
    "odd_highlight_count": _first_where(lambda e, all_: sum(o.count == e.count for o in all_) == 1),
    "most_runs": _pick(lambda e: len(e.shape)),
    # a shape no other example in the prompt has, or one that repeats (a copied sibling)
    "unique_shape": _first_where(lambda e, all_: sum(o.shape == e.shape for o in all_) == 1),
    "shared_shape": _first_where(lambda e, all_: sum(o.shape == e.shape for o in all_) > 1),
    # delphi's filler sentence
    "filler_text": _first_where(lambda e, _: FILLER_MARK in e.text),
    # one place, whatever the prompt
    **{f"always_{k}": (lambda examples, k=k: k) for k in range(PER_PROMPT)},
}


def sighted_judge(examples: list[Shown]) -> int:
    """Knows the latent's keyword from the examples' content (the intruder scorer shows no
    explanation): names the first example without it."""
    return next((i for i, e in enumerate(examples) if KEYWORD not in e.tokens), 0)


JUDGES: dict[str, Judge] = {**BLIND_JUDGES, "sighted": sighted_judge}


class PanelClient:
    """A fake LLM client for delphi's intruder prompt: every judge of a panel reads each
    prompt and makes its pick (recorded by the prompt's examples, as the breakdown shows
    them); the ``answering`` judge's pick is the answer the scorer gets."""

    def __init__(self, answering: str) -> None:
        self.answering = answering
        self.picks: dict[str, dict[str, int]] = {name: {} for name in JUDGES}
        self.errors: list[AutoInterpError] = []
        self.logprobs_missing = False

    async def generate(self, prompt: list[dict[str, str]], **_: Any) -> Response:
        texts = _EXAMPLE_RE.findall(prompt[-1]["content"])
        assert texts, "an intruder prompt"
        examples = [read(text) for text in texts]
        key = "\n".join(texts)
        for name, judge in JUDGES.items():
            self.picks[name][key] = judge(examples)
        return Response(text=f"[RESPONSE]: {self.picks[self.answering][key]}")


# --- scoring ---------------------------------------------------------------------------------


def score(split: Split, client: Any, **params: object) -> ScoreResult:
    """The service's intruder scorer on ``split`` (``score_split``, as both doors run it)."""
    params = {"examples_per_prompt": PER_PROMPT, **params}
    method = default_method(SCORER_REGISTRY, "intruder", **params)
    return asyncio.run(score_split(method, "", split, Deps(llm=None), client))


def panel(split: Split, answering: str) -> dict[str, list[float]]:
    """Each judge's 0/1 per prompt. The ``answering`` judge's are the scorer's own verdicts
    (and each other judge's pick is checked against the same prompts' intruder index)."""
    client = PanelClient(answering)
    result = score(split, client)
    assert math.isclose(result.chance, CHANCE)
    items = list(result.breakdown)
    assert len(items) == N_NON
    scored = [float(item.correct) for item in items if item.HasField("predicted_index")]
    assert len(scored) == N_NON, "every prompt is answered"
    verdicts = {
        name: [float(picks[item.text] == item.intruder_index) for item in items]
        for name, picks in client.picks.items()
    }
    assert verdicts[answering] == scored
    assert math.isclose(result.score, sum(scored) / len(scored))
    return verdicts


_RESULTS: dict[str, dict[str, list[list[float]]]] = {}


def results(kind: str) -> dict[str, list[list[float]]]:
    """Per judge, its 0/1 per prompt of each of ``LATENTS`` latents of ``kind`` (each latent
    answered by another judge in turn, so every judge is scored by the scorer itself on
    some)."""
    if kind not in _RESULTS:
        names = list(JUDGES)
        per_judge: dict[str, list[list[float]]] = {name: [] for name in names}
        for i in range(LATENTS):
            verdicts = panel(KINDS[kind](1000 * (i + 1)), names[i % len(names)])
            for name in names:
                per_judge[name].append(verdicts[name])
        _RESULTS[kind] = per_judge
    return _RESULTS[kind]


def mean_and_error(per_latent: list[list[float]]) -> tuple[float, float]:
    """The pooled mean and its standard error, clustered by latent (the prompts of one latent
    share its records)."""
    flat = [x for latent in per_latent for x in latent]
    mean = sum(flat) / len(flat)
    means = [sum(latent) / len(latent) for latent in per_latent]
    spread = sum((m - mean) ** 2 for m in means) / (len(means) - 1)
    return mean, math.sqrt(spread / len(means))


# --- blind judges at chance ------------------------------------------------------------------


@pytest.mark.parametrize("kind", list(KINDS))
@pytest.mark.parametrize("judge", list(BLIND_JUDGES))
def test_blind_judges_score_chance_over_latents(kind: str, judge: str) -> None:
    mean, error = mean_and_error(results(kind)[judge])
    # Sized so that the bound means something and a fair judge meets it reliably: the
    # tolerance is several standard errors (a judge with a fixed answer has none at all
    # across latents when the layout repeats, which the mean then shows).
    assert abs(mean - CHANCE) <= TOLERANCE, f"{judge} on {kind}: {mean:.3f} ± {error:.3f}"
    assert error <= TOLERANCE / 3.5, f"{judge} on {kind}: standard error {error:.4f}"


@pytest.mark.parametrize("kind", list(KINDS))
def test_a_sighted_judge_still_finds_the_intruder(kind: str) -> None:
    mean, _ = mean_and_error(results(kind)["sighted"])
    assert mean == 1.0


# --- how the prompts are built ---------------------------------------------------------------


def _fixed_length_latent(n_act: int, n_non: int = 30, length: int = 16) -> Split:
    """Activating record ``i`` has the keyword at token ``i % length`` alone, so records of
    one latent have distinct highlight shapes (up to ``length`` of them)."""
    rng = random.Random(n_act)
    acts = []
    for i in range(n_act):
        tokens = [rng.choice(WORDS) for _ in range(length)]
        values = [0.0] * length
        tokens[i % length], values[i % length] = KEYWORD, 3.0
        acts.append(activating_example(pb.Activation(tokens=tokens, values=values)))
    nons = [
        non_activating_example(
            pb.Activation(tokens=[rng.choice(WORDS) for _ in range(length)], values=[0.0] * length)
        )
        for _ in range(n_non)
    ]
    return Split(acts, nons, [*acts, *nons])


def _prompts(result: ScoreResult) -> list[tuple[list[Shown], int]]:
    """Each prompt's examples as a judge reads them, and the intruder's index."""
    return [
        ([read(text) for text in item.text.split("\n")], item.intruder_index)
        for item in result.breakdown
    ]


def _masks(split: Split) -> list[list[bool]]:
    """delphi's highlight of each activating record: tokens at 0.3 of its maximum."""
    return [(e.activations >= 0.3 * e.activations.max()).tolist() for e in split.activating]


def test_the_intruder_copies_a_shape_from_outside_its_prompt() -> None:
    """Its highlight is an activating record's shape (one exists at its length), never the
    shape of a real example beside it: a copied sibling would be the one shape that repeats."""
    split = _fixed_length_latent(12)
    shapes = {Shown("", [], correct).shape for correct in _masks(split)}
    result = score(split, PanelClient("always_0"))
    for examples, index in _prompts(result):
        assert len(examples) == PER_PROMPT
        intruder = examples[index].shape
        assert intruder in shapes
        assert all(e.shape != intruder for i, e in enumerate(examples) if i != index)


@pytest.mark.parametrize(("n_act", "shown"), [(1, 2), (2, 2), (3, 3), (4, 4), (5, 5), (9, 5)])
def test_few_activating_records_leave_one_out(n_act: int, shown: int) -> None:
    """With two or more activating records, each prompt leaves one out (the intruder's shape
    comes from outside the prompt); with one, the prompt is that record and the intruder
    shaped like it. Chance is 1/options of the prompts as shown."""
    result = score(_fixed_length_latent(n_act), PanelClient("always_0"))
    prompts = _prompts(result)
    assert {len(examples) for examples, _ in prompts} == {shown}
    assert math.isclose(result.chance, 1 / shown)
    if n_act == 1:
        assert all(len({e.shape for e in examples}) == 1 for examples, _ in prompts)


def test_each_intruder_shows_its_own_tokens() -> None:
    """One prompt per non-activating record, in request order: its own text (delphi turned a
    one-token intruder into a filler sentence), however its highlight was drawn."""
    split = KINDS["varied_lengths"](7)
    assert any(len(e.str_tokens or ()) == 1 for e in split.non_activating)
    result = score(split, PanelClient("always_0"))
    for (examples, index), record in zip(_prompts(result), split.non_activating, strict=True):
        assert examples[index].tokens == record.str_tokens
        assert examples[index].count >= 1


def test_the_layout_follows_the_records_and_the_seed() -> None:
    """The same records and seed give the same prompts; another seed, or another latent of the
    same size, another layout (delphi's constant seed gave every latent of one size the same
    intruder places)."""

    def places(split: Split, seed: int = 42) -> list[int]:
        result = score(split, PanelClient("always_0"), seed=seed)
        return [item.intruder_index for item in result.breakdown]

    first, second = KINDS["sparse"](1), KINDS["sparse"](2)
    assert places(first) == places(first)
    assert places(first) != places(first, seed=43)
    assert places(first) != places(second)


# --- why: stock delphi's tells ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "judge", "at_least"),
    [
        # the intruder's highlight always starts at len - len//4 (all-zero intruders)
        ("sparse", "starts_at_len-len//4", 0.8),
        # an intruder with positive values is highlighted by its own activations: many
        # tokens, against the real examples' one or two keyword tokens
        ("dense", "most_highlighted", 0.5),
        # ... and, when the activating records fire broadly, by its few highlighted tokens
        ("dense_broad", "fewest_highlighted", 0.5),
    ],
)
def test_stock_delphi_gives_blind_judges_a_tell(kind: str, judge: str, at_least: float) -> None:
    correct = []
    for seed in (1, 2):
        split = KINDS[kind](seed)
        record = LatentRecord(Latent("latent", 0))
        record.test, record.not_active = split.activating, split.non_activating
        stock = IntruderScorer(None, n_examples_shown=PER_PROMPT)  # type: ignore[arg-type]
        for sample in stock._prepare_and_batch(record):
            pick = BLIND_JUDGES[judge]([read(text) for text in sample.examples])
            correct.append(pick == sample.intruder_index)
    assert sum(correct) / len(correct) >= at_least
