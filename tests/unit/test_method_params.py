"""Typed method parameters and specs: the generated classes (gen/params.py) match the proto,
:func:`~autointerp_grpc.methods.params.resolve` builds them, and the registry refuses a spec
whose parameters class is not its request's."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
import typing
from pathlib import Path
from typing import Any

import pytest
from google.protobuf.descriptor import Descriptor, FieldDescriptor

from autointerp_grpc.descriptors import descriptor_of
from autointerp_grpc.errors import InvalidArgument
from autointerp_grpc.gen import params as gen_params
from autointerp_grpc.gen.autointerp.v1 import autointerp_pb2 as pb
from autointerp_grpc.handlers.lookup import (
    ResolvedExplainer,
    ResolvedScorer,
    default_method,
    resolve_explainer,
    resolve_scorer,
)
from autointerp_grpc.methods import params as method_params
from autointerp_grpc.methods.registry import EXPLAINER_REGISTRY, SCORER_REGISTRY, by_name
from autointerp_grpc.methods.scorer_specs import SCORERS
from autointerp_grpc.methods.spec import ExplainerSpec, MethodSpec, ScorerSpec

SPECS: list[MethodSpec[Any]] = [*EXPLAINER_REGISTRY.values(), *SCORER_REGISTRY.values()]
PY_TYPES = {
    FieldDescriptor.TYPE_DOUBLE: float,
    FieldDescriptor.TYPE_INT32: int,
    FieldDescriptor.TYPE_BOOL: bool,
    FieldDescriptor.TYPE_STRING: str,
}
# Every parameters class with the descriptor of the message it was generated from.
CLASSES: list[tuple[type, Descriptor]] = [
    *((s.params_type, s.params_descriptor) for s in SPECS),
    (gen_params.BulkOptions, descriptor_of(pb.BulkOptions)),
]


def _proto_default(field: FieldDescriptor) -> object:
    """What the proto says a field's value is when it is not sent."""
    text = method_params.spec_of(field).default_value
    if text:
        return json.loads(text)
    if field.has_presence:
        return None
    return {float: 0.0, int: 0, bool: False, str: ""}[PY_TYPES[field.type]]


@pytest.mark.parametrize(("cls", "descriptor"), CLASSES, ids=lambda v: getattr(v, "__name__", ""))
def test_generated_classes_match_the_proto(cls: type, descriptor: Descriptor) -> None:
    """Same fields in the same order, each typed as the proto types it (a Literal of its
    allowed values for a string with choices), defaulting to its (parameter).default_value;
    frozen and keyword-only."""
    assert cls.__name__ == descriptor.name
    assert gen_params.BY_MESSAGE[descriptor.full_name] is cls
    fields = dataclasses.fields(cls)
    assert [f.name for f in fields] == [f.name for f in descriptor.fields]
    hints = typing.get_type_hints(cls)
    for field in descriptor.fields:
        py_type = PY_TYPES[field.type]
        allowed = list(method_params.spec_of(field).allowed)
        expected: object = typing.Literal[tuple(allowed)] if allowed else py_type
        default = _proto_default(field)
        if default is None:
            expected = expected | None  # type: ignore[operator]
        assert hints[field.name] == expected, field.full_name
        value = getattr(cls(), field.name)
        assert value == default and type(value) is type(default), field.full_name
    assert cls.__dataclass_params__.frozen  # type: ignore[attr-defined]
    if fields:
        with pytest.raises(TypeError):
            cls(0)  # keyword-only: a value always names its parameter
        with pytest.raises(dataclasses.FrozenInstanceError):
            setattr(cls(), fields[0].name, getattr(cls(), fields[0].name))


def test_every_parameters_message_has_its_class() -> None:
    """Each method's request oneof member and BulkOptions, nothing else."""
    messages = {s.params_descriptor.full_name for s in SPECS} | {"autointerp.v1.BulkOptions"}
    assert set(gen_params.BY_MESSAGE) == messages


@pytest.mark.parametrize(("cls", "descriptor"), CLASSES, ids=lambda v: getattr(v, "__name__", ""))
def test_resolve_of_nothing_sent_is_the_defaults(cls: type, descriptor: Descriptor) -> None:
    empty = getattr(pb, descriptor.name)()
    for message in (None, empty):
        resolved = method_params.resolve(message, descriptor, cls, "p")
        assert type(resolved) is cls
        assert resolved == cls()


def test_resolve_keeps_sent_values_typed_and_checks_them() -> None:
    request = pb.ScoreRequest(
        method="simulation",
        simulation_params=pb.SimulationScorerParams(structured_output=False, mode="json"),
    )
    method = resolve_scorer(request)
    assert method.params == gen_params.SimulationScorerParams(structured_output=False, mode="json")
    request = pb.ExplainRequest(
        method="contrastive", contrastive_params=pb.ContrastiveExplainerParams(max_examples=3)
    )
    params = resolve_explainer(request).params
    assert params == gen_params.ContrastiveExplainerParams(max_examples=3)
    assert (params.threshold, params.max_non_activating) == (0.6, 5)  # the rest: defaults
    with pytest.raises(InvalidArgument, match=r"contrastiveParams\.maxExamples must be at most"):
        resolve_explainer(
            pb.ExplainRequest(
                method="contrastive",
                contrastive_params=pb.ContrastiveExplainerParams(max_examples=201),
            )
        )
    with pytest.raises(InvalidArgument, match=r"simulationParams\.mode must be one of"):
        resolve_scorer(
            pb.ScoreRequest(
                method="simulation", simulation_params=pb.SimulationScorerParams(mode="guess")
            )
        )


