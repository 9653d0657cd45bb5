"""Blind judges stay at chance on fuzz (DESIGN.md §3a "Blind judges stay at chance").

A blind judge answers from the highlighted text alone, never reading the explanation: where
the highlight sits, how many tokens or runs it covers, whether it covers the whole record,
whether the text is delphi's filler sentence, how long the record is. Against our ``Fuzzing``
scorer each must score balanced accuracy 0.5 ± 0.15 on sparse, dense (GELU-like) and one-token
features of 40 activating + 40 non-activating records. The same judges against delphi's stock
``FuzzingScorer`` preparation score ~1.0: those tests document why ``Fuzzing._prepare`` exists.
A sighted judge, which reads the explanation's keyword against the highlighted tokens, must
still score well: the fix must not destroy the signal.

The judges answer through a fake client's ``generate``, from the prompt delphi builds, so they
see exactly what an LLM would see.
"""

from __future__ import annotations

import asyncio
import itertools
import math
import random
import re
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest

from autointerp_grpc.delphi_compat import (
    ClassifierOutput,
    FuzzingScorer,
    Latent,
    LatentRecord,
    Response,
)
from autointerp_grpc.gen.autointerp.v1 import autointerp_pb2 as pb
from autointerp_grpc.methods.classifiers import (
    Fuzzing,
    Span,
    _BatchSizedAnswers,
    correct_highlight,
    highlight_spans,
    lend_templates,
    place_spans,
    run_classifier,
)
from autointerp_grpc.records import Split, activating_example, non_activating_example

N_PER_CLASS = 40
CHANCE, TOLERANCE = 0.5, 0.15
KEYWORD = "cat"
EXPLANATION = f"the word {KEYWORD}"
WORDS = [" the", " a", " of", " dog", " sat", " on", " mat", " and", " then", " ran", " to", " by"]
FILLER_MARK = "NNsight"  # in delphi's filler sentence for records it cannot highlight

# --- features --------------------------------------------------------------------------------


def _gelu(x: float) -> float:
    return 0.5 * x * (1 + math.erf(x / math.sqrt(2)))


def _feature(
    seed: int,
    lengths: Callable[[random.Random], int],
    noise: Callable[[random.Random], float],
    same_lengths: bool = True,
) -> Split:
    """40 activating records (one or two " cat" tokens, value 2-6, single or a run of two)
    and 40 non-activating ones, with ``noise`` on every other token. Both classes have the
    same multiset of record lengths, or (``same_lengths=False``) lengths drawn independently
    from the same distribution."""
    rng = random.Random(seed)
    sizes = [lengths(rng) for _ in range(N_PER_CLASS)]
    other_sizes = sizes if same_lengths else [lengths(rng) for _ in range(N_PER_CLASS)]
    activating: list[pb.Activation] = []
    for n in rng.sample(sizes, len(sizes)):
        tokens = [rng.choice(WORDS) for _ in range(n)]
        values = [noise(rng) for _ in range(n)]
        first = rng.randrange(n)
        active = {first}
        if n > 2 and rng.random() < 0.5:  # a second active token: next to it or elsewhere
            active.add(first + 1 if first + 1 < n and rng.random() < 0.5 else rng.randrange(n))
        for i in active:
            tokens[i], values[i] = f" {KEYWORD}", rng.uniform(2.0, 6.0)
        activating.append(pb.Activation(tokens=tokens, values=values))
    non_activating = [
        pb.Activation(
            tokens=[rng.choice(WORDS) for _ in range(n)], values=[noise(rng) for _ in range(n)]
        )
        for n in rng.sample(other_sizes, len(other_sizes))
    ]
    acts = [activating_example(r) for r in activating]
    nons = [non_activating_example(r) for r in non_activating]
    return Split(acts, nons, [*acts, *nons])


def _zero(rng: random.Random) -> float:
    return 0.0


