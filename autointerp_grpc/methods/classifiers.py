"""delphi's fuzzing and detection scorers, with one fix to how they read answers.

delphi 0.1.3's ``Classifier._parse`` insists that every answer lists exactly
``n_examples_shown`` predictions. The last batch of a request is usually shorter (12 examples at
5 per prompt are batches of 5, 5 and 2), so a correct answer to it (``[1, 0]``) fails that check
and the whole batch silently comes back unanswered. Here ``_parse`` checks the answer against
the size of the batch it answers instead, which ``_generate`` records in a context variable
(each batch runs in its own task, so concurrent batches never see each other's size).

An answer that is not a list of 0/1 (or true/false) of the right length leaves its batch
unanswered (prediction None), as delphi does for any unparsable answer. Log probabilities, when
asked for and sent, become per-example probabilities the same batch-sized way.

Two more changes keep a judge that never reads the explanation at chance (DESIGN.md §3a):
the examples are laid out in prompts by :func:`balanced_layout` with an RNG seeded from the
records' content (delphi shuffles with one seed, so a constant seed put the activating examples
on the same positions for every latent of one size), and the outputs are reported in request
order, never in the order shown; and Fuzzing replaces how delphi highlights the non-activating
records (``Fuzzing._prepare``; see its docstring): delphi's wrong highlights differ in shape
from the correct ones.
"""

from __future__ import annotations

import asyncio
import math
import random
from collections.abc import Awaitable, Callable, Sequence
from contextvars import ContextVar
from typing import Any, cast

from autointerp_grpc.backends.llm import LLMClient
from autointerp_grpc.delphi_compat import (
    ClassifierOutput,
    DetectionScorer,
    FuzzingScorer,
    Latent,
    LatentRecord,
    ScorerResult,
    classifier_samples,
    highlight_tokens,
)
from autointerp_grpc.gen.autointerp.v1 import autointerp_pb2 as pb
from autointerp_grpc.gen.params import ClassifierScorerParams
from autointerp_grpc.methods.scorer_common import (
    LOGPROBS_MISSING_NOTE,
    classifier_result,
    record_index,
    set_answer,
)
from autointerp_grpc.methods.seeding import content_seed
from autointerp_grpc.methods.spec import ScoreContext, ScoreResult
from autointerp_grpc.offload import off_loop
from autointerp_grpc.prompts.common import loads_answer
from autointerp_grpc.records import Split, example_token_count

_batch_size: ContextVar[int] = ContextVar("autointerp_classifier_batch_size")


def parse_predictions(answer: str, expected: int) -> list[bool]:
    """The first ``[...]`` list in ``answer`` (from its first ``[`` to the first ``]`` after
    it, what delphi's ``\\[.*?\\]`` finds) as booleans; ValueError unless it holds exactly
    ``expected`` values, each 0, 1, true or false. Two ``str.find`` calls: linear in the
    answer's length (the lazy pattern rescanned from every ``[``: 80 KB of ``[`` took 22 s)."""
    opened = answer.find("[")
    closed = answer.find("]", opened) if opened >= 0 else -1
    if closed < 0:
        raise ValueError("the answer holds no [...] list")
    values = loads_answer(answer[opened : closed + 1])
    if not isinstance(values, list) or len(values) != expected:
        raise ValueError(f"the answer lists {len(values)} predictions for {expected} examples")
    if any(v not in (0, 1) or isinstance(v, float) for v in values):
        raise ValueError("the answer holds values other than 0 and 1")
    return [bool(v) for v in values]


LOGPROB_MASS_SLACK = 0.01
"""How far the top alternatives' probabilities may sum above 1 (providers round log
probabilities) before they read as not being probabilities."""


