"""The committed generated code (gen/ and the clients' per-RPC methods) matches the protos, and
delphi loads without vLLM."""

from __future__ import annotations

import ast
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from google.protobuf import descriptor_pb2

from autointerp_grpc import protogen
from autointerp_grpc.gen.autointerp.v1 import autointerp_pb2 as pb
from autointerp_grpc.proto_comments import DESCRIPTOR_SET


@pytest.fixture(scope="module")
def fresh(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[Path]]:
    """protoc's output for today's protos (one run for the module), and the files it wrote."""
    out = tmp_path_factory.mktemp("gen")
    return out, protogen.generate(out)


def test_generated_code_is_fresh(fresh: tuple[Path, list[Path]]) -> None:
    tmp_path, written = fresh
    assert written, "protoc generated nothing"
    committed = sorted(
        p.relative_to(protogen.GEN_ROOT)
        for p in protogen.GEN_ROOT.rglob("*")
        if p.is_file() and "__pycache__" not in p.parts
    )
    assert committed == written, "files in autointerp_grpc/gen differ; run `make protos`"
    stale = [
        str(rel)
        for rel in written
        if (tmp_path / rel).read_bytes() != (protogen.GEN_ROOT / rel).read_bytes()
    ]
    assert not stale, f"stale generated code {stale}; run `make protos` and commit the result"


def test_client_methods_are_fresh(fresh: tuple[Path, list[Path]]) -> None:
    """The clients' per-RPC methods are what `make protos` writes from today's protos."""
    regenerated = protogen.generate_client_rpcs(fresh[0])
    committed = protogen.CLIENT_RPCS.read_text()
    assert committed == regenerated, (
        f"stale {protogen.CLIENT_RPCS.name}; run `make protos` and commit the result"
    )


def _committed_descriptors() -> descriptor_pb2.FileDescriptorSet:
    data = (protogen.GEN_ROOT / DESCRIPTOR_SET).read_bytes()
    return descriptor_pb2.FileDescriptorSet.FromString(data)


def _service(files: descriptor_pb2.FileDescriptorSet) -> descriptor_pb2.ServiceDescriptorProto:
    (file,) = (f for f in files.file if f.name == protogen.CLIENT_PROTO)
    (service,) = (s for s in file.service if s.name == protogen.CLIENT_SERVICE)
    return service


def test_a_proto_change_without_regenerating_fails_the_freshness_check() -> None:
    """The comparison above has teeth: an RPC added, or an RPC's request type changed, in the
    proto renders a different module (so the committed one no longer matches), with the new
    method typed by its own messages."""
    committed = protogen.CLIENT_RPCS.read_text()
    assert protogen.render_client_rpcs(_committed_descriptors()) == committed

    added = _committed_descriptors()
    rpc = _service(added).method.add()
    rpc.CopyFrom(next(m for m in _service(added).method if m.name == "Score"))
    rpc.name = "ScoreTwice"
    text = protogen.render_client_rpcs(added)
    assert text != committed
    assert text.count("    def score_twice(\n") == 2  # the sync and the async client
    assert "request: pb.ScoreRequest | JsonRequest" in text.partition("def score_twice(")[2]

    retyped = _committed_descriptors()
    explain = next(m for m in _service(retyped).method if m.name == "Explain")
    explain.input_type = explain.input_type.replace("ExplainRequest", "ScoreRequest")
    text = protogen.render_client_rpcs(retyped)
    assert text != committed
    assert "request: pb.ScoreRequest | JsonRequest" in text.partition("def explain(")[2][:200]


def test_client_methods_take_only_their_files_messages() -> None:
    """A message the generator cannot name is an error at `make protos`, never a wrong stub."""
    files = _committed_descriptors()
    _service(files).method[0].input_type = ".google.protobuf.Empty"
    with pytest.raises(ValueError, match=r"google\.protobuf\.Empty"):
        protogen.render_client_rpcs(files)


def test_proto_comments_cannot_break_the_docstrings() -> None:
    files = _committed_descriptors()
    (file,) = (f for f in files.file if f.name == protogen.CLIENT_PROTO)
    for location in file.source_code_info.location:
        if tuple(location.path[:2]) == (6, 0) and location.leading_comments:
            location.leading_comments = ' Ends """ early, and \\n escapes.\n'
    text = protogen.render_client_rpcs(files)
    tree = ast.parse(text)  # a docstring ended early is a SyntaxError here
    method = next(
        node
        for node in ast.walk(tree)
        if isinstance(node, ast.FunctionDef) and node.name == "explain_default"
    )
    assert (ast.get_docstring(method) or "").startswith(
        'Calls ExplainDefault. Ends """ early, and \\n escapes.'
    )


