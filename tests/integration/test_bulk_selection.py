"""Best-of-k says when it cannot select, and ``validationRecords`` tells the truth (issue 18
items 4 and 5).

The end-to-end tests read which records each stage saw from the fake LLM's prompts (every
record carries a unique token ``idN``): the explainer's prompts, the candidate scorer's
(detection: the validation records) and the reporting scorer's (fuzz: the test records). The
result's counts are checked against those sets, not against the split's own bookkeeping.
"""

from __future__ import annotations

import re
from typing import Any

import grpc
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from support import BULK_DOORS, bulk_result_grpc, bulk_result_rest

from autointerp_grpc.errors import Unavailable
from autointerp_grpc.gen.autointerp.v1 import autointerp_pb2 as pb
from autointerp_grpc.handlers import bulk
from autointerp_grpc.handlers.holdout import split_feature

LLM = {"model": "openai/gpt-4o-mini", "apiKey": "sk-selection-test-key"}
ID_RE = re.compile(r"id(\d+)")


def _record(i: int, activating: bool) -> dict[str, Any]:
    """Activating records fire on " cat"; every record carries its own token ``idN``."""
    if activating:
        return {"tokens": ["The", " cat", f" id{i}"], "values": [0, 0.9, 0]}
    return {"tokens": ["The", " bank", f" id{i}"], "values": [0, 0, 0]}


def _body(n_activating: int, n_non_activating: int, **options: Any) -> dict[str, Any]:
    """One feature; records id0.. are activating, the rest non-activating. Detection ranks
    the candidates, fuzz reports: their prompts tell validation and test records apart."""
    n = n_activating + n_non_activating
    return {
        "features": [
            {
                "id": "f",
                "activations": [_record(i, True) for i in range(n_activating)],
                "nonActivating": [_record(i, False) for i in range(n_activating, n)],
            }
        ],
        "explainer": {"method": "default"},
        "scorers": [{"method": "fuzz"}],
        "llm": LLM,
        "options": {"candidateScorer": "detection", **options},
    }


def _seen_by(stats: dict[str, Any], kind: str) -> set[int]:
    """The record ids in the fake LLM's prompts of ``kind``."""
    prompts = [r["prompt"] for r in stats["records"] if r["kind"] == kind]
    return {int(m) for prompt in prompts for m in ID_RE.findall(prompt)}


def _check_counts(result: dict[str, Any], stats: dict[str, Any], n: int) -> set[int]:
    """The proto's promises about one best-of-k result, checked against the prompts; returns
    the validation record ids."""
    explained = _seen_by(stats, "explain")
    validation = _seen_by(stats, "detection")
    tested = _seen_by(stats, "fuzz")
    assert explained and tested
    assert result.get("validationRecords", 0) == len(validation)
    assert result.get("validationSeenRecords", 0) == len(validation & explained)
    if result.get("inSample"):
        assert validation == tested == set(range(n))
    else:
        assert not validation & tested
        assert not tested & explained
        assert result.get("validationSeenRecords", 0) == 0
    return validation


# --- the configurations, over both doors --------------------------------------------


@pytest.mark.parametrize("door", BULK_DOORS)
async def test_few_non_activating_records_still_reach_validation(app, clean_fake, door) -> None:
    """Issue 18 item 4: 12 activating + 3 non-activating records, 3 candidates. Ranked on
    activating records alone, detection failed for every candidate: each score was null, the
    first draft kept silently, and validationRecords still said 3."""
    result = await BULK_DOORS[door](app, _body(12, 3, candidates=3))
    assert "error" not in result, result
    validation = _check_counts(result, clean_fake.stats(), 15)
    # Both classes reached validation, so every candidate was ranked.
    assert {i < 12 for i in validation} == {True, False}
    assert [("score" in c) for c in result["candidates"]] == [True] * 3
    assert (result["trainRecords"], result["validationRecords"], result["testRecords"]) == (
        6,
        4,
        5,
    )
    # The fake LLM writes the same draft three times: the ranking cannot tell them apart.
    assert any("could not tell its candidates apart" in note for note in result["notes"])


@pytest.mark.parametrize("door", BULK_DOORS)
async def test_validation_records_are_never_the_explainers(app, clean_fake, door) -> None:
    """Issue 18 item 5: 6 activating + 12 non-activating records, 3 candidates, reported
    validationRecords 9 of which the explainer had seen 3 (its training records ranked)."""
    result = await BULK_DOORS[door](app, _body(6, 12, candidates=3))
    assert "error" not in result and not result.get("inSample"), result
    validation = _check_counts(result, clean_fake.stats(), 18)
    assert not validation & _seen_by(clean_fake.stats(), "explain")
    assert {i < 6 for i in validation} == {True, False}
    assert (result["validationRecords"], result.get("validationSeenRecords", 0)) == (7, 0)


