"""``autointerp run --input``: the features file, in our JSONL or Neuronpedia's formats."""

from __future__ import annotations

import itertools
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from google.protobuf import json_format

from autointerp_grpc.cli.errors import UsageError
from autointerp_grpc.cli.jsonread import (
    CAP_FLAG,
    DEFAULT_MAX_LINE_BYTES,
    array_items,
    loads,
    read_lines,
)
from autointerp_grpc.gen.autointerp.v1 import autointerp_pb2 as pb

# ---- the features file (run) ---------------------------------------------------------------
#
# ``run --input`` reads three formats, told apart by the first object in the file (or chosen
# with ``--input-format``); examples/README.md documents them and their mapping:
#
# - ``autointerp``: one ``Feature`` (proto3 JSON) per line.
# - ``neuronpedia-feature``: Neuronpedia's feature object, as its API's
#   ``GET /api/feature/{modelId}/{layer}/{index}`` returns it (the Prisma ``Neuron`` with its
#   ``activations`` and ``explanations``: apps/webapp/app/api/feature/[modelId]/[layer]/[index]/
#   route.ts, apps/webapp/lib/db/neuron.ts ``getNeuronOptimized``, apps/webapp/prisma/
#   schema.prisma ``model Neuron`` / ``model Activation``): one object, a JSON list of them, or
#   one per line.
# - ``neuronpedia-export``: the rows of Neuronpedia's public dataset exports
#   (``v1/<modelId>/<source>/{features,activations,explanations}/batch-N.jsonl.gz``, written by
#   utils/neuronpedia-utils/neuronpedia_utils/export-data.py and
#   convert-saedashboard-to-neuronpedia-export.py, read back by apps/webapp/app/api/admin/
#   import/route.ts): ``Activation`` rows (one record each), ``Neuron`` rows (``pos_str``) and
#   ``Explanation`` rows, joined on ``modelId``/``layer``/``index``. A file (gzipped or not) or
#   a directory holding ``activations/`` and ``features/``.

INPUT_FORMATS = ("autointerp", "neuronpedia-feature", "neuronpedia-export")
_NP_KEYS = ("modelId", "layer", "index")
_EXPORT_TABLES = ("activations", "features")


@dataclass
class FeatureInput:
    """What ``--input`` held: the features, the format they were read in, and notes for the
    user (what was ignored or joined)."""

    features: list[pb.Feature]
    format: str
    notes: list[str] = field(default_factory=list)


def _objects(path: str, max_line_bytes: int) -> Iterator[tuple[int, Any]]:
    """(line number, parsed value) for each item of the input, read as a stream: a JSON Lines
    file, or one JSON document (an object, or a list of objects: one item each, with its
    line) read whole, up to ``max_line_bytes``."""
    # Lines end at "\n" only: str.splitlines would also split inside a token holding U+2028.
    lines = read_lines(path, max_line_bytes)
    before: list[str] = []  # the lines up to the first that is not blank
    first: tuple[int, str] | None = None
    for number, line in lines:
        before.append(line)
        if line.strip():
            first = (number, line)
            break
    if first is None:
        return
    try:
        value = loads(first[1], f"{path}:{first[0]}")
    except json.JSONDecodeError:
        # Not one object per line: perhaps one pretty-printed document, read whole.
        yield from _document(path, before, lines, max_line_bytes)
        return
    rest = ((n, line) for n, line in lines if line.strip())
    second = next(rest, None)
    if second is None and isinstance(value, list):  # a one-line JSON array
        yield from array_items(first[1], path, first[0])
        return
    yield first[0], value
    for number, line in itertools.chain([second] if second else [], rest):
        try:
            yield number, loads(line, f"{path}:{number}")
        except json.JSONDecodeError as exc:
            raise UsageError(f"{path}:{number}: not valid JSON ({exc.msg})") from None