FEATURES: dict[str, Callable[[], Split]] = {
    # One or two active tokens per activating record; all-zero negatives.
    "sparse": lambda: _feature(1, lambda r: r.randint(8, 32), _zero),
    # Negatives' lengths drawn on their own: wrong highlights often copy a correct one from a
    # record of another length (``place_spans`` rescales it).
    "sparse_mixed_lengths": lambda: _feature(6, lambda r: r.randint(4, 40), _zero, False),
    # GELU-like: every token a small non-zero (negative) value, a few large.
    "dense": lambda: _feature(2, lambda r: r.randint(8, 32), lambda r: _gelu(r.uniform(-3, -0.1))),
    # The same at a fixed context of 16 tokens, as in delphi's own caches.
    "dense_ctx16": lambda: _feature(5, lambda r: 16, lambda r: _gelu(r.uniform(-3, -0.1))),
    # GELU-like with small positive values too: the first negative has some, so delphi takes
    # its "contrastive" branch for every negative.
    "dense_mixed": lambda: _feature(
        3, lambda r: r.randint(8, 32), lambda r: _gelu(r.gauss(-0.3, 0.8))
    ),
    # One-token records (delphi replaces such negatives with its filler sentence).
    "one_token": lambda: _feature(4, lambda r: 1, _zero),
}

# --- reading the prompt as a judge does ------------------------------------------------------

_EXAMPLE_RE = re.compile(r"^Example (\d+): (.*)$", re.MULTILINE)
_TOKEN_RE = re.compile(r"\s*\S+")


def highlighted_tokens(text: str) -> tuple[list[str], list[bool]]:
    """The tokens of a highlighted text and which of them are inside ``<< >>``, recovered from
    the text alone (our tokens each start with a space; delphi's filler splits on spaces)."""
    chars: list[str] = []
    flags: list[bool] = []
    on = False
    for part in re.split(r"(<<|>>)", text):
        if part in ("<<", ">>"):
            on = part == "<<"
            continue
        chars.extend(part)
        flags.extend([on] * len(part))
    clean = "".join(chars)
    tokens, marks = [], []
    for match in _TOKEN_RE.finditer(clean):
        tokens.append(match.group())
        marks.append(any(flags[match.start() : match.end()]))
    return tokens, marks


Judge = Callable[[str, str], bool]
"""(explanation, highlighted text) → predicts activating."""


def _shape_judge(rule: Callable[[list[str], list[bool]], bool]) -> Judge:
    """A blind judge: answers 0 when ``rule`` holds for the highlighted tokens."""

    def judge(explanation: str, text: str) -> bool:
        return not rule(*highlighted_tokens(text))

    return judge


def _runs(flags: list[bool]) -> list[int]:
    return [size for _, size in highlight_spans(flags)]


BLIND_JUDGES: dict[str, Judge] = {
    # (a) delphi's fixed wrong position.
    "highlight_at_len-len//4": _shape_judge(
        lambda t, f: len(t) - len(t) // 4 < len(t) and f[len(t) - len(t) // 4]
    ),
    "first_highlight_in_second_half": _shape_judge(
        lambda t, f: any(f) and f.index(True) >= len(t) / 2
    ),
    # (b) highlight count and length.
    **{f"more_than_{k}_highlighted": _shape_judge(lambda t, f, k=k: sum(f) > k) for k in (1, 2, 3)},
    "more_than_one_run": _shape_judge(lambda t, f: len(_runs(f)) > 1),
    "a_run_longer_than_1": _shape_judge(lambda t, f: max(_runs(f), default=0) > 1),
    # (c) whole record highlighted, or nothing highlighted.
    "whole_record_highlighted": _shape_judge(lambda t, f: all(f)),
    "nothing_highlighted": _shape_judge(lambda t, f: not any(f)),
    # (d) delphi's filler sentence.
    "filler_text": lambda explanation, text: FILLER_MARK not in text,
    # (e) record length.
    **{f"more_than_{n}_tokens": _shape_judge(lambda t, f, n=n: len(t) > n) for n in (1, 12, 20)},
}


