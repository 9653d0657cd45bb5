"""``autointerp run --input``'s readers: our JSONL, Neuronpedia's feature objects and its
dataset exports (the samples in examples/neuronpedia/), auto-detection, bad input; and the
OpenAPI document's ``info.version`` / ``servers``."""

from __future__ import annotations

import copy
import gzip
import json
import shutil
from importlib import metadata
from pathlib import Path
from typing import Any

import pytest

from autointerp_grpc import __version__
from autointerp_grpc.cli import inputs
from autointerp_grpc.cli.commands import build_parser
from autointerp_grpc.rest import openapi

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
FEATURE_SAMPLE = EXAMPLES / "neuronpedia" / "feature.json"
EXPORT_SAMPLE = EXAMPLES / "neuronpedia" / "export" / "gpt2-small" / "6-res-jb"


def _np_feature() -> dict[str, Any]:
    return json.loads(FEATURE_SAMPLE.read_text(encoding="utf-8"))


def _export_rows(table: str) -> list[dict[str, Any]]:
    text = gzip.decompress((EXPORT_SAMPLE / table / "batch-0.jsonl.gz").read_bytes()).decode()
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def _jsonl(path: Path, rows: list[Any]) -> Path:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), "utf-8")
    return path


# ---- Neuronpedia's feature object (GET /api/feature/{modelId}/{layer}/{index}) -------------


def test_feature_object_maps_to_one_feature() -> None:
    given = inputs.read_feature_input(str(FEATURE_SAMPLE))
    assert given.format == "neuronpedia-feature"
    assert given.notes == ["1 existing Neuronpedia explanation(s) ignored"]
    [feature] = given.features
    source = _np_feature()
    assert feature.id == "gpt2-small/6-res-jb/1234"
    assert list(feature.top_positive_logits) == source["pos_str"]
    # Records split by the service's rule: values summing above 0 are activating.
    firing = [a for a in source["activations"] if sum(a["values"]) > 0]
    quiet = [a for a in source["activations"] if sum(a["values"]) <= 0]
    assert len(firing) == len(quiet) == 6
    assert [list(r.tokens) for r in feature.activations] == [a["tokens"] for a in firing]
    assert [list(r.values) for r in feature.activations] == [a["values"] for a in firing]
    assert [list(r.tokens) for r in feature.non_activating] == [a["tokens"] for a in quiet]


@pytest.mark.parametrize("shape", ["list", "jsonl", "one-line-list", "gzip"])
def test_feature_objects_in_every_container(tmp_path: Path, shape: str) -> None:
    one = _np_feature()
    two = copy.deepcopy(one)
    two["index"] = 99  # an integer index is accepted too
    two["explanations"] = []
    path = tmp_path / "features.json"
    if shape == "list":
        path.write_text(json.dumps([one, two], indent=2))
    elif shape == "jsonl":
        _jsonl(path, [one, two])
    elif shape == "one-line-list":
        path.write_text(json.dumps([one, two]))
    else:
        path = tmp_path / "features.json.gz"
        path.write_bytes(gzip.compress(json.dumps([one, two]).encode()))
    given = inputs.read_feature_input(str(path))
    assert given.format == "neuronpedia-feature"
    assert [f.id for f in given.features] == [
        "gpt2-small/6-res-jb/1234",
        "gpt2-small/6-res-jb/99",
    ]


def test_identical_records_are_kept_once(tmp_path: Path) -> None:
    data = _np_feature()
    data["activations"].append(copy.deepcopy(data["activations"][0]))
    feature = inputs.read_features(str(_jsonl(tmp_path / "f.jsonl", [data])))[0]
    assert len(feature.activations) == 6


def test_a_feature_without_logits_or_explanations(tmp_path: Path) -> None:
    data = _np_feature()
    del data["pos_str"], data["explanations"]
    given = inputs.read_feature_input(str(_jsonl(tmp_path / "f.jsonl", [data])))
    assert given.notes == []
    assert list(given.features[0].top_positive_logits) == []