def label_probability(top_logprobs: Any) -> float | None:
    """P("1") / (P("0") + P("1")) over one answer token's top alternatives, as delphi's
    ``Classifier._parse_logprobs`` computes it (a token containing "0" counts for 0, else one
    containing "1" for 1); None where that is not a real probability: an alternative whose log
    probability is not a finite number at most 0, alternatives whose probabilities sum above
    1, or no "0"/"1" alternative at all (delphi substitutes 0.0 for the last two and for a NaN,
    and returns NaN for a log probability of 1000)."""
    if not isinstance(top_logprobs, list):
        return None
    prob_0 = prob_1 = mass = 0.0
    for top in top_logprobs:
        token, logprob = getattr(top, "token", None), getattr(top, "logprob", None)
        if not isinstance(token, str) or isinstance(logprob, bool):
            return None
        if not isinstance(logprob, int | float) or not -math.inf < logprob <= 0:
            return None
        probability = math.exp(logprob)
        mass += probability
        if "0" in token:
            prob_0 += probability
        elif "1" in token:
            prob_1 += probability
    if mass > 1 + LOGPROB_MASS_SLACK or prob_0 + prob_1 <= 0:
        return None
    return prob_1 / (prob_0 + prob_1)


def probabilities_from_logprobs(logprobs: list[Any] | None, expected: int) -> list[float | None]:
    """P("1") per answer label from the provider's top log probabilities, read as delphi's
    ``Classifier._parse_logprobs`` reads them (each answer token containing "0" or "1" is one
    label, in order); all None when there are none or they don't line up with the
    ``expected`` answers, and None for a label whose alternatives are not probabilities
    (:func:`label_probability`): that example is unanswered for the AUC, never given an
    invented value."""
    if not isinstance(logprobs, list) or not logprobs:
        return [None] * expected
    labels = [
        entry
        for entry in logprobs
        if isinstance(token := getattr(entry, "token", None), str)
        and ("1" in token or "0" in token)
    ]
    if len(labels) != expected:
        return [None] * expected
    return [label_probability(getattr(entry, "top_logprobs", None)) for entry in labels]


def prompt_sizes(total: int, per_prompt: int) -> list[int]:
    """delphi's batch sizes: consecutive prompts of ``per_prompt`` examples, the last one
    shorter when ``per_prompt`` does not divide ``total``."""
    full, rest = divmod(total, per_prompt)
    return [per_prompt] * full + ([rest] if rest else [])


def proportional_counts(count: int, sizes: Sequence[int], rng: random.Random) -> list[int]:
    """How many of ``count`` marked items each prompt of ``sizes`` gets: its share
    ``count * size / total`` rounded down or up, the totals exact, and each prompt's
    *expected* number exactly its share.

    This is systematic sampling over the prompts in a random order, with integers: prompt
    b gets ``floor((count * S_b + u) / total) - floor((count * S_(b-1) + u) / total)``,
    ``S_b`` the sizes summed up to it and ``u`` uniform in ``0 .. total - 1``. It rounds like
    largest remainders (never more than one off the share), but where delphi's last,
    shorter prompt has another remainder than the full ones, largest-remainder rounding
    would always favour the same prompts; here no prompt's expected share is off, so a
    position judge's expected score is exactly chance.
    """
    total = sum(sizes)
    counts = [0] * len(sizes)
    if not total:
        return counts
    order = list(range(len(sizes)))
    rng.shuffle(order)
    offset = rng.randrange(total)
    covered = 0
    before = offset // total
    for b in order:
        covered += sizes[b]
        upto = (count * covered + offset) // total
        counts[b] = upto - before
        before = upto
    return counts


