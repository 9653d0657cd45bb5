"""Position and layout carry no label (DESIGN.md §3a; issue 18 items 1 and 2).

A judge that answers the same pattern to every prompt (``[0, 0, 0, 0, 1]``: "the last example
is the one") never reads the explanation or the examples. With a constant shuffle seed the
activating examples sat on the same prompt positions for every latent of one size, so such a
judge scored the same, far from chance, on every latent (detection 5+20: 0.875). Here every
constant pattern, over many latents of one size, must average balanced accuracy 0.5 ± 0.05:
on detection (5+20 and 10+10), fuzz (20+20) and recall (10+10, with its decoys).

The latents are synthetic: both classes draw their tokens from one vocabulary, so nothing but
the layout could tell a judge which examples are activating. The judges answer through a fake
client's ``generate`` from the prompt text, as an LLM would, and the scores come from the
scorers' own path (``score_split``).

Item 2 (fuzz's wrong highlights) is tested with judges that compare highlight shapes across
examples: a non-activating example's wrong highlight must not repeat the shape of another
example more often than a correct highlight does.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import math
import random
import re
from collections import Counter
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
import torch

from autointerp_grpc.backends.embedding import EmbeddingBackend
from autointerp_grpc.delphi_compat import Response
from autointerp_grpc.errors import AutoInterpError
from autointerp_grpc.gen.autointerp.v1 import autointerp_pb2 as pb
from autointerp_grpc.handlers import Deps
from autointerp_grpc.handlers.lookup import default_method
from autointerp_grpc.handlers.score import score_split
from autointerp_grpc.methods.classifiers import balanced_layout, prompt_sizes, proportional_counts
from autointerp_grpc.methods.registry import SCORER_REGISTRY
from autointerp_grpc.methods.spec import ScoreResult
from autointerp_grpc.records import Split, split_records

TOLERANCE = 0.05
WORDS = [" the", " a", " of", " dog", " sat", " on", " mat", " and", " then", " ran", " to", " by"]
EXPLANATION = "the word dog"

_EXAMPLE_RE = re.compile(r"^Example \d+: (.*)$", re.MULTILINE)
_TEXT_RE = re.compile(r"^Text \d+: (.*)$", re.MULTILINE)


def latent(
    seed: int, n_act: int, n_non: int, length: int = 12, longest_run: int = 1
) -> list[pb.Activation]:
    """``n_act`` activating records (one run of 1 to ``longest_run`` tokens at values 1-5,
    anywhere) and ``n_non`` all-zero ones, every token drawn from one vocabulary: the classes
    differ only in their values, which no prompt shows (detection, recall) or only as
    highlights (fuzz)."""
    rng = random.Random(seed)
    records = []
    for i in range(n_act + n_non):
        tokens = [rng.choice(WORDS) for _ in range(length)]
        values = [0.0] * length
        if i < n_act:
            start = rng.randrange(length)
            for at in range(start, min(length, start + rng.randint(1, longest_run))):
                values[at] = rng.uniform(1.0, 5.0)
        records.append(pb.Activation(tokens=tokens, values=values))
    return records


class PromptJudge:
    """A fake LLM client that answers each prompt with ``answer(texts)``: one 0/1 per example
    of a detection or fuzz prompt (``Example i: ...``), or per text of a recall prompt
    (``Text n: ...``), recording every prompt's texts in order."""

    def __init__(self, answer: Callable[[list[str]], list[int]]) -> None:
        self.answer = answer
        self.prompts: list[list[str]] = []
        self.errors: list[AutoInterpError] = []
        self.logprobs_missing = False

    async def generate(self, prompt: list[dict[str, str]], **_: Any) -> Response:
        content = prompt[-1]["content"]
        examples = _EXAMPLE_RE.findall(content)
        if examples:
            self.prompts.append(examples)
            return Response(text=json.dumps(self.answer(examples)))
        texts = _TEXT_RE.findall(content)
        assert texts, "a detection, fuzz or recall prompt"
        self.prompts.append(texts)
        return Response(text=json.dumps({"answers": [bool(a) for a in self.answer(texts)]}))


def constant(pattern: tuple[int, ...]) -> Callable[[list[str]], list[int]]:
    """The same answer to every prompt (cut to the prompt's size: the last one is shorter)."""
    return lambda texts: list(pattern[: len(texts)])


async def score(method: str, split: Split, judge: PromptJudge, **params: object) -> ScoreResult:
    resolved = default_method(SCORER_REGISTRY, method, **params)
    return await score_split(resolved, EXPLANATION, split, Deps(llm=None), judge)  # type: ignore[arg-type]


def patterns(k: int) -> list[tuple[int, ...]]:
    """Every 0/1 pattern of length ``k`` but all-0 and all-1 (those score 0.5 whatever the
    layout)."""
    return [p for p in itertools.product((0, 1), repeat=k) if 0 < sum(p) < k]