def sighted_judge(explanation: str, text: str) -> bool:
    """Reads the explanation: activating when a highlighted token is its keyword."""
    keyword = explanation.rsplit(maxsplit=1)[-1]
    tokens, flags = highlighted_tokens(text)
    return any(flag and token.strip() == keyword for token, flag in zip(tokens, flags))


class JudgeClient:
    """A fake LLM client whose ``generate`` answers each example of delphi's fuzz prompt with
    ``judge`` (the prompt's last message holds the explanation and the examples)."""

    def __init__(self, judge: Judge) -> None:
        self.judge = judge
        self.texts: list[str] = []

    async def generate(self, prompt: list[dict[str, str]], **kwargs: Any) -> Response:
        content = prompt[-1]["content"]
        explanation = re.search(r"^Latent explanation: (.*)$", content, re.MULTILINE)
        assert explanation is not None
        texts = [m.group(2) for m in _EXAMPLE_RE.finditer(content)]
        self.texts += texts
        answers = [int(self.judge(explanation.group(1), text)) for text in texts]
        return Response(text=str(answers))


def balanced_accuracy(outputs: list[ClassifierOutput]) -> float:
    assert all(o.prediction is not None for o in outputs), "every example is answered"
    pos = [o for o in outputs if o.activating]
    neg = [o for o in outputs if not o.activating]
    assert len(pos) == len(neg) == N_PER_CLASS
    tpr = sum(bool(o.prediction) for o in pos) / len(pos)
    tnr = sum(not o.prediction for o in neg) / len(neg)
    return (tpr + tnr) / 2


def ours(split: Split, judge: Judge, seed: int = 42) -> float:
    """The service's fuzz path (``run_classifier`` with our ``Fuzzing``) against ``judge``."""
    client = JudgeClient(judge)
    outputs = asyncio.run(run_classifier(split, EXPLANATION, client, fuzz=True, seed=seed))  # type: ignore[arg-type]
    return balanced_accuracy(outputs)


class _StockFuzzing(_BatchSizedAnswers, FuzzingScorer):
    """delphi's FuzzingScorer with its own ``_prepare`` (only answer parsing is ours)."""


def stock(split: Split, judge: Judge, seed: int = 42) -> float:
    """The same run with delphi's unmodified fuzz preparation."""
    record = _record(split)
    scorer = _StockFuzzing(JudgeClient(judge), n_examples_shown=5, temperature=0.0)
    scorer.rng = random.Random(seed)
    return balanced_accuracy(asyncio.run(scorer(record)).score)


def _record(split: Split) -> LatentRecord:
    record = LatentRecord(Latent("latent", 0))
    record.test = split.activating
    record.not_active = split.non_activating
    record.explanation = EXPLANATION
    return record


def _prepared(split: Split, seed: int = 42) -> list[Any]:
    scorer = Fuzzing(None, n_examples_shown=5)  # type: ignore[arg-type]
    scorer.rng = random.Random(seed)
    return scorer._prepare(_record(split))


# --- blind judges at chance ------------------------------------------------------------------


@pytest.mark.parametrize("feature", list(FEATURES))
@pytest.mark.parametrize("judge", list(BLIND_JUDGES))
def test_blind_judges_score_at_chance(feature: str, judge: str) -> None:
    score = ours(FEATURES[feature](), BLIND_JUDGES[judge])
    assert abs(score - CHANCE) <= TOLERANCE, f"{judge} on {feature}: {score:.3f}"


@pytest.mark.parametrize("seed", [0, 1, 7])
def test_blind_judges_stay_at_chance_across_seeds(seed: int) -> None:
    for feature, make in FEATURES.items():
        split = make()
        for name, judge in BLIND_JUDGES.items():
            score = ours(split, judge, seed=seed)
            assert abs(score - CHANCE) <= TOLERANCE, f"{name} on {feature}, seed {seed}"