def balanced_layout(
    activating: Sequence[bool], per_prompt: int, rng: random.Random
) -> list[list[int]]:
    """Which items each prompt shows, in the order shown (indices into ``activating``).

    delphi shuffles all the samples with one seeded RNG and cuts them into consecutive
    batches. With a constant seed that puts the activating examples on the same prompt
    positions for every latent of one size, so a judge that answers one pattern to every
    prompt (a model that favours "yes" on the last example) scores far from chance, the
    same way on every latent (issue 18: 0.875 for ``[0, 0, 0, 0, 1]`` on detection 5+20).

    Here the prompts keep delphi's sizes (:func:`prompt_sizes`), each prompt gets the
    activating items in proportion to its size (:func:`proportional_counts`), which ones
    drawn at random from each class, and every prompt is shuffled, so within a prompt each
    position is equally likely to hold either class. Every item then has the same chance,
    ``1 / len(activating)``, of sitting on any one position of the request, whatever its
    class: a judge that answers by position scores chance in expectation, and with
    balanced prompts its score varies less from latent to latent than under a plain
    shuffle. ``rng`` is seeded from the records' content (``methods.seeding``), so the
    layout is reproducible for one request and differs from latent to latent.
    """
    positives = [i for i, on in enumerate(activating) if on]
    negatives = [i for i, on in enumerate(activating) if not on]
    rng.shuffle(positives)
    rng.shuffle(negatives)
    sizes = prompt_sizes(len(activating), per_prompt)
    batches = []
    for size, count in zip(sizes, proportional_counts(len(positives), sizes, rng), strict=True):
        batch = [positives.pop() for _ in range(count)]
        batch += [negatives.pop() for _ in range(size - count)]
        rng.shuffle(batch)
        batches.append(batch)
    return batches


class _BatchSizedAnswers:
    """Mixin: parse each answer against the size of the batch it answers, and send a
    request's batches concurrently (delphi sends them one at a time)."""

    n_examples_shown: int
    request_concurrency: int = 1
    """Batches of one request in flight at once; 1 is delphi's sequential behaviour."""

    async def __call__(self, record: LatentRecord) -> ScorerResult:
        """delphi's ``Classifier.__call__`` (prepare, lay out, query), its outputs in prompt
        order, as delphi returns them."""
        return ScorerResult(record=record, score=[o for o, _ in await self.judged(record)])

    async def judged(self, record: LatentRecord) -> list[tuple[ClassifierOutput, int]]:
        """Each example's output with the number of the prompt it was shown in, in prompt
        order: delphi's preparation (off the event loop for big requests: it highlights every
        token of every record), then :func:`balanced_layout` with ``self.rng`` where delphi
        shuffles all the samples and cuts them into consecutive batches."""
        size = example_token_count([*record.test, *record.not_active])
        samples = await off_loop(size, self._prepare, record)  # type: ignore[attr-defined]
        labels = [bool(sample.data.activating) for sample in samples]
        layout = balanced_layout(labels, self.n_examples_shown, self.rng)  # type: ignore[attr-defined]
        batches = [[samples[i] for i in batch] for batch in layout]
        outputs = await self._query(record.explanation, batches)
        prompts = [number for number, batch in enumerate(batches) for _ in batch]
        return list(zip(outputs, prompts, strict=True))

    async def _query(self, explanation: str, batches: list[list[Any]]) -> list[ClassifierOutput]:
        # delphi's Classifier._query with its Semaphore(1) widened: same prompts, same order of
        # results (gather keeps it), so the outcome equals the sequential path's.
        semaphore = asyncio.Semaphore(self.request_concurrency)

        async def one(batch: list[Any]) -> list[ClassifierOutput]:
            async with semaphore:
                return await self._generate(explanation, batch)

        results = await asyncio.gather(*(one(b) for b in batches))
        return [output for batch in results for output in batch]

    async def _generate(self, explanation: str, batch: list[Any]) -> list[ClassifierOutput]:
        token = _batch_size.set(len(batch))
        try:
            return await super()._generate(explanation, batch)  # type: ignore[misc]
        finally:
            _batch_size.reset(token)

    def _parse(
        self, string: str, logprobs: list[Any] | None = None
    ) -> tuple[list[bool], list[float] | list[None]]:
        expected = _batch_size.get(self.n_examples_shown)
        predictions = parse_predictions(string, expected)
        probabilities = probabilities_from_logprobs(logprobs, expected)
        # delphi annotates the probabilities as all floats or all None; its _generate copies
        # each onto its example as it is, so a None leaves only that example without one.
        return predictions, cast("list[float]", probabilities)


Span = tuple[int, int]
"""A run of highlighted tokens: (first token index, number of tokens)."""


