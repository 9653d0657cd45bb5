"""What the commands read: records files, JSON flags, the LLM options (the features file of
``run`` is read by :mod:`autointerp_grpc.cli.features`; re-exported here)."""

from __future__ import annotations

import argparse
import json
import os
from dataclasses import dataclass, field
from typing import Any, TypeVar

from google.protobuf import json_format
from google.protobuf.message import Message

from autointerp_grpc.cli import jsonread
from autointerp_grpc.cli.errors import UsageError
from autointerp_grpc.cli.features import (
    INPUT_FORMATS,
    FeatureInput,
    read_feature_input,
    read_features,
)
from autointerp_grpc.cli.jsonread import read_document
from autointerp_grpc.gen.autointerp.v1 import autointerp_pb2 as pb

__all__ = [
    "INPUT_FORMATS",
    "FeatureInput",
    "RecordSet",
    "UsageError",
    "api_key",
    "llm_options",
    "parse_json_arg",
    "read_feature_input",
    "read_features",
    "read_records",
    "set_params",
]

M = TypeVar("M", bound=Message)

API_KEY_ENVS = ("AUTOINTERP_API_KEY", "OPENROUTER_API_KEY")


# ---- flags ---------------------------------------------------------------------------------


def parse_json_arg(text: str | None, flag: str) -> dict[str, Any] | None:
    """The JSON object given to ``flag`` (None when the flag was not given)."""
    if text is None:
        return None
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise UsageError(f"{flag} is not valid JSON: {exc.msg}") from None
    if not isinstance(value, dict):
        raise UsageError(f"{flag} must be a JSON object")
    return value


def _params_field(message_cls: type[Message], method: str, flag: str) -> str:
    """The ``<method>_params`` member of ``message_cls``'s params oneof, or a UsageError."""
    name = f"{method}_params"
    if name not in message_cls.DESCRIPTOR.fields_by_name:
        raise UsageError(f"{flag} given, but method {method!r} takes no parameters")
    return name


def set_params(message: Message, method: str, params: dict[str, Any] | None, flag: str) -> None:
    """Set ``message``'s ``<method>_params`` from the JSON object given to ``flag``."""
    if params is None:
        return
    name = _params_field(type(message), method, flag)
    try:
        json_format.ParseDict(params, getattr(message, name))
    except json_format.ParseError as exc:
        raise UsageError(f"{flag}: {exc}") from None


def api_key(args: argparse.Namespace, needed: bool) -> str | None:
    """``--api-key``, else the first of the key variables that is set."""
    key = args.api_key or next((os.environ[e] for e in API_KEY_ENVS if os.environ.get(e)), None)
    if needed and not key:
        raise UsageError(
            "an LLM provider key is needed: pass --api-key or set "
            + " or ".join(f"${e}" for e in API_KEY_ENVS)
        )
    return key


def llm_options(args: argparse.Namespace, key: str) -> pb.LlmOptions:
    """The LLM options from the ``--model``, ``--provider``, ``--max-tokens`` and
    ``--reasoning-effort`` flags."""
    llm = pb.LlmOptions(model=args.model, api_key=key, provider=args.provider or "")
    if args.max_tokens is not None:
        llm.max_tokens = args.max_tokens
    if args.reasoning_effort:
        llm.reasoning_effort = args.reasoning_effort
    return llm


# ---- records files (explain, score) --------------------------------------------------------


def _records(value: Any, where: str, record_cls: type[M] = pb.Activation) -> list[M]:
    if not isinstance(value, list):
        raise UsageError(f"{where}: expected a list of records")
    out = []
    for i, item in enumerate(value):
        try:
            out.append(json_format.ParseDict(item, record_cls()))
        except (json_format.ParseError, AttributeError, TypeError) as exc:
            raise UsageError(f"{where}[{i}]: {exc}") from None
    return out


@dataclass
class RecordSet:
    """Records read from a file: activating, non-activating and top positive logits."""

    activations: list[pb.Activation] = field(default_factory=list)
    non_activating: list[pb.Activation] = field(default_factory=list)
    top_positive_logits: list[str] = field(default_factory=list)
    attention: list[pb.AttentionRecord] = field(default_factory=list)
    """Attention records (``{tokens, fromIndex, weights}``) for oai_attention_head."""


def _read_json(path: str, max_bytes: int) -> Any:
    """The JSON document in ``path``, at most ``max_bytes``; a list's items each checked and
    named by the line they start on."""
    text = read_document(path, max_bytes)
    try:
        value = jsonread.loads(text, path)
    except json.JSONDecodeError as exc:
        raise UsageError(f"{path}: not valid JSON (line {exc.lineno}: {exc.msg})") from None
    except UsageError:
        if not text.lstrip().startswith("["):
            raise
        # Name the line of the item that breaks the rule.
        for _ in jsonread.array_items(text, path):
            pass
        raise
    return value


def read_records(
    path: str,
    non_activating_path: str | None = None,
    max_bytes: int = jsonread.DEFAULT_MAX_LINE_BYTES,
) -> RecordSet:
    """Read ``--input`` (and ``--non-activating``), each at most ``max_bytes``.

    A JSON list of records is split by the service's rule: values summing above 0 are
    activating, the rest non-activating. A JSON object is taken as given: ``activations``,
    ``nonActivating``/``non_activating``, ``topPositiveLogits``/``top_positive_logits`` and
    ``attention`` (attention records, for oai_attention_head).
    """
    data = _read_json(path, max_bytes)
    out = RecordSet()
    if isinstance(data, list):
        for record in _records(data, path):
            (out.activations if sum(record.values) > 0 else out.non_activating).append(record)
    elif isinstance(data, dict):
        out.activations = _records(data.get("activations", []), f"{path}: activations")
        quiet = data.get("nonActivating", data.get("non_activating", []))
        out.non_activating = _records(quiet, f"{path}: nonActivating")
        logits = data.get("topPositiveLogits", data.get("top_positive_logits", []))
        if not isinstance(logits, list) or not all(isinstance(t, str) for t in logits):
            raise UsageError(f"{path}: topPositiveLogits must be a list of strings")
        out.top_positive_logits = logits
        out.attention = _records(
            data.get("attention", []), f"{path}: attention", pb.AttentionRecord
        )
    else:
        raise UsageError(f"{path}: expected a list of records or an object with activations")
    if non_activating_path is not None:
        extra = _read_json(non_activating_path, max_bytes)
        out.non_activating += _records(extra, non_activating_path)
    return out
