"""OpenAI-style simulation: the model predicts each token's activation (0-10) from the
explanation; the score is the correlation of predicted and true activations, pooled over every
token of every answered record (OpenAI's ``ev_correlation_score``: neuron_explainer's
explanations/scoring.py lines 25-29 and 98-126 in ``automated-interpretability`` 0.0.24).

The ``mode`` parameter picks how the predictions are made:

* ``json``: delphi's simulator in JSON mode, one point guess per token.
* ``logprob_ev``: OpenAI's expected-value simulation (:mod:`.simulation_ev`), the prediction
  per token being the expected value over the top log probabilities of the digits 0-10.
* ``auto`` (default): ``logprob_ev`` where the provider returns top log probabilities, else
  ``json``, saying which in ``notes``. ``logprob_ev`` asked for explicitly fails with
  FAILED_PRECONDITION where the provider has none.

logprob_ev asks for up to :data:`RECORDS_PER_CALL` records per call (one prompt, the
anchor's few-shot preamble once, each record under its "Sequence N" heading; records drawn
into calls in an order shuffled from the request's content): a 24-record request is 3 calls
and about 3,900 prompt tokens instead of 24 calls and 27,300 (measured with the fake LLM's
counts). A call of one record is the anchor's prompt exactly.

Which one runs is decided on the provider, never on one record's answer: logprob_ev runs when
any call of the request came back with top log probabilities. The first call goes alone;
when its answer has them, the rest follow. When it has none (or the provider rejects the
request for them), one small probe (the same prompt for a fixed four-token text, never scored)
asks the provider itself: with log probabilities there, the first call was a gap of its own
and the request goes on in logprob_ev; without, the provider has none and ``auto`` simulates
every record in JSON mode (a provider without log probabilities costs two calls to find out,
not a whole request's). A record whose answer lacks them, or does not line up
with its tokens, is unanswered, and the coverage floor applies (UNAVAILABLE below
``minAnswered``, naming answered/total per class), as for any unusable answer.

``notes`` always name the mode that ran.
"""

from __future__ import annotations

import random
import re
from collections.abc import Sequence
from typing import Any

import numpy as np

from autointerp_grpc.delphi_compat import (
    JSON_MAX_TOKENS,
    NeuronSimulator,
)
from autointerp_grpc.errors import (
    AutoInterpError,
    FailedPrecondition,
    InvalidArgument,
    UpstreamBadResponse,
)
from autointerp_grpc.gen.autointerp.v1 import autointerp_pb2 as pb
from autointerp_grpc.gen.params import SimulationScorerParams
from autointerp_grpc.methods import metrics
from autointerp_grpc.methods.scorer_common import (
    bounded_gather,
    coverage_of,
    require_coverage,
)
from autointerp_grpc.methods.seeding import content_seed
from autointerp_grpc.methods.simulation_ev import EvOutcome, simulate_ev, simulate_ev_batch
from autointerp_grpc.methods.spec import ScoreContext, ScoreResult
from autointerp_grpc.methods.structured import StructuredOutput
from autointerp_grpc.prompts.common import loads_answer
from autointerp_grpc.records import Split, str_tokens_of

SIMULATION_MAX = 10.0

_SIMULATION_FORMAT: dict[str, Any] = {
    "type": "json_schema",
    "json_schema": {
        "name": "simulated_activations",
        "schema": {
            "type": "object",
            "properties": {
                "to_find": {"type": "string"},
                "document": {"type": "string"},
                "activations": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "properties": {
                            "token": {"type": "string"},
                            "activation": {"type": "number"},
                        },
                        "required": ["token", "activation"],
                    },
                },
            },
            "required": ["activations"],
        },
    },
}
_OPENING_FENCE_RE = re.compile(r"```(?:json)?\s*+")


JSON_ANSWER_SHAPE = (
    'JSON {"activations": [{"token": ..., "activation": 0-10}, ...]}, every token of the record'
)
"""What delphi's JSON-mode simulation prompt asks for."""
EV_ANSWER_SHAPE = "token<tab>activation lines, one per token, with top log probabilities"
"""What the expected-value simulation reads (its numbers come from the log probabilities)."""