@pytest.mark.parametrize("feature", list(FEATURES))
def test_a_sighted_judge_still_scores_well(feature: str) -> None:
    assert ours(FEATURES[feature](), sighted_judge) >= 0.9


# --- why the override exists: stock delphi's tells -------------------------------------------


@pytest.mark.parametrize(
    ("feature", "judge", "at_least"),
    [
        # all-zero negatives: the wrong highlight always sits at len - len//4
        ("sparse", "highlight_at_len-len//4", 0.9),
        # dense negatives: n_incorrect counts non-zero values, so (at a fixed context) every
        # token of a negative is highlighted, against one or two on an activating record
        ("dense_ctx16", "whole_record_highlighted", 0.9),
        ("dense", "more_than_3_highlighted", 0.9),
        # "contrastive", decided from the first negative: each negative's own small values
        # are highlighted, in counts unlike the correct ones
        ("dense_mixed", "more_than_2_highlighted", 0.65),
        # a one-token negative becomes the filler sentence
        ("one_token", "filler_text", 0.9),
        ("one_token", "more_than_1_tokens", 0.9),
    ],
)
def test_stock_delphi_fuzz_gives_blind_judges_a_tell(
    feature: str, judge: str, at_least: float
) -> None:
    split = FEATURES[feature]()
    assert stock(split, BLIND_JUDGES[judge]) >= at_least
    assert abs(ours(split, BLIND_JUDGES[judge]) - CHANCE) <= TOLERANCE


# --- how the samples are built ---------------------------------------------------------------


@pytest.mark.parametrize("feature", list(FEATURES))
def test_activating_records_keep_delphis_highlights(feature: str) -> None:
    split = FEATURES[feature]()
    ours_texts = [s.text for s in _prepared(split) if s.data.activating]
    stock_texts = [
        s.text for s in FuzzingScorer(None)._prepare(_record(split)) if s.data.activating
    ]
    assert ours_texts == stock_texts
    for sample, example in zip(_prepared(split)[N_PER_CLASS:], split.activating, strict=True):
        flags = highlighted_tokens(sample.text)[1]
        assert flags == correct_highlight(example, 0.3)


@pytest.mark.parametrize("feature", list(FEATURES))
def test_each_wrong_highlight_has_the_shape_of_a_correct_one(feature: str) -> None:
    """Its runs are an activating record's laid on its own length (``place_spans``): the same
    runs where that record has its length, the same sizes at rescaled positions otherwise."""
    split = FEATURES[feature]()
    samples = _prepared(split)
    templates = [
        (len(e.str_tokens), highlight_spans(correct_highlight(e, 0.3))) for e in split.activating
    ]
    negatives = [s for s in samples if not s.data.activating]
    assert len(negatives) == N_PER_CLASS
    for sample, example in zip(negatives, split.non_activating, strict=True):
        tokens, flags = highlighted_tokens(sample.text)
        assert tokens == example.str_tokens  # its own text, never a filler
        assert sample.data.str_tokens == example.str_tokens
        assert sample.data.activations == example.activations.tolist()
        placed = {tuple(place_spans(spans, size, len(tokens))) for size, spans in templates}
        assert tuple(highlight_spans(flags)) in placed


SAME_LENGTHS = ["sparse", "dense", "dense_ctx16", "dense_mixed", "one_token"]


@pytest.mark.parametrize("feature", SAME_LENGTHS)
def test_each_correct_highlight_is_lent_to_exactly_one_wrong_one(feature: str) -> None:
    """As many non-activating records as activating ones, with the same lengths: the wrong
    highlights are the correct ones, each exactly once (issue 18 item 2: drawn with
    replacement, some correct shapes had three copies and others none, so a shape with no
    copy was an activating example's)."""
    split = FEATURES[feature]()
    samples = _prepared(split)
    shapes: dict[bool, Counter[tuple[int, tuple[Span, ...]]]] = {True: Counter(), False: Counter()}
    for sample in samples:
        tokens, flags = highlighted_tokens(sample.text)
        shapes[bool(sample.data.activating)][(len(tokens), tuple(highlight_spans(flags)))] += 1
    assert shapes[False] == shapes[True]


