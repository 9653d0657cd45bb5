"""`autointerp run --shard I/N`: the shares are deterministic and together hold every feature
exactly once; the Indexed Job manifest (deploy/shards-job.yaml) runs N shards of that CLI
against the Service, consistently with the other manifests."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from autointerp_grpc.cli.commands import build_parser
from autointerp_grpc.cli.inputs import UsageError
from autointerp_grpc.cli.shard import COUNT_ENV, INDEX_ENV, parse_shard, select, shard_of
from autointerp_grpc.gen.autointerp.v1 import autointerp_pb2 as pb

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"


def _features(n: int) -> list[pb.Feature]:
    return [pb.Feature(id=f"layer3/{i}") for i in range(n)]


@pytest.mark.parametrize("count", [1, 2, 3, 7, 64])
def test_shards_hold_every_feature_exactly_once(count: int) -> None:
    features = _features(1000)
    shares = [select(features, (i, count)) for i in range(count)]
    ids = [f.id for share in shares for f in share]
    assert sorted(ids) == sorted(f.id for f in features)
    assert len(ids) == len(set(ids))
    if 1 < count <= 7:  # a fair share each (>= 140 expected): within 25% of 1000 / count
        assert all(abs(len(s) - 1000 / count) < 0.25 * 1000 / count for s in shares)
    # Input order is kept within a shard, and a feature's shard ignores its position.
    for share in shares:
        positions = [features.index(f) for f in share]
        assert positions == sorted(positions)
    assert shard_of("layer3/5", count) == shard_of("layer3/5", count)
    assert select(features, None) == features


def test_shard_from_the_flag_or_the_indexed_job() -> None:
    assert parse_shard("2/5", {}) == (2, 5)
    assert parse_shard(None, {}) is None
    assert parse_shard(None, {INDEX_ENV: "3", COUNT_ENV: "4"}) == (3, 4)
    assert parse_shard("0/1", {INDEX_ENV: "3", COUNT_ENV: "4"}) == (0, 1)  # the flag wins


@pytest.mark.parametrize(
    ("text", "environ", "message"),
    [
        ("5/5", {}, "0 <= I < N"),
        ("-1/5", {}, "0 <= I < N"),
        ("1/0", {}, "N at least 1"),
        ("1", {}, "must be I/N"),
        ("a/b", {}, "must be I/N"),
        (None, {INDEX_ENV: "1"}, COUNT_ENV),
        (None, {INDEX_ENV: "4", COUNT_ENV: "4"}, f"${INDEX_ENV}/${COUNT_ENV}"),
    ],
)
def test_bad_shards_are_usage_errors(
    text: str | None, environ: dict[str, str], message: str
) -> None:
    with pytest.raises(UsageError, match=re.escape(message)):
        parse_shard(text, environ)


def _load(name: str) -> dict:
    return yaml.safe_load((DEPLOY / name).read_text())


def test_the_indexed_job_runs_n_shards_against_the_service() -> None:
    job = _load("shards-job.yaml")
    assert job["apiVersion"] == "batch/v1" and job["kind"] == "Job"
    spec = job["spec"]
    assert spec["completionMode"] == "Indexed"
    assert 1 <= spec["parallelism"] <= spec["completions"]
    pod = spec["template"]["spec"]
    assert pod["restartPolicy"] == "Never"
    (container,) = pod["containers"]
    env = {e["name"]: e for e in container["env"]}
    assert int(env[COUNT_ENV]["value"]) == spec["completions"]

    # The args are a valid `autointerp run` command line; each shard writes its own file.
    assert container["command"] == ["autointerp"]
    args = build_parser().parse_args(container["args"])
    assert args.command == "run" and args.shard is None  # the index comes from the Job
    assert "$(JOB_COMPLETION_INDEX)" in args.output

    # It calls the Service's gRPC port, with the server's secret from the server's Secret.
    service = next(
        d
        for d in yaml.safe_load_all((DEPLOY / "service.yaml").read_text())
        if d and d["kind"] == "Service"
    )
    grpc_port = next(p["port"] for p in service["spec"]["ports"] if p["name"] == "grpc")
    assert args.server == f"{service['metadata']['name']}:{grpc_port}"
    secret = _load("secret.example.yaml")
    ref = env["SECRET"]["valueFrom"]["secretKeyRef"]
    assert ref["name"] == secret["metadata"]["name"] and ref["key"] in secret["stringData"]
    assert "value" not in env["AUTOINTERP_API_KEY"]  # the provider key from a Secret only

    # Same namespace, image and hardening as the Deployment; not applied by kustomize.
    deployment = _load("deployment.yaml")
    assert job["metadata"]["namespace"] == deployment["metadata"]["namespace"]
    server = deployment["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == server["image"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert "shards-job.yaml" not in _load("kustomization.yaml")["resources"]