def correct_highlight(example: Any, threshold: float) -> list[bool]:
    """The tokens delphi highlights on an activating record: activation at least ``threshold``
    times the record's maximum (the rule of delphi's ``_prepare_text`` for correct examples)."""
    abs_threshold = threshold * example.max_activation
    return [bool(v) for v in (example.activations >= abs_threshold).tolist()]


def highlight_spans(mask: Sequence[bool]) -> list[Span]:
    """The runs of consecutive highlighted tokens in ``mask``, in order."""
    runs: list[Span] = []
    start = None
    for i, on in enumerate([*mask, False]):
        if on and start is None:
            start = i
        elif not on and start is not None:
            runs.append((start, i - start))
            start = None
    return runs


def place_spans(template: Sequence[Span], template_len: int, length: int) -> list[Span]:
    """``template``'s runs (from a record of ``template_len`` tokens) laid on a record of
    ``length`` tokens. Same length: the same runs. Otherwise each run keeps its token count
    (clipped to the record) and its relative place (its start scaled so that a run at either
    end stays at that end); runs stay at least one token apart, and one that no longer fits is
    dropped (the first always fits, so a non-empty template highlights at least one token)."""
    if length <= 0 or not template:
        return []
    if template_len == length:
        return list(template)
    placed: list[Span] = []
    next_free = 0
    for start, run in template:
        size = min(run, length)
        room = template_len - run
        at = round(start * (length - size) / room) if room > 0 else 0
        at = min(max(at, next_free), length - size)
        if at < next_free:  # no room left for this run as a separate highlight
            at, size = next_free, length - next_free
            if size <= 0:
                break
        placed.append((at, size))
        next_free = at + size + 1
    return placed


def lend_templates(
    template_lengths: Sequence[int], lengths: Sequence[int], rng: random.Random
) -> list[int]:
    """For each non-activating record (of ``lengths[j]`` tokens), the activating record
    (index into ``template_lengths``) whose highlight shape it takes.

    Every activating record lends its shape to the same number of non-activating ones,
    ``m // n`` or one more (which ones get one more drawn at random), and each is lent to a
    record of its own length while that length has records left to take it; the others are
    lent at random to the rest. See ``Fuzzing._prepare`` for why. ValueError without an
    activating record."""
    n, m = len(template_lengths), len(lengths)
    if not n:
        raise ValueError("no activating record to lend a highlight shape")
    each, extra = divmod(m, n)
    quota = [each] * n
    for i in rng.sample(range(n), extra):
        quota[i] += 1
    slots: dict[int, list[int]] = {}
    for i, count in enumerate(quota):
        slots.setdefault(template_lengths[i], []).extend([i] * count)
    for pool in slots.values():
        rng.shuffle(pool)
    order = list(range(m))
    rng.shuffle(order)
    lent: list[int | None] = [None] * m
    for j in order:
        pool = slots.get(lengths[j])
        if pool:
            lent[j] = pool.pop()
    rest = [i for pool in slots.values() for i in pool]
    rng.shuffle(rest)
    return [rest.pop() if i is None else i for i in lent]