def test_dfa_values_become_attention_records(tmp_path: Path) -> None:
    """Neuronpedia's attention-head features carry dfaValues/dfaTargetIndex per activation:
    the inputs of its oai_attention-head explainer, read as attention records."""
    data = _np_feature()
    first = data["activations"][0]
    first["dfaValues"], first["dfaTargetIndex"] = [0.2, 0.9, 0.0], 1
    feature = inputs.read_features(str(_jsonl(tmp_path / "f.jsonl", [data])))[0]
    (attention,) = feature.attention  # the other activations have no DFA values
    assert list(attention.tokens) == first["tokens"]
    assert attention.from_index == 1
    assert list(attention.weights) == [0.2, 0.9, 0.0]
    first["dfaTargetIndex"] = "1"
    with pytest.raises(inputs.UsageError, match="'dfaTargetIndex' must be an integer"):
        inputs.read_features(str(_jsonl(tmp_path / "g.jsonl", [data])))


def test_explain_input_reads_attention_records(tmp_path: Path) -> None:
    record = {"tokens": ["a", " b"], "fromIndex": 1, "weights": [0.7, 0.3]}
    path = tmp_path / "in.json"
    path.write_text(json.dumps({"attention": [record]}), "utf-8")
    records = inputs.read_records(str(path))
    assert records.activations == []
    assert [r.from_index for r in records.attention] == [1]
    path.write_text(json.dumps({"attention": [{"fromIndex": "x"}]}), "utf-8")
    with pytest.raises(inputs.UsageError, match="attention"):
        inputs.read_records(str(path))


# ---- Neuronpedia's dataset exports (features/, activations/, explanations/) ----------------


def test_export_directory_joins_features_and_activations() -> None:
    given = inputs.read_feature_input(str(EXPORT_SAMPLE))
    assert given.format == "neuronpedia-export"
    assert any("explanations/ file(s) not read" in note for note in given.notes)
    assert [f.id for f in given.features] == ["gpt2-small/6-res-jb/0", "gpt2-small/6-res-jb/1"]
    neurons = {row["index"]: row for row in _export_rows("features")}
    rows = _export_rows("activations")
    for feature in given.features:
        index = feature.id.rsplit("/", 1)[1]
        assert list(feature.top_positive_logits) == neurons[index]["pos_str"]
        mine = [r for r in rows if r["index"] == index]
        assert len(feature.activations) == sum(1 for r in mine if r["maxValue"] > 0) == 6
        assert len(feature.non_activating) == sum(1 for r in mine if r["maxValue"] == 0) == 6
        assert list(feature.activations[0].tokens) == mine[0]["tokens"]


def test_a_whole_export_tree_and_an_activations_directory_read_the_same() -> None:
    expected = inputs.read_features(str(EXPORT_SAMPLE))
    assert inputs.read_features(str(EXAMPLES / "neuronpedia" / "export")) == expected
    without_logits = inputs.read_features(str(EXPORT_SAMPLE / "activations"))
    assert [f.id for f in without_logits] == [f.id for f in expected]
    assert all(not f.top_positive_logits for f in without_logits)


def test_an_activations_batch_reads_its_features_batch(tmp_path: Path) -> None:
    given = inputs.read_feature_input(str(EXPORT_SAMPLE / "activations" / "batch-0.jsonl.gz"))
    assert given.format == "neuronpedia-export"
    assert given.features == inputs.read_features(str(EXPORT_SAMPLE))
    assert any("top positive logits read from" in note for note in given.notes)
    # Alone (no features/ next to it): the same records, no logits.
    alone = tmp_path / "batch-0.jsonl.gz"
    shutil.copy(EXPORT_SAMPLE / "activations" / "batch-0.jsonl.gz", alone)
    features = inputs.read_features(str(alone))
    assert len(features) == 2 and not features[0].top_positive_logits


