"""Required fields (from the proto's field_behavior) and activation-record rules."""

from __future__ import annotations

import math

import pytest

from autointerp_grpc.errors import InvalidArgument
from autointerp_grpc.gen.autointerp.v1 import autointerp_pb2 as pb
from autointerp_grpc.validation import Limits, check_activations, check_required


def _explain(**overrides) -> pb.ExplainDefaultRequest:
    fields = {
        "activations": [pb.Activation(tokens=["a"], values=[1.0])],
        "openrouter_key": "k",
        "model": "m",
    }
    fields.update(overrides)
    return pb.ExplainDefaultRequest(**fields)


def test_complete_request_passes() -> None:
    check_required(_explain())


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"activations": []}, "activations is required"),
        ({"openrouter_key": ""}, "openrouter_key is required"),
        ({"model": "   "}, "model is required"),
        (
            {"activations": [pb.Activation(tokens=[], values=[])]},
            "activations[0].tokens is required",
        ),
    ],
)
def test_missing_required_field_is_named(overrides, message: str) -> None:
    with pytest.raises(InvalidArgument, match=message.replace("[", r"\[").replace("]", r"\]")):
        check_required(_explain(**overrides))


def test_enum_zero_value_is_missing() -> None:
    request = pb.ScoreFuzzDetectionRequest(
        activations=[pb.Activation(tokens=["a"], values=[1.0])],
        explanation="e",
        openrouter_key="k",
        model="m",
    )
    with pytest.raises(InvalidArgument, match="type is required: one of FUZZ, DETECTION"):
        check_required(request)


@pytest.mark.parametrize(
    ("records", "message"),
    [
        ([], "at least one record"),
        (
            [pb.Activation(tokens=["a", "b"], values=[1.0])],
            r"activations\[0\] must have one value per token \(2 tokens, 1 values\)",
        ),
        (
            [pb.Activation(tokens=["a"], values=[math.nan])],
            r"activations\[0\].values\[0\] must be a finite number",
        ),
        (
            [
                pb.Activation(tokens=["a"], values=[1.0]),
                pb.Activation(tokens=["a"], values=[math.inf]),
            ],
            r"activations\[1\].values\[0\]",
        ),
        ([pb.Activation(tokens=["a"], values=[1.0])] * 3, "3 records; the limit is 2"),
        ([pb.Activation(tokens=["a"] * 5, values=[0.0] * 5)], "5 tokens; the limit is 4"),
    ],
)
def test_activation_rules(records, message: str) -> None:
    with pytest.raises(InvalidArgument, match=message):
        check_activations(records, Limits(max_records=2, max_tokens_per_record=4))


@pytest.mark.parametrize("key", ["sk-ü-key", "sk\nkey", "sk\tkey"])
def test_key_must_be_header_safe_and_is_never_echoed(key: str) -> None:
    with pytest.raises(InvalidArgument, match="openrouter_key must be printable ASCII") as info:
        check_required(_explain(openrouter_key=key))
    assert key not in info.value.message


def test_every_limit_is_a_setting_read_from_the_environment(monkeypatch) -> None:
    """Limits are declared once, as the settings group ``limits.*`` (max_top_logits was not
    configurable when the limits were copied field by field): each is read from its
    environment variable, under its current name and its former one."""
    from autointerp_grpc.config import FORMER_NAMES, Settings, env_name, former_env_name

    names = list(Limits.model_fields)
    assert "max_top_logits" in names
    assert Settings().limits == Limits()
    former = {path: old for old, path in FORMER_NAMES.items()}
    for i, name in enumerate(names):
        value = getattr(Limits(), name) + 1
        variable = (
            env_name(f"limits.{name}") if i % 2 else former_env_name(former[f"limits.{name}"])
        )
        monkeypatch.setenv(variable, str(value))
    configured = {name: getattr(Limits(), name) + 1 for name in names}
    assert Settings().limits == Limits(**configured)
