"""The CLI's pure parts (input/output files, statistics) and the bulk scheduler it runs on
(autointerp_grpc.client.bulk) with fake servers: streams that fail, features that fail,
requests rejected over one feature, servers that are down."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import grpc
import grpc.aio
import pytest

from autointerp_grpc.cli import inputs, results
from autointerp_grpc.client import bulk
from autointerp_grpc.gen.autointerp.v1 import autointerp_pb2 as pb

# ---- files ---------------------------------------------------------------------------------


def _line(feature_id: object, **extra: object) -> str:
    body = {"id": feature_id, "activations": [{"tokens": ["a", " cat"], "values": [0, 1]}]}
    body.update(extra)
    return json.dumps(body, ensure_ascii=False)


def test_read_features_accepts_both_spellings_and_skips_blank_lines(tmp_path: Path) -> None:
    path = tmp_path / "in.jsonl"
    quiet = [{"tokens": ["x\u2028y"], "values": [0]}]  # U+2028 inside a token is not a newline
    path.write_text(
        "\n".join(
            [
                _line("a", nonActivating=quiet, topPositiveLogits=[" cats"]),
                "",
                "   ",
                _line(7, non_activating=quiet, top_positive_logits=[" dogs"]),
            ]
        )
        + "\n",
        encoding="utf-8",
    )
    features = inputs.read_features(str(path))
    assert [f.id for f in features] == ["a", "7"]
    assert features[0].non_activating[0].tokens == ["x\u2028y"]
    assert list(features[1].top_positive_logits) == [" dogs"]


@pytest.mark.parametrize(
    ("lines", "message"),
    [
        ([_line("a"), "{not json"], "in.jsonl:2: not valid JSON"),
        ([_line("a"), "", "[1, 2]"], "in.jsonl:3: expected a JSON object"),
        ([_line("a", nonactivating=[])], "in.jsonl:1: .*nonactivating"),
        ([json.dumps({"activations": []})], "in.jsonl:1: the feature has no id"),
        ([_line("a"), _line("b"), _line("a")], "in.jsonl:3: id 'a' already used on line 1"),
    ],
)
def test_read_features_names_the_bad_line(tmp_path: Path, lines: list[str], message: str) -> None:
    path = tmp_path / "in.jsonl"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(inputs.UsageError, match=message):
        inputs.read_features(str(path))


def test_done_ids_go_by_each_ids_last_line(tmp_path: Path) -> None:
    path = tmp_path / "out.jsonl"
    error = {"code": "UNAVAILABLE", "message": "down"}
    path.write_text(
        "\n".join(
            [
                json.dumps({"id": "ok", "explanation": "x"}),
                json.dumps({"id": "failed-then-ok", "error": error}),
                json.dumps({"id": "failed-then-ok", "explanation": "y"}),
                json.dumps({"id": "ok-then-failed", "explanation": "z"}),
                json.dumps({"id": "ok-then-failed", "error": error}),
                '{"id": "cut-sho',
            ]
        )
    )
    done, unreadable = results.read_done_ids(path)
    assert done == {"ok", "failed-then-ok"}
    assert unreadable == 1
    assert results.read_done_ids(tmp_path / "missing.jsonl") == (set(), 0)


def test_a_line_with_a_failed_scorer_is_not_done(tmp_path: Path) -> None:
    # issue 17 item 8: a feature whose scorer failed is redone on resume.
    path = tmp_path / "out.jsonl"
    failed = {"method": "detection", "error": {"code": "UNAVAILABLE", "message": "503"}}
    scored = {"method": "detection", "score": 0.9}
    lines = [
        {"id": "scorer-failed", "explanation": "x", "scores": [scored, failed]},
        {"id": "scored", "explanation": "x", "scores": [scored]},
        {"id": "scorer-failed-then-ok", "explanation": "x", "scores": [failed]},
        {"id": "scorer-failed-then-ok", "explanation": "y", "scores": [scored]},
    ]
    path.write_text("\n".join(json.dumps(line) for line in lines) + "\n")
    assert results.read_done_ids(path) == ({"scored", "scorer-failed-then-ok"}, 0)


def test_a_failed_scorer_fails_the_feature_in_the_statistics() -> None:
    stats = results.RunStats(scorers=["detection", "fuzz"])
    failed = pb.FeatureResult(id="a", explanation="x")
    failed.scores.add(method="detection", score=0.9, metric="balanced_accuracy")
    failed.scores.add(method="fuzz").error.CopyFrom(pb.FeatureError(code="UNAVAILABLE"))
    stats.record(failed)
    assert (stats.ok, [r.id for r in stats.failed]) == (0, ["a"])
    assert stats.scorer_errors["fuzz"] == 1 and not stats.scores["detection"]
    assert bulk.retryable(failed)
    assert bulk.failure(failed) == pb.FeatureError(code="UNAVAILABLE", message="scorer 'fuzz': ")
    failed.scores[1].error.code = "INVALID_ARGUMENT"
    assert not bulk.retryable(failed)


def test_writer_starts_a_new_line_after_a_cut_one(tmp_path: Path) -> None:
    path = tmp_path / "out.jsonl"
    path.write_text('{"id": "a"}\n{"id": "cut-sho')
    writer = results.ResultWriter(path)
    writer.write(pb.FeatureResult(id="b", explanation="e"))
    writer.close()
    lines = path.read_text().splitlines()
    assert lines[1] == '{"id": "cut-sho'
    assert json.loads(lines[2])["id"] == "b"
    assert json.loads(lines[2])["scores"] == []  # default-valued fields are printed


def test_writer_creates_nothing_until_a_result(tmp_path: Path) -> None:
    results.ResultWriter(tmp_path / "out.jsonl").close()
    assert not (tmp_path / "out.jsonl").exists()


def test_quantile_matches_linear_interpolation() -> None:
    values = [0.0, 1.0, 2.0, 3.0, 4.0]
    assert results.quantile(values, 0.5) == 2.0
    assert results.quantile(values, 0.1) == pytest.approx(0.4)
    assert results.quantile(values, 0.9) == pytest.approx(3.6)
    assert results.quantile([5.0], 0.9) == 5.0


# ---- the scheduler -------------------------------------------------------------------------


def _rpc_error(code: grpc.StatusCode, details: str) -> grpc.aio.AioRpcError:
    return grpc.aio.AioRpcError(code, grpc.aio.Metadata(), grpc.aio.Metadata(), details)


def _ok(feature_id: str) -> pb.ExplainAndScoreEvent:
    result = pb.FeatureResult(id=feature_id, explanation=f"about {feature_id}")
    result.usage.llm_calls = 1
    return pb.ExplainAndScoreEvent(result=result)


def _failed(feature_id: str, code: str) -> pb.ExplainAndScoreEvent:
    error = pb.FeatureError(code=code, message="it broke")
    return pb.ExplainAndScoreEvent(result=pb.FeatureResult(id=feature_id, error=error))


Script = Callable[[int, list[str]], tuple[list[pb.ExplainAndScoreEvent], Exception | None]]


class FakeStream:
    def __init__(self, events: list[pb.ExplainAndScoreEvent], error: Exception | None) -> None:
        self._events = list(events)
        self._error = error
        self.cancelled = False

    def __aiter__(self) -> FakeStream:
        return self

    async def __anext__(self) -> pb.ExplainAndScoreEvent:
        if self._events:
            return self._events.pop(0)
        if self._error is not None:
            raise self._error
        raise StopAsyncIteration

    def cancel(self) -> bool:
        self.cancelled = True
        return True


class FakeClient:
    """Answers each ExplainAndScore call with what ``script(call_number, ids)`` says."""

    def __init__(self, script: Script) -> None:
        self.script = script
        self.calls: list[list[str]] = []

    def explain_and_score(self, request, *, timeout=None, request_id=None) -> FakeStream:
        ids = [f.id for f in request.features]
        self.calls.append(ids)
        return FakeStream(*self.script(len(self.calls), ids))


def _all_ok(_call: int, ids: list[str]):
    return [_ok(i) for i in ids], None


async def _run(
    clients: list[FakeClient], ids: list[str], **kwargs: object
) -> tuple[list[pb.FeatureResult], int]:
    written: list[pb.FeatureResult] = []
    retried: list[str] = []
    settings = {"batch_size": 2, "streams": 2, "retries": 2, "stream_timeout": None}
    settings.update(kwargs)
    runner = bulk.BulkRunner(
        [bulk.Server(f"server-{n}", c) for n, c in enumerate(clients)],  # type: ignore[arg-type]
        pb.ExplainAndScoreRequest(),
        [bulk.Job(pb.Feature(id=i)) for i in ids],
        on_result=written.append,
        on_usage=lambda usage: None,
        on_retry=lambda job, result: retried.append(job.feature.id),
        **settings,  # type: ignore[arg-type]
    )
    await runner.run()
    return written, len(retried)


async def test_batches_spread_over_servers() -> None:
    a, b = FakeClient(_all_ok), FakeClient(_all_ok)
    written, retried = await _run([a, b], [f"f{i}" for i in range(8)], streams=4)
    assert sorted(r.id for r in written) == [f"f{i}" for i in range(8)]
    assert retried == 0
    assert a.calls and b.calls
    assert all(len(batch) == 2 for batch in a.calls + b.calls)


async def test_a_failed_stream_resubmits_its_unfinished_features() -> None:
    def script(call: int, ids: list[str]):
        if call == 1:  # one result, then the connection drops
            return [_ok(ids[0])], _rpc_error(grpc.StatusCode.UNAVAILABLE, "connection reset")
        return [_ok(i) for i in ids], None

    client = FakeClient(script)
    written, retried = await _run([client], ["a", "b", "c"], streams=1)
    assert sorted(r.id for r in written) == ["a", "b", "c"]
    assert not any(r.HasField("error") for r in written)
    assert retried == 1
    assert client.calls[0] == ["a", "b"]
    assert any("b" in batch for batch in client.calls[1:])


async def test_retries_run_out_then_the_error_is_written() -> None:
    def script(_call: int, ids: list[str]):
        return [_failed(i, "UNAVAILABLE") if i == "flaky" else _ok(i) for i in ids], None

    client = FakeClient(script)
    written, retried = await _run([client], ["flaky", "fine"], retries=2)
    by_id = {r.id: r for r in written}
    assert len(written) == 2
    assert by_id["flaky"].error.code == "UNAVAILABLE"
    assert not by_id["fine"].HasField("error")
    assert retried == 2
    assert sum(batch.count("flaky") for batch in client.calls) == 3


async def test_errors_that_would_repeat_are_not_retried() -> None:
    def script(_call: int, ids: list[str]):
        return [_failed(i, "INVALID_ARGUMENT") for i in ids], None

    client = FakeClient(script)
    written, retried = await _run([client], ["bad"])
    assert [r.error.code for r in written] == ["INVALID_ARGUMENT"]
    assert retried == 0
    assert client.calls == [["bad"]]


async def test_request_rejected_over_one_feature_fails_only_that_one() -> None:
    def script(_call: int, ids: list[str]):
        if "bad" in ids:
            index = ids.index("bad")
            error = _rpc_error(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"features[{index}].activations[0].tokens is required and must not be empty",
            )
            return [], error
        return [_ok(i) for i in ids], None

    written, retried = await _run([FakeClient(script)], ["x", "bad", "y"], streams=1)
    by_id = {r.id: r for r in written}
    assert sorted(by_id) == ["bad", "x", "y"]
    assert by_id["bad"].error.code == "INVALID_ARGUMENT"
    assert by_id["bad"].error.message.startswith("activations[0].tokens is required")
    assert not by_id["x"].HasField("error")
    assert retried == 0


@pytest.mark.parametrize(
    "code", [grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.INVALID_ARGUMENT]
)
async def test_fatal_stream_errors_stop_the_run(code: grpc.StatusCode) -> None:
    def script(_call: int, _ids: list[str]):
        return [], _rpc_error(code, "no")

    with pytest.raises(bulk.FatalRunError) as caught:
        await _run([FakeClient(script)], ["a", "b", "c", "d"])
    assert caught.value.code == code


async def test_a_down_server_is_skipped_while_cooling_down() -> None:
    def down(_call: int, _ids: list[str]):
        return [], _rpc_error(grpc.StatusCode.UNAVAILABLE, "connection refused")

    dead, alive = FakeClient(down), FakeClient(_all_ok)
    written, _ = await _run([dead, alive], [f"f{i}" for i in range(6)], streams=2, retries=3)
    assert len(written) == 6
    assert not any(r.HasField("error") for r in written)
    assert len(dead.calls) <= 2  # after its first failures it is left alone


class MethodsClient:
    """Answers ListMethods with ``answer`` (or raises it)."""

    def __init__(self, answer: pb.ListMethodsResponse | Exception) -> None:
        self.answer = answer

    async def list_methods(self, *, timeout=None, request_id=None) -> pb.ListMethodsResponse:
        if isinstance(self.answer, Exception):
            raise self.answer
        return self.answer


async def test_preflight_leaves_out_unreachable_servers() -> None:
    methods = pb.ListMethodsResponse(providers=["openrouter"])
    down = _rpc_error(grpc.StatusCode.UNAVAILABLE, "connection refused")
    servers = [
        bulk.Server("up", MethodsClient(methods)),  # type: ignore[arg-type]
        bulk.Server("down", MethodsClient(down)),  # type: ignore[arg-type]
    ]
    checked: list[pb.ListMethodsResponse] = []
    left_out: list[str] = []
    alive = await bulk.preflight(
        servers, check=checked.append, on_unreachable=lambda s, message: left_out.append(message)
    )
    assert [s.address for s in alive] == ["up"]
    assert checked == [methods]
    assert left_out == ["ListMethods on down failed: UNAVAILABLE: connection refused"]

    with pytest.raises(bulk.FatalRunError, match="no server is reachable"):
        await bulk.preflight(servers[1:])
    denied = bulk.Server(
        "denied",
        MethodsClient(_rpc_error(grpc.StatusCode.UNAUTHENTICATED, "bad secret")),  # type: ignore[arg-type]
    )
    with pytest.raises(bulk.FatalRunError) as caught:
        await bulk.preflight([servers[0], denied])
    assert caught.value.code == grpc.StatusCode.UNAUTHENTICATED