def test_concatenated_export_rows_in_one_plain_file(tmp_path: Path) -> None:
    rows = [
        *_export_rows("explanations"),
        *_export_rows("activations"),
        *_export_rows("features"),
    ]
    extra = dict(_export_rows("features")[0], index="7")  # a feature row with no activations
    given = inputs.read_feature_input(str(_jsonl(tmp_path / "rows.jsonl", [*rows, extra])))
    assert given.format == "neuronpedia-export"
    assert [f.id for f in given.features] == ["gpt2-small/6-res-jb/0", "gpt2-small/6-res-jb/1"]
    assert list(given.features[1].top_positive_logits) == [" 000", " hundred", " percent"]
    assert given.notes == [
        "1 feature row(s) without activation rows left out",
        "1 existing Neuronpedia explanation(s) ignored",
    ]


def test_integer_indexes_from_the_dashboard_converter_join(tmp_path: Path) -> None:
    # convert-saedashboard-to-neuronpedia-export.py writes the index as a number.
    rows = [dict(r, index=int(r["index"])) for r in _export_rows("features")]
    rows += [dict(r, index=int(r["index"])) for r in _export_rows("activations")]
    features = inputs.read_features(str(_jsonl(tmp_path / "rows.jsonl", rows)))
    assert [f.id for f in features] == ["gpt2-small/6-res-jb/0", "gpt2-small/6-res-jb/1"]
    assert features[0].top_positive_logits


# ---- detection, the explicit format and the flag -------------------------------------------


def test_our_own_format_is_still_detected() -> None:
    given = inputs.read_feature_input(str(EXAMPLES / "features.jsonl"))
    assert given.format == "autointerp" and len(given.features) == 8 and given.notes == []


@pytest.mark.parametrize(
    ("path", "fmt", "message"),
    [
        (EXAMPLES / "features.jsonl", "neuronpedia-feature", r"features\.jsonl:1: expected a "),
        (
            FEATURE_SAMPLE,
            "autointerp",
            r"feature\.json:1: expected an autointerp feature object, "
            r"found neuronpedia-feature \(see --input-format\)",
        ),
        (FEATURE_SAMPLE, "neuronpedia-export", r"feature\.json:1: expected a Neuronpedia export"),
        (EXPORT_SAMPLE, "autointerp", r"6-res-jb is a directory: only a Neuronpedia export"),
    ],
)
def test_an_explicit_format_that_does_not_fit(path: Path, fmt: str, message: str) -> None:
    with pytest.raises(inputs.UsageError, match=message):
        inputs.read_feature_input(str(path), fmt)


def test_a_directory_that_is_no_export(tmp_path: Path) -> None:
    shutil.copy(EXAMPLES / "features.jsonl", tmp_path / "features.jsonl")
    with pytest.raises(inputs.UsageError, match=r"holds no activations/batch-\*\.jsonl"):
        inputs.read_feature_input(str(tmp_path))


def test_the_flag() -> None:
    base = ["run", "--input", "x", "--output", "y", "--model", "m"]
    assert build_parser().parse_args(base).input_format == "auto"
    for fmt in inputs.INPUT_FORMATS:
        assert build_parser().parse_args([*base, "--input-format", fmt]).input_format == fmt
    with pytest.raises(SystemExit):
        build_parser().parse_args([*base, "--input-format", "csv"])


# ---- bad input: a usage error naming the file and the line ---------------------------------