@pytest.mark.parametrize("door", BULK_DOORS)
async def test_in_sample_selection_is_counted_and_said(app, clean_fake, door) -> None:
    """holdout 0 with 3 candidates ranks on the records it scores: the count says which the
    explainer saw, and a note says the selection was in-sample."""
    result = await BULK_DOORS[door](app, _body(6, 12, candidates=3, holdout=0))
    assert result["inSample"]
    _check_counts(result, clean_fake.stats(), 18)
    # The default explainer reads only the 6 activating records.
    assert (result["validationRecords"], result["validationSeenRecords"]) == (18, 6)
    assert bulk.IN_SAMPLE_SELECTION_NOTE in result["notes"]


# --- when no ranking happens ----------------------------------------------------------------


@pytest.mark.parametrize("door", BULK_DOORS)
async def test_no_ranking_without_records_for_it_is_a_note(app, clean_fake, door) -> None:
    """One non-activating record cannot be both validated and tested on: nothing is ranked,
    the test keeps every held-out record, and the note says why."""
    result = await BULK_DOORS[door](app, _body(12, 1, candidates=3))
    assert "error" not in result, result
    assert clean_fake.stats()["by_kind"].get("detection", 0) == 0
    assert result.get("validationRecords", 0) == 0
    assert result["testRecords"] == 7  # 6 held-out activating records and the 1 other
    assert [("score" in c) for c in result["candidates"]] == [False] * 3
    assert result["explanation"] == result["candidates"][0]["explanation"]
    [note] = result["notes"]
    assert note.startswith("best-of-k kept the first of 3 drafts: too few held-out ")
    assert "non-activating records (1)" in note


def _outcome(method: str, score: float | None) -> pb.ScorerOutcome:
    outcome = pb.ScorerOutcome(method=method)
    if score is None:
        outcome.error.CopyFrom(pb.FeatureError(code="UNAVAILABLE", message="the judge is down"))
    else:
        outcome.score = score
    return outcome


def _scripted(
    monkeypatch: pytest.MonkeyPatch,
    drafts: list[str | Exception],
    validation: dict[str, float | None],
) -> None:
    """Drafts written in turn, and the candidate scorer (detection) scoring each draft by
    ``validation`` (None: it fails); the reporting scorers run for real."""
    written = iter(drafts)
    original = bulk._Run._score

    async def explain(self, feature, parts, usage, temperature) -> str:
        draft = next(written)
        if isinstance(draft, Exception):
            raise draft
        return draft

    async def score(self, method, explanation, split, usage, control="") -> pb.ScorerOutcome:
        if method.name == "detection":
            return _outcome(method.name, validation[explanation])
        return await original(self, method, explanation, split, usage, control)

    monkeypatch.setattr(bulk._Run, "_explain", explain)
    monkeypatch.setattr(bulk._Run, "_score", score)


async def test_no_candidate_scored_keeps_the_first_and_says_why(app, monkeypatch) -> None:
    _scripted(monkeypatch, ["cat", "bank", "id"], {"cat": None, "bank": None, "id": None})
    result = await bulk_result_grpc(app, _body(12, 12, candidates=3))
    assert result["explanation"] == "cat"
    assert result.get("validationRecords", 0) == 0
    assert [("score" in c) for c in result["candidates"]] == [False] * 3
    assert result["notes"] == [
        "best-of-k kept the first of 3 drafts: the candidate scorer detection could not "
        "score any of them on the validation records (UNAVAILABLE: the judge is down)"
    ]


async def test_some_candidates_scored_are_ranked_among_themselves(app, monkeypatch) -> None:
    _scripted(monkeypatch, ["cat", "bank", "id"], {"cat": 0.6, "bank": None, "id": 0.9})
    result = await bulk_result_rest(app, _body(12, 12, candidates=3))
    assert result["explanation"] == "id"
    assert [c.get("score") for c in result["candidates"]] == [0.6, None, 0.9]
    assert result["validationRecords"] == 9  # half the held-out records of each class
    assert result["notes"] == [
        "best-of-k ranked 2 of 3 candidates: the candidate scorer detection could not score "
        "the others on the validation records (UNAVAILABLE: the judge is down)"
    ]


async def test_failed_drafts_are_a_note(app, monkeypatch) -> None:
    down = Unavailable("the explainer's provider is down")
    _scripted(monkeypatch, ["cat", down, "bank"], {"cat": 0.5, "bank": 0.75})
    result = await bulk_result_grpc(app, _body(12, 12, candidates=3))
    assert result["explanation"] == "bank"
    assert [c["explanation"] for c in result["candidates"]] == ["cat", "bank"]
    assert result["notes"] == [
        "best-of-k chose among 2 of 3 drafts: the others failed (UNAVAILABLE: the explainer's "
        "provider is down)"
    ]
    # One draft left: nothing to rank, nothing scored for it.
    _scripted(monkeypatch, [down, "cat", down], {})
    alone = await bulk_result_grpc(app, _body(12, 12, candidates=3))
    assert alone["explanation"] == "cat" and alone.get("validationRecords", 0) == 0
    assert alone["notes"][0].startswith("best-of-k kept the only one of 3 drafts that was")