class Fuzzing(_BatchSizedAnswers, FuzzingScorer):
    """delphi's FuzzingScorer with batch-sized answer parsing, and wrong highlights shaped like
    the correct ones."""

    def _prepare(self, record: LatentRecord) -> list[Any]:
        """delphi's samples, except for how the non-activating records are highlighted.

        delphi's ``FuzzingScorer._prepare`` (with ``sample._prepare_text``) gives its wrong
        highlights tells that need no explanation to read: an all-zero record is always
        highlighted at token ``len - len // 4``; the number of wrong tokens is the mean count of
        *non-zero* activations, so a dense (GELU-like) latent highlights every token of a
        negative; whether negatives are "contrastive" is decided from the first one alone; and
        a record with a single candidate token becomes a fixed filler sentence ("NNsight ...").

        Here each non-activating record takes the highlight shape of an activating record:
        the same runs, with the same token counts at the same relative positions
        (``place_spans``), where the correct highlight is delphi's own rule
        (``correct_highlight``). Which record lends its shape is :func:`lend_templates`:
        every activating record lends it equally often (``m // n`` times or once more, for
        ``n`` activating and ``m`` non-activating records), to records of its own length
        first. The wrong highlights therefore follow the correct ones' distribution of count,
        run length and position exactly, whatever the negatives' own activations; their text
        is always their own tokens. Activating records keep delphi's highlighting.

        Why lend rather than draw. A judge can compare shapes across examples: a shape
        (start, length) that also occurs elsewhere in the prompt or the request. When each
        negative copied a shape drawn at random (with replacement), every negative's shape
        occurred on some activating example, while an activating example's shape occurred
        elsewhere only when a negative happened to copy it, so "0 where the shape repeats"
        scored 0.57 per prompt and 0.62-0.68 per request (issue 18, sparse latent, 10+10 at
        24 tokens). Drawing each wrong shape from a distribution estimated from the correct
        ones (run count, lengths and starts drawn independently) has the same flaw: the
        estimate is built from those very shapes, so a drawn shape repeats a correct one more
        often than two correct ones repeat each other (on a one-token latent it *is* a copy).
        Lending equally makes every shape a group holding one activating example and
        ``m / n`` non-activating ones, so shared shapes carry no class: with as many
        non-activating records as activating ones (or any multiple), every shape occurs
        equally often, in expectation, in either class, in a prompt and in the request.
        Otherwise the group sizes differ by one (``m // n + 1`` or ``m // n + 2``) and a judge
        that keys on group size keeps a small edge; with fewer non-activating records than
        activating ones, ``n - m`` correct shapes have no copy at all (see the README).
        ``fuzz_type="active"`` (unused by the service) stays delphi's.
        """
        if self.fuzz_type != "default":
            return super()._prepare(record)
        if not record.test or not record.not_active:
            raise ValueError("fuzzing needs activating and non-activating records")
        masks = [correct_highlight(example, self.threshold) for example in record.test]
        templates = [(len(mask), highlight_spans(mask)) for mask in masks]
        lengths = [len(example.str_tokens) for example in record.not_active]
        lent = lend_templates([length for length, _ in templates], lengths, self.rng)
        samples = [
            self._wrongly_highlighted(example, *templates[i])
            for example, i in zip(record.not_active, lent, strict=True)
        ]
        samples += classifier_samples(
            record.test, n_incorrect=0, threshold=self.threshold, highlighted=True
        )
        return samples

    def _wrongly_highlighted(self, example: Any, template_len: int, template: list[Span]) -> Any:
        """A non-activating record's sample, highlighted in the shape of ``template`` (the
        runs of a ``template_len``-token record), placed on its own length."""
        (sample,) = classifier_samples([example], highlighted=False)
        length = len(sample.data.str_tokens)
        chosen = {
            i
            for start, size in place_spans(template, template_len, length)
            for i in range(start, start + size)
        }
        text = highlight_tokens(sample.data.str_tokens, chosen.__contains__)
        return sample._replace(text=text)


class Detection(_BatchSizedAnswers, DetectionScorer):
    """delphi's DetectionScorer with batch-sized answer parsing."""


# --- running them ---------------------------------------------------------------------------


Judged = tuple[ClassifierOutput, int, int]
"""An example's output, its record's index in the request and the number of the prompt it was
shown in."""