def unfenced(text: str) -> str:
    """``text`` stripped, without an opening fence (three backticks, optionally followed by
    ``json``) and a closing one, with the whitespace around them. Linear in the length (the
    pattern it replaces, fence-or-json-then-spaces at the start or spaces-then-fence at the
    end, retried its trailing branch from every position: quadratic in a run of spaces)."""
    text = text.strip()
    opening = _OPENING_FENCE_RE.match(text)
    if opening is not None:
        text = text[opening.end() :]
    if text.endswith("```"):
        text = text[:-3].rstrip()
    return text


def parse_simulation(text: str, n_tokens: int) -> list[float]:
    """The simulated activations in a JSON answer; ValueError unless there is exactly one
    number in [0, 10] per token (delphi's own parser answers zeros instead, which would be
    indistinguishable from a real prediction)."""
    data = loads_answer(unfenced(text))
    entries = data.get("activations") if isinstance(data, dict) else None
    if not isinstance(entries, list) or len(entries) != n_tokens:
        got = len(entries) if isinstance(entries, list) else "no"
        raise ValueError(f"{got} activations for {n_tokens} tokens")
    values = []
    for entry in entries:
        value = entry.get("activation") if isinstance(entry, dict) else None
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValueError("an activation is not a number")
        if not 0 <= value <= SIMULATION_MAX:
            raise ValueError("an activation is outside 0 to 10")
        values.append(float(value))
    return values


JSON_NOTE = (
    "Simulated with mode json: one point prediction (0-10) per token from the model's JSON answer."
)
EV_NOTE = (
    "Simulated with mode logprob_ev{how}: each prediction is the expected value of the "
    "activation digit (0-10) over the model's top log probabilities."
)
FALLBACK_NOTE = (
    "Simulated with mode json (auto): {why}, so the expected-value simulation (logprob_ev) "
    "could not run; predictions are point guesses (0-10) from the model's JSON answer."
)
_NO_LOGPROBS = "the provider returned no top log probabilities for this model"
PROBE_TOKENS: tuple[str, ...] = ("The", " quick", " brown", " fox")
"""The text of the capability probe: fixed, so the probe says nothing about any record (and,
being deterministic, is one addressable call for a given explanation)."""
GAPS_NOTE = (
    "{gaps} of the {total} records' answers carried no top log probabilities although the "
    "provider sent them for other calls of this request; those records are unanswered."
)


async def run_simulation(ctx: ScoreContext[SimulationScorerParams]) -> ScoreResult:
    """The simulation scorer in the mode its parameters ask for (see the module docstring)."""
    mode = ctx.params.mode or "auto"
    if mode == "json":
        return await _run_json(ctx, [JSON_NOTE])
    client = ctx.client
    assert client is not None
    records = [list(str_tokens_of(e)) for e in ctx.split.in_order]
    batches = record_batches(records, content_seed(0, ctx.split, "simulation"))
    calls = [
        lambda b=b, c=client: simulate_ev_batch(c, ctx.explanation, [records[i] for i in b])
        for b in batches
    ]
    answers = [await calls[0]()]
    first = answers[0][0]  # every record of one call shares its outcome's kind
    probe: EvOutcome | None = None
    if not first.logprobs and _tells_absence(first):
        # The first call's answer says nothing about the others: ask the provider itself.
        probe = await simulate_ev(client, ctx.explanation, PROBE_TOKENS)
    why = _why_no_logprobs([probe]) if probe is not None else None
    if why is None:
        answers += await bounded_gather(calls[1:], ctx.request_concurrency)
    # Back in the request's order (a call's records were drawn across the request).
    by_record = dict(
        pair
        for batch, outcomes in zip(batches, answers, strict=False)
        for pair in zip(batch, outcomes, strict=True)
    )
    outcomes = [by_record[i] for i in sorted(by_record)]
    if why is None and not (probe is not None and probe.logprobs):
        why = _why_no_logprobs(outcomes)
    if why is not None:
        if mode == "logprob_ev":
            rejected = probe.error if probe is not None else first.error
            if isinstance(rejected, InvalidArgument):
                raise rejected
            raise FailedPrecondition(
                "simulationParams.mode logprob_ev needs the provider's top log probabilities, "
                f"and {_NO_LOGPROBS}. Use mode json, or auto (json where log probabilities are "
                "missing)"
            )
        return await _run_json(ctx, [FALLBACK_NOTE.format(why=why)], errors_from=len(client.errors))
    how = " (auto)" if mode == "auto" else ""
    notes = [EV_NOTE.format(how=how)]
    gaps = sum(o.answered and not o.logprobs for o in outcomes)
    if gaps:
        notes.append(GAPS_NOTE.format(gaps=gaps, total=len(outcomes)))
    # The probe is no record: its failure is not one of this request's unanswered records.
    errors = [e for e in client.errors if probe is None or e is not probe.error]
    predictions = [outcome.predictions for outcome in outcomes]
    return _simulation_result(
        ctx.split, predictions, errors, notes, ctx.min_answered, expected=EV_ANSWER_SHAPE
    )