@pytest.mark.parametrize("door", BULK_DOORS)
async def test_a_ranker_that_reads_no_explanation_is_refused(app, door) -> None:
    """intruder scores every candidate alike (it never reads the explanation): its ranking
    would be noise reported as a selection."""
    body = _body(12, 12, candidates=3, candidateScorer="intruder")
    if door == "grpc":
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await bulk_result_grpc(app, body)
        assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        message = info.value.details() or ""
    else:
        response = await app.rest.post("/v1/explain-and-score", json=body, headers=app.headers)
        assert response.status_code == 400, response.text
        message = response.json()["detail"]
    assert "intruder, which reads no explanation" in message


# --- choose_candidate -----------------------------------------------------------------------


def test_choose_candidate() -> None:
    error = pb.FeatureError(code="UNAVAILABLE", message="down")
    assert bulk.choose_candidate("detection", [0.5, 0.9, 0.7]) == bulk.Choice(1, [])
    # The first of equal maxima; a tie among some of them is a ranking, not a note.
    assert bulk.choose_candidate("detection", [0.5, 0.9, 0.9]) == bulk.Choice(1, [])
    tie = bulk.choose_candidate("detection", [0.75, 0.75, error])
    assert tie.best == 0
    assert tie.notes == [
        "best-of-k ranked 2 of 3 candidates: the candidate scorer detection could not score "
        "the others on the validation records (UNAVAILABLE: down)",
        "best-of-k could not tell its candidates apart: all 2 ranked candidates scored 0.75 "
        "on the validation records, and the first was kept",
    ]
    assert bulk.choose_candidate("fuzz", [error, error]).best is None


# --- the split's invariants, over many record counts ----------------------------------------


def _feature(n_activating: int, n_zero: int, n_labelled: int) -> pb.Feature:
    """Activating records, zero-valued records among ``activations`` and records labelled
    non-activating; each record's first token names it."""
    records = [pb.Activation(tokens=[f"a{i}"], values=[1.0]) for i in range(n_activating)]
    records += [pb.Activation(tokens=[f"z{i}"], values=[0.0]) for i in range(n_zero)]
    labelled = [pb.Activation(tokens=[f"n{i}"], values=[0.0]) for i in range(n_labelled)]
    return pb.Feature(id="f", activations=records, non_activating=labelled)


def _names(records: list[pb.Activation]) -> list[str]:
    return [r.tokens[0] for r in records]


@settings(max_examples=300, deadline=None)
@given(
    n_activating=st.integers(0, 24),
    n_zero=st.integers(0, 6),
    n_labelled=st.integers(0, 24),
    holdout=st.sampled_from([0.0, 0.1, 0.25, 0.5, 0.75, 0.9]),
    reads=st.booleans(),
    candidates=st.integers(1, 4),
    needs_both=st.booleans(),
    seed=st.integers(0, 3),
)
def test_split_invariants(
    n_activating: int,
    n_zero: int,
    n_labelled: int,
    holdout: float,
    reads: bool,
    candidates: int,
    needs_both: bool,
    seed: int,
) -> None:
    feature = _feature(n_activating, n_zero, n_labelled)

    def split():
        return split_feature(
            feature,
            holdout,
            f"{seed}:f",
            explainer_reads_non_activating=reads,
            candidates=candidates,
            ranker_needs_non_activating=needs_both,
        )

    parts = split()
    explained = set(_names([*parts.explain_activating, *parts.explain_non_activating]))
    act_val, non_val = _names(parts.validation_activating), _names(parts.validation_non_activating)
    act_test, non_test = _names(parts.test_activating), _names(parts.test_non_activating)
    validation, test = {*act_val, *non_val}, {*act_test, *non_test}
    assert all(n.startswith("a") for n in [*act_val, *act_test])
    assert not any(n.startswith("a") for n in [*non_val, *non_test])
    # The counts are what they name.
    assert parts.validation_records == len(validation)
    assert parts.validation_seen_records == len(validation & explained)
    assert parts.test_records == (0 if parts.in_sample else len(test))
    if parts.validation is not None:
        assert len(parts.validation.in_order) == parts.validation_records
    if not reads:
        assert not parts.explain_non_activating
    if parts.in_sample:
        assert validation in (set(), test)  # ranked on what is scored, if at all
    else:
        # Explainer, validation and test are disjoint and cover every record.
        assert not explained & test and not validation & test and not validation & explained
        assert len(explained) + len(validation) + len(test) == len(feature.activations) + len(
            feature.non_activating
        )
        assert act_test  # the test keeps some of each held-out class
        assert non_test or not (n_zero + n_labelled)
    if candidates == 1:
        assert parts.validation is None and not parts.no_validation
    else:
        # Ranking is possible exactly when the records give the ranker what it needs, and
        # then it gets both classes wherever it needs them.
        assert (parts.validation is None) == bool(parts.no_validation)
        if parts.validation is not None:
            assert act_val and (non_val or not needs_both)
            assert not parts.in_sample or parts.validation_seen_records == parts.train_records
        elif not parts.in_sample:
            held_non = len(non_test)
            assert len(act_test) < 2 or (needs_both and held_non < 2)
        else:
            assert not n_activating or (needs_both and not n_zero + n_labelled)
    # Reproducible from the seed.
    again = split()
    assert _names(again.validation_activating) == act_val
    assert _names(again.test_non_activating) == non_test