# --- item 1: a constant answer pattern scores chance over latents ----------------------------

CONFIGS = {
    "detection 5+20": ("detection", 5, 20),
    "detection 10+10": ("detection", 10, 10),
    "fuzz 20+20": ("fuzz", 20, 20),
    "recall 10+10": ("recall", 10, 10),
}
LATENTS = {
    # Enough latents that each mean's standard error is at most ~0.0125 (a pattern's score
    # varies by up to 0.15 from latent to latent on detection 5+20, 0.09 on fuzz 20+20), so
    # the tolerance is four standard errors for the worst of the 30 patterns.
    "detection 5+20": 160,
    "detection 10+10": 120,
    "fuzz 20+20": 60,
    "recall 10+10": 100,
}

Layout = list[list[bool | None]]
"""Each prompt's examples, in the order shown: activating, non-activating, or None for a
recall decoy (not part of the headline)."""


def _plain(text: str) -> str:
    return " ".join(text.replace("<<", "").replace(">>", "").split())


async def recorded(method: str, split: Split, **params: object) -> tuple[Layout, list[list[str]]]:
    """The classes a judge's answers land on, position by position, read off the prompts it
    was sent (texts matched to the records; fuzz's ``<< >>`` marks and recall's whitespace
    rules aside), and the prompts' texts."""
    judge = PromptJudge(lambda texts: [0] * len(texts))
    await score(method, split, judge, **params)
    act = split.activating_indices
    classes = {_plain("".join(e.str_tokens)): i in act for i, e in enumerate(split.in_order)}
    assert len(classes) == len(split.in_order), "every record's text is its own"
    layout = [[classes.get(_plain(text)) for text in prompt] for prompt in judge.prompts]
    return layout, judge.prompts


async def layout_of(method: str, split: Split, **params: object) -> Layout:
    return (await recorded(method, split, **params))[0]


def pattern_score(layout: Layout, pattern: tuple[int, ...]) -> float:
    """The balanced accuracy of answering ``pattern`` to every prompt of ``layout``."""
    hits: Counter[bool] = Counter()
    totals: Counter[bool] = Counter()
    for prompt in layout:
        for activating, answer in zip(prompt, pattern):
            if activating is not None:
                totals[activating] += 1
                hits[activating] += bool(answer) == activating
    return (hits[True] / totals[True] + hits[False] / totals[False]) / 2


def _layouts(method: str, n_act: int, n_non: int, latents: int) -> list[Layout]:
    async def run() -> list[Layout]:
        return [
            await layout_of(method, split_records(latent(1000 + seed, n_act, n_non)))
            for seed in range(latents)
        ]

    return asyncio.run(run())


@pytest.mark.parametrize("config", list(CONFIGS))
def test_every_constant_pattern_averages_chance_over_latents(config: str) -> None:
    """Every pattern but all-0 and all-1, each averaged over the same latents of one size
    (their records sent activating first). A request's layout does not depend on the
    answers (the next test checks that a pattern's score read off the layout is the score
    the scorer reports), so each latent is laid out once and every pattern answered to it."""
    layouts = _layouts(*CONFIGS[config], LATENTS[config])
    means = {p: sum(pattern_score(lay, p) for lay in layouts) / len(layouts) for p in patterns(5)}
    far = {p: round(m, 3) for p, m in means.items() if abs(m - 0.5) > TOLERANCE}
    assert not far, f"{config}: {len(far)} of {len(means)} patterns off chance: {far}"


@pytest.mark.parametrize("config", list(CONFIGS))
def test_a_patterns_score_read_off_the_layout_is_the_scorers_own(config: str) -> None:
    method, n_act, n_non = CONFIGS[config]

    async def run() -> None:
        for seed in range(3):
            split = split_records(latent(2000 + seed, n_act, n_non))
            layout = await layout_of(method, split)
            for pattern in [(0, 0, 0, 0, 1), (1, 1, 0, 1, 0), (0, 1, 1, 0, 0)]:
                result = await score(method, split, PromptJudge(constant(pattern)))
                assert result.score == pytest.approx(pattern_score(layout, pattern))

    asyncio.run(run())


# --- item 1: reproducible, yet every latent its own layout -----------------------------------