RECORDS_PER_CALL = 8
"""Most records one logprob_ev call asks for: the few-shot preamble (about 1,100 prompt tokens
with OpenAI's tokenizer) is sent once per call, not once per record."""
TOKENS_PER_CALL = 256
"""Most record tokens one logprob_ev call asks for (a longer record goes alone)."""


def record_batches(records: Sequence[Sequence[str]], seed: int) -> list[list[int]]:
    """The records' indices in calls of at most :data:`RECORDS_PER_CALL` records and
    :data:`TOKENS_PER_CALL` tokens (a record longer than that alone), drawn in an order
    shuffled by ``seed`` (from the request's content): which records share a call, and where
    in it each stands, says nothing of its class."""
    order = list(range(len(records)))
    random.Random(seed).shuffle(order)
    batches: list[list[int]] = []
    size = 0
    for index in order:
        tokens = len(records[index])
        if batches and len(batches[-1]) < RECORDS_PER_CALL and size + tokens <= TOKENS_PER_CALL:
            batches[-1].append(index)
            size += tokens
        else:
            batches.append([index])
            size = tokens
    return batches


def _tells_absence(outcome: EvOutcome) -> bool:
    """Whether a call's outcome could mean the provider has no top log probabilities: it
    answered without them, or rejected the request outright (a 400: often the logprobs
    parameter). A failure of another kind (rate limit, provider down) says nothing either way."""
    return (outcome.answered and not outcome.logprobs) or isinstance(outcome.error, InvalidArgument)


def _why_no_logprobs(outcomes: Sequence[EvOutcome]) -> str | None:
    """Why logprob_ev cannot run with this provider and model, from calls none of which
    carried top log probabilities (None when nothing has told): an answer came back without
    them, or the provider rejected the request for them."""
    if any(outcome.logprobs for outcome in outcomes):
        return None
    if any(outcome.answered for outcome in outcomes):
        return _NO_LOGPROBS
    rejected = next((o.error for o in outcomes if isinstance(o.error, InvalidArgument)), None)
    if rejected is not None:
        return f"the provider rejected the request for them ({rejected.message})"
    return None


async def _run_json(
    ctx: ScoreContext[SimulationScorerParams], notes: list[str], errors_from: int = 0
) -> ScoreResult:
    """delphi's JSON-mode simulation of every record; provider errors before ``errors_from``
    (the calls of an abandoned logprob_ev attempt) are not this run's."""
    client = ctx.client
    assert client is not None
    simulator = NeuronSimulator(client, ctx.explanation, use_logprobs=False)
    structured = StructuredOutput(_SIMULATION_FORMAT, enabled=bool(ctx.params.structured_output))

    async def simulate(tokens: list[str]) -> list[float] | None:
        prompt = simulator._make_json_prompt(tokens)
        try:
            response = await structured.generate(client, prompt, max_tokens=JSON_MAX_TOKENS)
        except AutoInterpError:
            return None
        try:
            return parse_simulation(response.text, len(tokens))
        except (ValueError, TypeError, AttributeError):
            return None

    records = ctx.split.in_order
    predictions = await bounded_gather(
        [lambda e=e: simulate(list(str_tokens_of(e))) for e in records], ctx.request_concurrency
    )
    errors = client.errors[errors_from:]
    notes = [*notes, structured.note]
    return _simulation_result(
        ctx.split, predictions, errors, notes, ctx.min_answered, expected=JSON_ANSWER_SHAPE
    )