@pytest.mark.slow  # a fresh interpreter importing the whole stack (torch): ~14 s
def test_vllm_is_never_imported() -> None:
    # A fresh interpreter: import everything that touches delphi, then look at sys.modules.
    code = (
        "import sys\n"
        "import autointerp_grpc.runtime, autointerp_grpc.handlers\n"
        "from autointerp_grpc import delphi_compat\n"
        "assert 'delphi.scorers' in sys.modules\n"
        "bad = sorted(m for m in sys.modules if m == 'vllm' or m.startswith('vllm.'))\n"
        "print(','.join(bad))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == ""


@pytest.mark.slow  # a fresh interpreter importing the whole stack (torch): ~14 s
def test_the_service_runs_without_grpcio_tools() -> None:
    """grpcio-tools is a build tool (the dev extra): the service, its OpenAPI document and
    ListMethods' descriptions must not need it."""
    code = (
        "import sys; sys.modules['grpc_tools'] = None\n"
        "from autointerp_grpc.runtime import create_app\n"
        "from autointerp_grpc.rest.openapi import build_openapi\n"
        "from autointerp_grpc.proto_comments import proto_comments\n"
        "create_app(); assert build_openapi()['paths'] and proto_comments()\n"
    )
    root = Path(__file__).resolve().parents[2]
    subprocess.run([sys.executable, "-c", code], check=True, cwd=root, timeout=120)


def _params_message(
    files: descriptor_pb2.FileDescriptorSet, name: str
) -> descriptor_pb2.DescriptorProto:
    (file,) = (f for f in files.file if f.name == protogen.PARAMS_PROTO)
    return next(m for m in file.message_type if m.name == name)


def test_parameter_classes_are_fresh(fresh: tuple[Path, list[Path]]) -> None:
    """gen/params.py is what `make protos` writes from today's protos (the check above
    compares it too; this one names it)."""
    regenerated = (fresh[0] / protogen.PARAMS_MODULE).read_text()
    committed = (protogen.GEN_ROOT / protogen.PARAMS_MODULE).read_text()
    assert committed == regenerated, (
        f"stale gen/{protogen.PARAMS_MODULE}; run `make protos` and commit the result"
    )


def test_a_parameter_change_without_regenerating_fails_the_freshness_check() -> None:
    """A default changed, or a parameter added, in the proto renders a different module, with
    the new default and the new field typed from the descriptor."""
    committed = (protogen.GEN_ROOT / protogen.PARAMS_MODULE).read_text()
    assert protogen.render_params(_committed_descriptors()) == committed

    changed = _committed_descriptors()
    threshold = _params_message(changed, "DefaultExplainerParams").field[0]
    threshold.options.Extensions[pb.parameter].default_value = "0.25"
    text = protogen.render_params(changed)
    assert text != committed
    body = text.partition("class DefaultExplainerParams:")[2]
    assert body.partition("\n\n\n")[0].count("threshold: float = 0.25\n") == 1

    added = _committed_descriptors()
    message = _params_message(added, "RecallScorerParams")
    message.field.add(
        name="style",
        number=9,
        type=descriptor_pb2.FieldDescriptorProto.TYPE_STRING,
        label=descriptor_pb2.FieldDescriptorProto.LABEL_OPTIONAL,
        json_name="style",
    )
    text = protogen.render_params(added)
    assert '    style: str = ""\n' in text.partition("class RecallScorerParams:")[2]


def _repeated(message: descriptor_pb2.DescriptorProto) -> str:
    message.field.add(
        name="tags",
        number=9,
        type=descriptor_pb2.FieldDescriptorProto.TYPE_STRING,
        label=descriptor_pb2.FieldDescriptorProto.LABEL_REPEATED,
        json_name="tags",
    )
    return "tags: a parameter is a single number, bool or string"


def _default(text: str, error: str) -> Callable[[descriptor_pb2.DescriptorProto], str]:
    def change(message: descriptor_pb2.DescriptorProto) -> str:
        # field 0 is examples_per_prompt, an int
        message.field[0].options.Extensions[pb.parameter].default_value = text
        return f"examples_per_prompt: {error}"

    return change


@pytest.mark.parametrize(
    "change",
    [
        _repeated,
        _default('"5"', "default_value '5' is not of type int"),
        _default("5.5", "default_value 5.5 is not of type int"),
        _default("five", "default_value 'five' is not a JSON literal"),
    ],
    ids=["repeated", "string default", "float default", "default not JSON"],
)
def test_the_parameter_generator_refuses_what_it_cannot_type(
    change: Callable[[descriptor_pb2.DescriptorProto], str],
) -> None:
    """A parameter the generator cannot type, or a default that is not of its field's type,
    is an error at `make protos` naming the field, never a wrongly typed class."""
    files = _committed_descriptors()
    error = change(_params_message(files, "ClassifierScorerParams"))
    with pytest.raises(ValueError, match=rf"^ClassifierScorerParams\.{error}"):
        protogen.render_params(files)