@pytest.mark.parametrize("method", ["detection", "fuzz", "recall"])
def test_the_layout_is_reproducible_and_follows_the_seed_and_the_records(method: str) -> None:
    """The same request twice: the same prompts (texts and highlights). Another seed, or
    another latent of the same size: other positions for the activating examples."""

    async def prompts(records: list[pb.Activation], seed: int) -> list[list[str]]:
        judge = PromptJudge(lambda texts: [0] * len(texts))
        await score(method, split_records(records), judge, seed=seed)
        return judge.prompts

    async def run() -> None:
        records = latent(7, 10, 10)
        first = await prompts(records, 42)
        assert await prompts(records, 42) == first
        assert await prompts(records, 43) != first
        layouts = [await layout_of(method, split_records(latent(s, 10, 10))) for s in range(6)]
        assert len({str(layout) for layout in layouts}) == len(layouts)

    asyncio.run(run())


def test_a_constant_judge_gives_a_bulk_run_of_features_different_scores() -> None:
    """12 features of one size (issue 18: every one scored exactly 0.575 with ``[0, 0, 0, 1,
    0]``): their scores now vary from feature to feature, around chance."""

    async def run() -> list[float]:
        judge = constant((0, 0, 0, 1, 0))
        return [
            (
                await score("detection", split_records(latent(300 + f, 20, 20)), PromptJudge(judge))
            ).score
            for f in range(12)
        ]

    scores = asyncio.run(run())
    assert len(set(scores)) > 3, scores
    assert abs(sum(scores) / len(scores) - 0.5) <= 0.1, scores


def test_recall_does_not_keep_the_callers_order() -> None:
    """The caller sends activating records first. A judge that knows the old constant
    layout (``Random(42)`` over request order, decoys after the records) answered 1 exactly
    where it put the activating records, and scored 1.0 on every latent; it now scores
    chance on average."""
    n_act, n_non = 10, 10
    decoys = 8
    order = list(range(n_act + n_non + decoys))
    random.Random(42).shuffle(order)
    old_prompts = [order[i : i + 5] for i in range(0, len(order), 5)]

    async def run() -> list[float]:
        scores = []
        for seed in range(40):
            calls = iter(old_prompts)

            def oracle(texts: list[str]) -> list[int]:
                return [int(i < n_act) for i in next(calls)][: len(texts)]

            split = split_records(latent(500 + seed, n_act, n_non))
            scores.append((await score("recall", split, PromptJudge(oracle))).score)
        return scores

    scores = asyncio.run(run())
    assert abs(sum(scores) / len(scores) - 0.5) <= 0.05, scores


class _LengthModel:
    """A stand-in embedding model: a text's embedding is its length on a unit circle (any
    model does here; the test reads which queries were drawn, not the deltas)."""

    def encode(self, sentences: str | list[str], **_: Any) -> np.ndarray:
        texts = [sentences] if isinstance(sentences, str) else list(sentences)
        angles = np.array([len(t) for t in texts], dtype=np.float32) / 7.0
        rows = np.stack([np.cos(angles), np.sin(angles)], axis=1)
        return rows[0] if isinstance(sentences, str) else rows

    def similarity(self, a: Any, b: Any) -> torch.Tensor:
        left = torch.as_tensor(np.atleast_2d(np.asarray(a)), dtype=torch.float32)
        right = torch.as_tensor(np.atleast_2d(np.asarray(b)), dtype=torch.float32)
        return left @ right.T


def test_example_embedding_draws_its_queries_by_the_records_and_the_seed() -> None:
    """Which activating records are drawn as queries, by their place in the request: the
    same for the same request, another for another seed or another latent of one size (a
    constant seed drew the same places for every latent)."""
    backend = EmbeddingBackend(_LengthModel(), "test", coalesce=False)
    deps = Deps(llm=None, embedding=backend)  # type: ignore[arg-type]

    async def queries(records: list[pb.Activation], seed: int) -> list[int]:
        split = split_records(records)
        method = default_method(SCORER_REGISTRY, "example_embedding", seed=seed)
        result = await score_split(method, "", split, deps)
        place = {"".join(e.str_tokens): i for i, e in enumerate(split.activating)}
        return [place[item.text] for item in result.breakdown]

    async def run() -> None:
        try:
            first = await queries(latent(7, 12, 12), 42)
            assert await queries(latent(7, 12, 12), 42) == first
            assert await queries(latent(7, 12, 12), 43) != first
            assert await queries(latent(8, 12, 12), 42) != first
        finally:
            await backend.close()

    asyncio.run(run())


# --- item 2: fuzz's wrong highlights repeat no shape more for one class ----------------------


def _shape(text: str) -> tuple[tuple[int, int], ...]:
    """A fuzz example's highlight shape: its runs of ``<< >>``-marked tokens, (start, size)."""
    runs, start, at = [], None, 0
    for part in re.split(r"(<<|>>)", text):
        if part == "<<":
            start = at
        elif part == ">>":
            assert start is not None
            runs.append((start, at - start))
        else:
            at += len(part.split())
    return tuple(runs)