def _document(
    path: str, before: list[str], lines: Iterator[tuple[int, str]], max_bytes: int
) -> Iterator[tuple[int, Any]]:
    """The items of one JSON document spread over lines (``before``, then ``lines``)."""
    size = sum(len(line) + 1 for line in before)
    parts = list(before)
    for _, line in lines:
        size += len(line) + 1
        if size > max_bytes:
            raise UsageError(
                f"{path}: a JSON document spread over several lines is read whole, and this "
                f"one is over {max_bytes} bytes ({CAP_FLAG})"
            )
        parts.append(line)
    text = "\n".join(parts)
    try:
        document = loads(text, path)
    except json.JSONDecodeError as exc:
        raise UsageError(f"{path}:{exc.lineno}: not valid JSON ({exc.msg})") from None
    if isinstance(document, list):
        yield from array_items(text, path)
    else:
        yield len(before), document


def _kind(value: Any) -> str:
    """The format one input object is in."""
    if isinstance(value, dict) and all(k in value for k in _NP_KEYS):
        return "neuronpedia-feature" if "activations" in value else "neuronpedia-export"
    return "autointerp"


def _np_id(value: dict[str, Any], where: str) -> str:
    parts = []
    for key in _NP_KEYS:
        part = value.get(key)
        if isinstance(part, bool) or not isinstance(part, (str, int)) or str(part).strip() == "":
            raise UsageError(f"{where}: {key!r} must be a non-empty string or an integer")
        parts.append(str(part))
    return "/".join(parts)


def _np_record(value: Any, where: str) -> pb.Activation:
    """A Neuronpedia activation (``tokens``, ``values``; its other columns ignored)."""
    if not isinstance(value, dict):
        raise UsageError(f"{where}: expected an activation object with tokens and values")
    tokens, values = value.get("tokens"), value.get("values")
    if not isinstance(tokens, list) or not all(isinstance(t, str) for t in tokens):
        raise UsageError(f"{where}: 'tokens' must be a list of strings")
    if not isinstance(values, list) or not all(
        isinstance(v, (int, float)) and not isinstance(v, bool) for v in values
    ):
        raise UsageError(f"{where}: 'values' must be a list of numbers")
    return pb.Activation(tokens=tokens, values=values)


def _np_attention(value: Any, where: str) -> pb.AttentionRecord | None:
    """A Neuronpedia activation's attention record, where it has one: ``dfaTargetIndex`` (the
    token attended from) and ``dfaValues`` (direct feature attribution per token), the inputs
    of Neuronpedia's oai_attention-head explainer (apps/webapp/lib/external/
    autointerp-shared.ts ``makeOAIattentionActivation``)."""
    if not isinstance(value, dict):
        return None
    weights, target = value.get("dfaValues"), value.get("dfaTargetIndex")
    if not weights or target is None:
        return None
    if not isinstance(weights, list) or not all(
        isinstance(v, (int, float)) and not isinstance(v, bool) for v in weights
    ):
        raise UsageError(f"{where}: 'dfaValues' must be a list of numbers")
    if not isinstance(target, int) or isinstance(target, bool):
        raise UsageError(f"{where}: 'dfaTargetIndex' must be an integer")
    return pb.AttentionRecord(tokens=value.get("tokens") or [], from_index=target, weights=weights)


def _np_logits(value: dict[str, Any], where: str) -> list[str]:
    logits = value.get("pos_str")
    if logits is None:
        return []
    if not isinstance(logits, list) or not all(isinstance(t, str) for t in logits):
        raise UsageError(f"{where}: 'pos_str' must be a list of strings")
    return logits


def _np_feature(
    feature_id: str,
    records: list[pb.Activation],
    logits: list[str],
    attention: list[pb.AttentionRecord] | None = None,
) -> pb.Feature:
    """The feature, its records split by the service's rule (values summing above 0 are
    activating; Neuronpedia's own autointerp server splits them the same way), identical
    records kept once, and its attention records (activations with DFA values) as given."""
    feature = pb.Feature(id=feature_id, top_positive_logits=logits, attention=attention or [])
    seen: set[tuple[tuple[str, ...], tuple[float, ...]]] = set()
    for record in records:
        key = (tuple(record.tokens), tuple(record.values))
        if key in seen:
            continue
        seen.add(key)
        target = feature.activations if sum(record.values) > 0 else feature.non_activating
        target.append(record)
    return feature