def _simulation_result(
    split: Split,
    predictions: list[list[float] | None],
    errors: Sequence[AutoInterpError],
    notes: list[str],
    min_answered: float,
    *,
    expected: str = "",
) -> ScoreResult:
    records = split.in_order
    activating = split.activating_indices
    # Correlations are scale-invariant: the true activations are divided by the largest
    # magnitude in the request, so any finite doubles (1.7e308, 5e-324) give the same sums as
    # the same shape at 1 would, never an overflow (NaN) or an underflow (a "constant" side).
    scale = max(
        (float(e.activations.abs().max()) for e in records if e.activations.numel() > 0),
        default=0.0,
    )
    items: list[pb.ScoreBreakdownItem] = []
    answered: list[tuple[list[float], list[float]]] = []
    for i, (example, predicted) in enumerate(zip(records, predictions, strict=True)):
        values = example.activations.double()
        true = (values / scale if scale > 0 else values).tolist()
        item = pb.ScoreBreakdownItem(
            record_index=i,
            text="".join(str_tokens_of(example)),
            str_tokens=example.str_tokens,
            activating=i in activating,
        )
        if predicted is not None:
            item.predicted_activations.extend(predicted)
            correlation = metrics.pearson(true, predicted)
            if correlation is not None:
                item.correlation = correlation
            answered.append((true, predicted))
        items.append(item)
    coverage = coverage_of(items, by_class=True)
    notes = [
        *notes,
        *require_coverage(coverage, min_answered, errors, what="records", expected=expected),
    ]

    # Per record: n, sum x, sum y, sum xx, sum yy, sum xy; a pooled correlation over any
    # resample of records is then a few sums (the interval resamples records many times).
    sums = np.array(
        [
            [len(t), np.sum(t), np.sum(p), np.dot(t, t), np.dot(p, p), np.dot(t, p)]
            for t, p in ((np.asarray(t, float), np.asarray(p, float)) for t, p in answered)
        ]
    ).reshape(-1, 6)

    def pooled(indices: Sequence[int] | np.ndarray) -> float:
        n, sx, sy, sxx, syy, sxy = sums[list(indices)].sum(axis=0)
        var_x, var_y = n * sxx - sx * sx, n * syy - sy * sy
        # Relative tolerance: float sums of a constant side leave a tiny residue.
        if var_x <= 1e-12 * max(n * sxx, 1e-300):
            raise ValueError("constant truth")
        if var_y <= 1e-12 * max(n * syy, 1e-300):
            raise ValueError("constant prediction")
        return float(np.clip((n * sxy - sx * sy) / np.sqrt(var_x * var_y), -1.0, 1.0))

    try:
        score = pooled(range(len(answered)))
    except ValueError as undefined:
        # A simulation that predicts the same value everywhere says nothing about the
        # explanation: that is a failure to simulate, not a correlation of 0. (The request's
        # true activations always vary, activating and non-activating records both being
        # required; they are constant here only when the records that vary went unanswered.)
        raise UpstreamBadResponse(
            "The simulator model predicted the same activation for every token of every "
            "answered record, so the correlation is undefined; try again or use another model"
            if str(undefined) == "constant prediction"
            else "The records that got a usable answer have the same true activation at every "
            "token (the others went unanswered), so the correlation is undefined; try again "
            "or use another model"
        ) from None
    small = metrics.small_sample_note(
        coverage.activating_answered, coverage.non_activating_answered
    )
    return ScoreResult(
        score=metrics.finite(score, "The correlation", low=-1.0),
        breakdown=items,
        chance=0.0,
        confidence_interval=metrics.bootstrap_interval(len(answered), pooled),
        notes=[*notes, *([small] if small else [])],
        coverage=coverage,
    )