def _shared_in_prompt(layout_texts: list[list[str]]) -> list[list[int]]:
    """0 where the example's shape also occurs elsewhere in its prompt, else 1."""
    answers = []
    for prompt in layout_texts:
        counts = Counter(_shape(text) for text in prompt)
        answers.append([int(counts[_shape(text)] == 1) for text in prompt])
    return answers


def _shared_in_request(layout_texts: list[list[str]], at_least: int = 2) -> list[list[int]]:
    """0 where the example's shape occurs ``at_least`` times in the whole request, else 1 (a
    judge that sees every prompt of the request)."""
    counts = Counter(_shape(text) for prompt in layout_texts for text in prompt)
    return [[int(counts[_shape(text)] < at_least) for text in prompt] for prompt in layout_texts]


SHAPE_JUDGES: dict[str, Callable[[list[list[str]]], list[list[int]]]] = {
    "shape repeated elsewhere in the prompt": _shared_in_prompt,
    "shape repeated elsewhere in the request": _shared_in_request,
    "shape occurs 3+ times in the request": lambda texts: _shared_in_request(texts, 3),
}

SHAPE_LATENTS = {
    # (activating, non-activating, longest run, latents): the content-free sparse
    # latent at 10+10 and 24 tokens, with runs of 1-2 tokens, and at 5+20.
    "sparse 10+10": (10, 10, 1, 100),
    "sparse 10+10, runs of 1-2": (10, 10, 2, 60),
    "sparse 5+20": (5, 20, 1, 60),
}


def _shape_scores(n_act: int, n_non: int, longest_run: int, latents: int) -> dict[str, float]:
    """Each shape judge's mean balanced accuracy over the latents. The judges that compare
    prompts need the whole request at once: each latent's fuzz prompts are recorded (the
    layout and highlights do not depend on the answers) and every judge answers them."""

    async def run() -> dict[str, float]:
        totals: Counter[str] = Counter()
        for seed in range(latents):
            split = split_records(latent(3000 + seed, n_act, n_non, 24, longest_run))
            layout, prompts = await recorded("fuzz", split)
            for name, judge in SHAPE_JUDGES.items():
                answers = judge(prompts)
                hits: Counter[bool] = Counter()
                for classes, prompt_answers in zip(layout, answers, strict=True):
                    for activating, answer in zip(classes, prompt_answers, strict=True):
                        hits[bool(activating)] += bool(answer) == activating
                totals[name] += (hits[True] / n_act + hits[False] / n_non) / 2
        return {name: total / latents for name, total in totals.items()}

    return asyncio.run(run())


@pytest.mark.parametrize("config", list(SHAPE_LATENTS))
def test_wrong_highlights_repeat_no_shape_more_for_one_class(config: str) -> None:
    scores = _shape_scores(*SHAPE_LATENTS[config])
    far = {name: round(s, 3) for name, s in scores.items() if abs(s - 0.5) > TOLERANCE}
    assert not far, f"{config}: {far}"


# --- the layout's parts ----------------------------------------------------------------------


def test_proportional_counts_give_each_prompt_its_exact_share_in_expectation() -> None:
    """10 activating of 28 items in prompts of 5, 5, 5, 5, 5 and 3 (recall 10+10 with its 8
    decoys): each prompt gets its share rounded down or up, 10 in all, and on average
    exactly its share (largest-remainder rounding would give the short prompt 1 every time,
    against a share of 1.07)."""
    sizes = [5, 5, 5, 5, 5, 3]
    rng = random.Random(0)
    draws = 20000
    totals = [0] * len(sizes)
    for _ in range(draws):
        counts = proportional_counts(10, sizes, rng)
        assert sum(counts) == 10
        for b, (size, count) in enumerate(zip(sizes, counts, strict=True)):
            assert math.floor(10 * size / 28) <= count <= math.ceil(10 * size / 28)
            totals[b] += count
    for size, total in zip(sizes, totals, strict=True):
        assert abs(total / draws - 10 * size / 28) < 0.01


def test_balanced_layout_puts_every_item_anywhere_alike() -> None:
    """Every item is shown once, in delphi's prompt sizes; over many draws each class is on
    each position of the request as often as its share."""
    labels = [True] * 5 + [False] * 20 + [True, False]
    rng = random.Random(1)
    draws = 4000
    on_position: Counter[int] = Counter()
    for _ in range(draws):
        layout = balanced_layout(labels, 5, rng)
        assert [len(batch) for batch in layout] == prompt_sizes(len(labels), 5) == [5] * 5 + [2]
        assert sorted(i for batch in layout for i in batch) == list(range(len(labels)))
        flat = [i for batch in layout for i in batch]
        on_position.update(at for at, i in enumerate(flat) if labels[i])
    share = draws * sum(labels) / len(labels)
    assert all(abs(on_position[at] / share - 1) < 0.12 for at in range(len(labels)))