def _bad_activation(**change: Any) -> dict[str, Any]:
    data = _np_feature()
    data["activations"][2].update(change)
    return data


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        ([_np_feature(), "{oops"], r"in\.jsonl:2: not valid JSON"),
        ([_np_feature(), [1]], r"in\.jsonl:2: expected a Neuronpedia feature"),
        ([_bad_activation(values=["high"])], r"in\.jsonl:1: activations\[2\]: 'values' must be"),
        ([_bad_activation(tokens=None)], r"in\.jsonl:1: activations\[2\]: 'tokens' must be"),
        ([dict(_np_feature(), activations={})], r"in\.jsonl:1: 'activations' must be a list"),
        ([dict(_np_feature(), pos_str=[1])], r"in\.jsonl:1: 'pos_str' must be a list of str"),
        ([dict(_np_feature(), layer="")], r"in\.jsonl:1: 'layer' must be a non-empty string"),
        ([_np_feature(), _np_feature()], r"in\.jsonl:2: id 'gpt2-small/6-res-jb/1234' already"),
        (
            [*_export_rows("activations")[:3], {"id": "x"}],
            r"in\.jsonl:4: expected a Neuronpedia "
            r"export row .* found autointerp",
        ),
        ([dict(_export_rows("activations")[0], values=[True])], r"in\.jsonl:1: 'values' must"),
        ([dict(_export_rows("activations")[0], index=None)], r"in\.jsonl:1: 'index' must be"),
    ],
)
def test_bad_lines_are_named(tmp_path: Path, rows: list[Any], message: str) -> None:
    path = tmp_path / "in.jsonl"
    path.write_text("\n".join(r if isinstance(r, str) else json.dumps(r) for r in rows) + "\n")
    with pytest.raises(inputs.UsageError, match=message):
        inputs.read_features(str(path))


def test_bad_items_of_a_pretty_printed_list_are_named_by_line(tmp_path: Path) -> None:
    good, bad = _np_feature(), _bad_activation(values=None)
    bad["index"] = "5"
    text = json.dumps([good, bad], indent=2)
    path = tmp_path / "list.json"
    path.write_text(text)
    lines = text.split("\n")
    line = lines.index("  {", lines.index("  {") + 1) + 1  # the second item's opening brace
    with pytest.raises(inputs.UsageError, match=rf"list\.json:{line}: activations\[2\]"):
        inputs.read_features(str(path))


def test_a_broken_document_names_the_line(tmp_path: Path) -> None:
    text = json.dumps(_np_feature(), indent=2).replace('"layer": "6-res-jb",', '"layer": ,')
    path = tmp_path / "feature.json"
    path.write_text(text)
    with pytest.raises(inputs.UsageError, match=r"feature\.json:3: not valid JSON"):
        inputs.read_features(str(path))


def test_a_broken_gzip_file(tmp_path: Path) -> None:
    path = tmp_path / "batch-0.jsonl.gz"
    whole = gzip.compress(json.dumps(_np_feature()).encode())
    path.write_bytes(whole[: len(whole) // 2])  # cut short
    with pytest.raises(inputs.UsageError, match=r"cannot read .*batch-0\.jsonl\.gz: not a valid"):
        inputs.read_features(str(path))


def test_a_bad_row_in_an_export_directory_names_its_file(tmp_path: Path) -> None:
    shutil.copytree(EXPORT_SAMPLE, tmp_path / "src")
    rows = _export_rows("activations")
    rows[5]["tokens"] = "not a list"
    target = tmp_path / "src" / "activations" / "batch-0.jsonl.gz"
    target.write_bytes(gzip.compress("".join(json.dumps(r) + "\n" for r in rows).encode()))
    with pytest.raises(
        inputs.UsageError, match=r"activations/batch-0\.jsonl\.gz:6: 'tokens' must be"
    ):
        inputs.read_features(str(tmp_path / "src"))


# ---- the OpenAPI document's surface (issue 12 item 6) --------------------------------------


def test_openapi_version_and_servers(monkeypatch: pytest.MonkeyPatch) -> None:
    document = openapi.build_openapi()
    assert document["servers"] == [{"url": "/"}]
    assert document["info"]["version"] == metadata.version("autointerp-grpc")

    def not_installed(name: str) -> str:
        raise metadata.PackageNotFoundError(name)

    monkeypatch.setattr(openapi.metadata, "version", not_installed)
    assert openapi.build_openapi()["info"]["version"] == __version__