def _wrong_format(where: str, value: Any, expected: str) -> UsageError:
    found = _kind(value) if isinstance(value, dict) else "not a JSON object"
    return UsageError(
        f"{where}: expected {expected}, found {found}"
        + (" (see --input-format)" if isinstance(value, dict) else "")
    )


def _read_autointerp(items: Iterator[tuple[int, Any]], path: str) -> FeatureInput:
    features: list[pb.Feature] = []
    seen: dict[str, int] = {}
    for number, data in items:
        if not isinstance(data, dict):
            raise UsageError(f"{path}:{number}: expected a JSON object (one feature)")
        if _kind(data) != "autointerp":
            raise _wrong_format(f"{path}:{number}", data, "an autointerp feature object")
        if isinstance(data.get("id"), int) and not isinstance(data.get("id"), bool):
            data["id"] = str(data["id"])
        try:
            feature = json_format.ParseDict(data, pb.Feature())
        except json_format.ParseError as exc:
            raise UsageError(f"{path}:{number}: {exc}") from None
        if not feature.id.strip():
            raise UsageError(f"{path}:{number}: the feature has no id")
        if feature.id in seen:
            raise UsageError(
                f"{path}:{number}: id {feature.id!r} already used on line {seen[feature.id]}"
            )
        seen[feature.id] = number
        features.append(feature)
    return FeatureInput(features, "autointerp")


def _read_np_features(items: Iterator[tuple[int, Any]], path: str) -> FeatureInput:
    features: list[pb.Feature] = []
    seen: dict[str, int] = {}
    explanations = 0
    for number, data in items:
        where = f"{path}:{number}"
        if not isinstance(data, dict) or _kind(data) != "neuronpedia-feature":
            raise _wrong_format(
                where, data, "a Neuronpedia feature object (modelId, layer, index, activations)"
            )
        feature_id = _np_id(data, where)
        if feature_id in seen:
            raise UsageError(f"{where}: id {feature_id!r} already used on line {seen[feature_id]}")
        seen[feature_id] = number
        activations = data["activations"]
        if not isinstance(activations, list):
            raise UsageError(f"{where}: 'activations' must be a list")
        records = [_np_record(a, f"{where}: activations[{i}]") for i, a in enumerate(activations)]
        attention = [
            record
            for i, a in enumerate(activations)
            if (record := _np_attention(a, f"{where}: activations[{i}]")) is not None
        ]
        features.append(_np_feature(feature_id, records, _np_logits(data, where), attention))
        if isinstance(data.get("explanations"), list):
            explanations += len(data["explanations"])
    notes = []
    if explanations:
        notes.append(f"{explanations} existing Neuronpedia explanation(s) ignored")
    return FeatureInput(features, "neuronpedia-feature", notes)


@dataclass
class _Export:
    """Neuronpedia export rows joined by feature, in the order features first appear."""

    records: dict[str, list[pb.Activation]] = field(default_factory=dict)
    attention: dict[str, list[pb.AttentionRecord]] = field(default_factory=dict)
    logits: dict[str, list[str]] = field(default_factory=dict)
    explanations: int = 0

    def add(self, number: int, data: Any, path: str) -> None:
        where = f"{path}:{number}"
        if not isinstance(data, dict) or _kind(data) != "neuronpedia-export":
            raise _wrong_format(where, data, "a Neuronpedia export row (modelId, layer, index)")
        feature_id = _np_id(data, where)
        if "tokens" in data or "values" in data:  # an Activation row
            self.records.setdefault(feature_id, []).append(_np_record(data, where))
            if (attention := _np_attention(data, where)) is not None:
                self.attention.setdefault(feature_id, []).append(attention)
        elif "description" in data:  # an Explanation row
            self.explanations += 1
        else:  # a Neuron row: the first one of a feature wins
            self.logits.setdefault(feature_id, _np_logits(data, where))

    def result(self, notes: list[str]) -> FeatureInput:
        features = [
            _np_feature(fid, records, self.logits.get(fid, []), self.attention.get(fid))
            for fid, records in self.records.items()
        ]
        without = sum(1 for fid in self.logits if fid not in self.records)
        if without:
            notes.append(f"{without} feature row(s) without activation rows left out")
        if self.explanations:
            notes.append(f"{self.explanations} existing Neuronpedia explanation(s) ignored")
        return FeatureInput(features, "neuronpedia-export", notes)