def test_negatives_are_highlighted_per_record_not_from_the_first() -> None:
    # The first negative has positive values (delphi would then treat them all as
    # "contrastive"); the rest are all zero. Each still gets a one-token highlight here.
    split = FEATURES["sparse"]()
    first = split.non_activating[0]
    first.activations = first.activations.clone()
    first.activations[:] = 0.01
    for sample in _prepared(split)[:N_PER_CLASS]:
        assert 1 <= sum(highlighted_tokens(sample.text)[1]) <= 2


def test_the_preparation_is_seeded_by_the_scorers_rng() -> None:
    split = FEATURES["sparse"]()
    texts = [[s.text for s in _prepared(split, seed)] for seed in (5, 5, 6)]
    assert texts[0] == texts[1]
    assert texts[0] != texts[2]


def test_place_spans() -> None:
    assert place_spans([(3, 1), (6, 2)], 10, 10) == [(3, 1), (6, 2)]
    assert place_spans([], 10, 12) == []
    assert place_spans([(0, 1)], 10, 0) == []
    # the ends stay at the ends; relative positions scale
    assert place_spans([(9, 1)], 10, 20) == [(19, 1)]
    assert place_spans([(0, 2)], 10, 20) == [(0, 2)]
    assert place_spans([(5, 1)], 11, 21) == [(10, 1)]
    # a run longer than the record is clipped; a one-token record gets its one token
    assert place_spans([(2, 4)], 8, 1) == [(0, 1)]
    # runs stay apart; a run with no room left is dropped
    assert place_spans([(0, 1), (2, 1), (4, 1)], 5, 2) == [(0, 1)]
    assert place_spans([(0, 1), (8, 2)], 10, 5) == [(0, 1), (3, 2)]


def test_highlight_spans() -> None:
    assert highlight_spans([]) == []
    assert highlight_spans([True, True, False, True]) == [(0, 2), (3, 1)]
    assert highlight_spans([False, False]) == []


def test_place_spans_stays_in_bounds_and_apart() -> None:
    rng = random.Random(0)
    for _ in range(2000):
        template_len, length = rng.randint(1, 40), rng.randint(0, 40)
        mask = [rng.random() < 0.2 for _ in range(template_len)]
        template = highlight_spans(mask)
        placed = place_spans(template, template_len, length)
        assert len(placed) <= len(template)
        assert bool(placed) == bool(template and length)
        for (start, size), (_, run) in zip(placed, template):
            assert start >= 0 and 1 <= size <= run and start + size <= length
        for (a, s), (b, _) in itertools.pairwise(placed):
            assert b > a + s  # a gap of at least one token: the runs stay separate
        if template_len == length:
            assert placed == template


def test_lend_templates_lends_every_correct_shape_equally_often() -> None:
    """Each activating record lends its shape ``m // n`` or ``m // n + 1`` times, to records of
    its own length as long as that length has records left to take it."""
    rng = random.Random(0)
    for _ in range(500):
        n, m = rng.randint(1, 12), rng.randint(1, 30)
        template_lengths = [rng.choice([3, 5, 8]) for _ in range(n)]
        lengths = [rng.choice([3, 5, 8, 13]) for _ in range(m)]
        lent = lend_templates(template_lengths, lengths, rng)
        assert len(lent) == m
        uses = Counter(lent)
        assert all(m // n <= uses[i] <= m // n + 1 for i in range(n))
        assert sum(uses.values()) == m
        for length in set(lengths):
            takers = [j for j in range(m) if lengths[j] == length]
            slots = sum(uses[i] for i in range(n) if template_lengths[i] == length)
            same = sum(template_lengths[lent[j]] == length for j in takers)
            assert same == min(len(takers), slots)
    with pytest.raises(ValueError, match="no activating record"):
        lend_templates([], [4, 4], rng)