def test_default_method_overrides_by_name_and_refuses_a_misspelt_one() -> None:
    method = default_method(SCORER_REGISTRY, "fuzz", examples_per_prompt=7)
    assert isinstance(method, ResolvedScorer)
    assert method.params == gen_params.ClassifierScorerParams(examples_per_prompt=7)
    explainer = default_method(EXPLAINER_REGISTRY, "default", threshold=0.5)
    assert isinstance(explainer, ResolvedExplainer)
    assert explainer.params == gen_params.DefaultExplainerParams(threshold=0.5)
    with pytest.raises(TypeError, match="examples_per_promt"):
        default_method(SCORER_REGISTRY, "fuzz", examples_per_promt=7)


def test_the_kind_comes_from_the_spec_type() -> None:
    for spec in EXPLAINER_REGISTRY.values():
        assert isinstance(spec, ExplainerSpec) and spec.kind == pb.METHOD_KIND_EXPLAINER
        assert spec.request_descriptor.full_name == "autointerp.v1.ExplainRequest"
    for spec in SCORER_REGISTRY.values():
        assert isinstance(spec, ScorerSpec) and spec.kind == pb.METHOD_KIND_SCORER
        assert spec.request_descriptor.full_name == "autointerp.v1.ScoreRequest"


def test_the_registry_refuses_a_spec_with_another_methods_parameters() -> None:
    """A spec whose params_type is not the class of its oneof member's message, or that
    shares a name, fails at import (here: at by_name), not on the first request."""
    fuzz = next(s for s in SCORERS if s.name == "fuzz")
    wrong = dataclasses.replace(fuzz, params_type=gen_params.RecallScorerParams)  # type: ignore[arg-type]
    with pytest.raises(RuntimeError, match="params_type is RecallScorerParams"):
        by_name([wrong])
    with pytest.raises(RuntimeError, match="two methods are named fuzz"):
        by_name([fuzz, fuzz])
    unknown = dataclasses.replace(fuzz, name="fuzzy")
    with pytest.raises(RuntimeError, match="no oneof member fuzzy_params"):
        by_name([unknown])


PYRIGHT_SNIPPET = """
from autointerp_grpc.gen.params import ClassifierScorerParams, RecallScorerParams
from autointerp_grpc.methods.spec import Metric, Needs, ScoreContext, ScorerSpec, ScoreResult


async def run(ctx: ScoreContext[ClassifierScorerParams]) -> ScoreResult:
    ctx.params.seed + ctx.params.examples_per_prompt  # fine
    ctx.params.sead  # misspelt read
    raise NotImplementedError


ClassifierScorerParams(examples_per_promt=3)  # misspelt parameter
ClassifierScorerParams(seed=3)  # fine
ScorerSpec("ok", "", Needs(), ClassifierScorerParams, run, Metric("m", 0, 1, 0.5))
ScorerSpec("bad", "", Needs(), RecallScorerParams, run, Metric("m", 0, 1, 0.5))  # another's
"""


def test_pyright_sees_a_misspelt_parameter_and_a_spec_of_another_methods_parameters(
    tmp_path: Path,
) -> None:
    """What the typed classes are for: pyright (the project's `make typecheck`) reports a
    misspelt parameter read or keyword, and a scorer whose run takes another method's
    parameters, on exactly those lines."""
    pyright = Path(sys.executable).with_name("pyright")
    if not pyright.exists():
        pytest.skip("pyright (the dev extra) is not installed")
    root = Path(__file__).resolve().parents[2]
    (tmp_path / "snippet.py").write_text(PYRIGHT_SNIPPET)
    (tmp_path / "pyrightconfig.json").write_text(
        json.dumps({"extraPaths": [str(root)], "pythonVersion": "3.11"})
    )
    result = subprocess.run(
        [str(pyright), "--pythonpath", sys.executable, "--outputjson", "snippet.py"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,  # pyright exits 1 on the errors this test expects
    )
    report = json.loads(result.stdout)
    found = sorted(
        (d["range"]["start"]["line"] + 1, d["rule"])
        for d in report["generalDiagnostics"]
        if d["severity"] == "error"
    )
    lines = PYRIGHT_SNIPPET.splitlines()
    expected = sorted(
        (lines.index(next(line for line in lines if marker in line)) + 1, rule)
        for marker, rule in (
            ("# misspelt read", "reportAttributeAccessIssue"),
            ("# misspelt parameter", "reportCallIssue"),
            ("# another's", "reportArgumentType"),
        )
    )
    assert found == expected, report["generalDiagnostics"]