async def judge_examples(
    split: Split,
    explanation: str,
    client: LLMClient,
    *,
    fuzz: bool,
    examples_per_prompt: int = 5,
    use_logprobs: bool = False,
    seed: int = 42,
    concurrency: int = 1,
) -> list[Judged]:
    """delphi's fuzzing or detection scorer over the split's records, in request order.

    The layout's RNG is seeded by :func:`content_seed` (``seed`` mixed with a hash of the
    records, salted with the scorer's name), never by ``seed`` alone: the same request always
    gets the same layout, another latent another one. The explanation is not hashed, so two
    explanations of one latent (a control, best-of-k candidates) are judged on one layout.
    Nothing in the order of the result depends on the layout; only the prompt numbers do,
    for the interval's clusters."""
    record = LatentRecord(Latent("latent", 0))
    record.test = split.activating
    record.not_active = split.non_activating
    record.explanation = explanation
    scorer_cls = Fuzzing if fuzz else Detection
    scorer = scorer_cls(
        client,
        verbose=False,
        n_examples_shown=examples_per_prompt,
        log_prob=use_logprobs,
        temperature=0.0,
    )
    size = example_token_count(split.in_order)
    salt = "fuzz" if fuzz else "detection"
    scorer.rng = random.Random(await off_loop(size, content_seed, seed, split, salt))
    scorer.request_concurrency = concurrency
    index_of = record_index(split)
    judged = [
        (output, index_of(output.str_tokens), prompt)
        for output, prompt in await scorer.judged(record)
    ]
    return sorted(judged, key=lambda entry: entry[1])


async def run_classifier(
    split: Split,
    explanation: str,
    client: LLMClient,
    *,
    fuzz: bool,
    examples_per_prompt: int = 5,
    use_logprobs: bool = False,
    seed: int = 42,
    concurrency: int = 1,
) -> list[ClassifierOutput]:
    """:func:`judge_examples`' outputs alone, in request order."""
    judged = await judge_examples(
        split,
        explanation,
        client,
        fuzz=fuzz,
        examples_per_prompt=examples_per_prompt,
        use_logprobs=use_logprobs,
        seed=seed,
        concurrency=concurrency,
    )
    return [output for output, _, _ in judged]


def classifier_item(output: ClassifierOutput, index: int) -> pb.ScoreBreakdownItem:
    item = pb.ScoreBreakdownItem(
        record_index=index,
        text="".join(output.str_tokens),
        str_tokens=output.str_tokens,
        activating=bool(output.activating),
    )
    set_answer(item, output)
    return item


def probabilities_note(items: Sequence[pb.ScoreBreakdownItem]) -> list[str]:
    """A note naming the answered examples left without a probability (their top log
    probabilities were not probabilities, or did not line up with the answer): the AUC is
    computed without them, or not at all."""
    answered = [item for item in items if item.HasField("prediction")]
    without = sum(not item.HasField("probability") for item in answered)
    if not without:
        return []
    used = len(answered) - without
    return [
        f"{without} of the {len(answered)} answered examples have no probability: the "
        "provider's top log probabilities for their answers were not probabilities (not "
        "finite, above 0, or summing above 1) or did not line up with the answer. "
        + (f"The AUC uses the other {used}." if used else "No AUC is reported.")
    ]


def classifier_scorer(
    fuzz: bool,
) -> Callable[[ScoreContext[ClassifierScorerParams]], Awaitable[ScoreResult]]:
    async def run(ctx: ScoreContext[ClassifierScorerParams]) -> ScoreResult:
        assert ctx.client is not None
        p = ctx.params
        judged = await judge_examples(
            ctx.split,
            ctx.explanation,
            ctx.client,
            fuzz=fuzz,
            examples_per_prompt=p.examples_per_prompt,
            use_logprobs=p.use_logprobs,
            seed=p.seed,
            concurrency=ctx.request_concurrency,
        )
        client = ctx.client

        def result() -> ScoreResult:
            # Request order: nothing in the breakdown tells where an example was shown.
            items = [classifier_item(output, index) for output, index, _ in judged]
            notes = [LOGPROBS_MISSING_NOTE] if p.use_logprobs and client.logprobs_missing else []
            if p.use_logprobs and not client.logprobs_missing:
                notes += probabilities_note(items)
            clusters = [prompt for _, _, prompt in judged]
            return classifier_result(items, client.errors, notes, ctx.min_answered, clusters)

        # The breakdown repeats every record's tokens: build it off the loop when big.
        return await off_loop(example_token_count(ctx.split.in_order), result)

    return run