def _batch_order(path: Path) -> tuple[str, int, str]:
    match = re.search(r"(\d+)", path.name)
    return (str(path.parent), int(match.group(1)) if match else -1, path.name)


def _export_files(directory: Path) -> tuple[list[Path], int]:
    """The ``features/`` and ``activations/`` batch files under an export directory (features
    first, so that a feature's logits are known when its activations come), and how many
    ``explanations/`` files were left unread."""
    found: dict[str, list[Path]] = {name: [] for name in (*_EXPORT_TABLES, "explanations")}
    for file in directory.rglob("*"):
        table_name = file.parent.name
        if file.is_file() and file.name.endswith((".jsonl", ".jsonl.gz")) and table_name in found:
            found[table_name].append(file)
    files = sorted(found["features"], key=_batch_order)
    files += sorted(found["activations"], key=_batch_order)
    return files, len(found["explanations"])


def _read_export_directory(directory: Path, max_line_bytes: int) -> FeatureInput:
    files, unread = _export_files(directory)
    if not any(f.parent.name == "activations" for f in files):
        raise UsageError(
            f"{directory}: a directory is read as a Neuronpedia export, but it holds no "
            "activations/batch-*.jsonl(.gz) files"
        )
    export = _Export()
    for file in files:
        for number, data in _objects(str(file), max_line_bytes):
            export.add(number, data, str(file))
    notes = [f"read {len(files)} export file(s) under {directory}"]
    if unread:
        notes.append(f"{unread} explanations/ file(s) not read (existing explanations are ignored)")
    return export.result(notes)


def _sibling_features_file(path: str) -> Path | None:
    """``<source>/features/batch-N.jsonl.gz`` next to ``<source>/activations/batch-N…``: the
    pair Neuronpedia's own batch autointerp reads together (batch-autointerp.py)."""
    if path == "-":
        return None
    file = Path(path)
    if file.parent.name != "activations":
        return None
    sibling = file.parent.parent / "features" / file.name
    return sibling if sibling.is_file() else None


def read_feature_input(
    path: str, input_format: str = "auto", max_line_bytes: int = DEFAULT_MAX_LINE_BYTES
) -> FeatureInput:
    """Read ``run --input``: the format told apart by the first object (``auto``) or given;
    read as a stream, no line longer than ``max_line_bytes``."""
    if input_format not in ("auto", *INPUT_FORMATS):
        raise UsageError(f"unknown input format {input_format!r}")
    if path != "-" and Path(path).is_dir():
        if input_format not in ("auto", "neuronpedia-export"):
            raise UsageError(f"{path} is a directory: only a Neuronpedia export is read from one")
        return _read_export_directory(Path(path), max_line_bytes)
    items = _objects(path, max_line_bytes)
    first = next(items, None)
    if first is None:
        return FeatureInput([], "autointerp" if input_format == "auto" else input_format)
    chosen = _kind(first[1]) if input_format == "auto" else input_format
    everything = itertools.chain([first], items)
    if chosen == "autointerp":
        return _read_autointerp(everything, path)
    if chosen == "neuronpedia-feature":
        return _read_np_features(everything, path)
    export = _Export()
    notes = []
    sibling = _sibling_features_file(path)
    if sibling is not None and _kind(first[1]) == "neuronpedia-export" and "tokens" in first[1]:
        for number, data in _objects(str(sibling), max_line_bytes):
            export.add(number, data, str(sibling))
        notes.append(f"top positive logits read from {sibling}")
    for number, data in everything:
        export.add(number, data, path)
    return export.result(notes)


def read_features(
    path: str, input_format: str = "auto", max_line_bytes: int = DEFAULT_MAX_LINE_BYTES
) -> list[pb.Feature]:
    """The features of ``run --input`` (see :func:`read_feature_input`)."""
    return read_feature_input(path, input_format, max_line_bytes).features
