"""Generate the Python code for the protos under ``protos/`` into ``autointerp_grpc/gen``.

``make protos`` runs this; a test runs :func:`generate` into a temporary folder and compares it
with the committed files, so stale generated code fails the suite.

grpcio-tools writes imports relative to the proto root (``from autointerp.v1 import ...``); they
are rewritten to the package path (``from autointerp_grpc.gen.autointerp.v1 import ...``) so the
generated modules need nothing added to ``sys.path``.

It also writes, from the fresh descriptor set, the typed clients' per-RPC methods
(``autointerp_grpc/client/_rpcs.py``), so what pyright sees of a client method (its request
message, its response) is generated from the proto rather than written by hand per client,
and the methods' parameters as frozen dataclasses (``gen/params.py``), so every read of a
resolved parameter is an attribute pyright checks, with its type and default from the proto.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import tempfile
import textwrap
from collections.abc import Callable
from importlib import resources
from pathlib import Path

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from google.protobuf.message import Message
from grpc_tools import (
    protoc,
)  # a build tool: the dev extra brings it, the service never imports this

from autointerp_grpc.proto_comments import DESCRIPTOR_SET

REPO_ROOT = Path(__file__).resolve().parent.parent
PROTO_ROOT = REPO_ROOT / "protos"
GEN_ROOT = Path(__file__).resolve().parent / "gen"
GEN_PACKAGE = "autointerp_grpc.gen"
# Our own proto packages: imports of these are rewritten; google.* imports are left alone
# (googleapis-common-protos and protobuf ship those modules).
OWN_TOP_LEVEL = "autointerp"

# The typed clients' methods: generated from this service of this file.
CLIENT_RPCS = Path(__file__).resolve().parent / "client" / "_rpcs.py"
CLIENT_PROTO = "autointerp/v1/autointerp.proto"
CLIENT_SERVICE = "AutoInterp"

# The methods' parameters as typed classes: every message that is a member of a request's
# `params` oneof in this file, and these messages, also read through methods.params.resolve.
PARAMS_MODULE = "params.py"
PARAMS_PROTO = CLIENT_PROTO
PARAMS_EXTRA_MESSAGES = ("BulkOptions",)
PARAMS_ONEOF = "params"
PARAMETER_EXTENSION = "autointerp.v1.parameter"

_IMPORT_RE = re.compile(rf"^from {OWN_TOP_LEVEL}(\.[\w.]+)? import ", re.MULTILINE)


def proto_files() -> list[Path]:
    """Every ``.proto`` under ``protos/``, sorted, relative to the proto root."""
    return sorted(p.relative_to(PROTO_ROOT) for p in PROTO_ROOT.rglob("*.proto"))


def _include_dirs() -> list[str]:
    # grpc_tools ships google/protobuf/*.proto; googleapis-common-protos ships google/api/*.proto
    # next to its generated modules, so both are found offline.
    grpc_tools_protos = resources.files("grpc_tools") / "_proto"
    import google.api  # only needed while generating

    googleapis_root = Path(google.api.__path__[0]).parent.parent
    return [str(PROTO_ROOT), str(grpc_tools_protos), str(googleapis_root)]


def _rewrite_imports(text: str) -> str:
    return _IMPORT_RE.sub(
        lambda m: f"from {GEN_PACKAGE}.{OWN_TOP_LEVEL}{m.group(1) or ''} import ", text
    )


def generate(out_dir: Path) -> list[Path]:
    """Generate ``_pb2.py``, ``_pb2.pyi``, ``_pb2_grpc.py`` for every proto, and a descriptor set
    with source comments, into ``out_dir``.

    Returns the written files, relative to ``out_dir``.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        args = [
            "grpc_tools.protoc",
            *(f"-I{d}" for d in _include_dirs()),
            f"--python_out={tmp}",
            f"--pyi_out={tmp}",
            f"--grpc_python_out={tmp}",
            # The same descriptors with their comments, which the runtime pb2 modules drop;
            # the OpenAPI generator reads descriptions from here.
            f"--descriptor_set_out={Path(tmp) / DESCRIPTOR_SET}",
            "--include_source_info",
            *(str(p) for p in proto_files()),
        ]
        if protoc.main(args) != 0:
            raise RuntimeError("protoc failed; see its output above")
        written = []
        for src in sorted(Path(tmp).rglob("*")):
            if not src.is_file():
                continue
            rel = src.relative_to(tmp)
            dest = out_dir / rel
            dest.parent.mkdir(parents=True, exist_ok=True)
            if src.suffix in (".py", ".pyi"):
                dest.write_text(_rewrite_imports(src.read_text()))
            else:
                dest.write_bytes(src.read_bytes())
            written.append(rel)
    # Every generated folder is a regular package so the rewritten imports resolve.
    packages = {out_dir / rel.parent for rel in written if rel.suffix == ".py"}
    packages |= {parent for p in packages for parent in p.parents if parent.is_relative_to(out_dir)}
    for folder in packages:
        init = folder / "__init__.py"
        if not init.exists():
            init.write_text("")
            written.append(init.relative_to(out_dir))
    descriptors = descriptor_pb2.FileDescriptorSet.FromString(
        (out_dir / DESCRIPTOR_SET).read_bytes()
    )
    (out_dir / PARAMS_MODULE).write_text(render_params(descriptors))
    written.append(Path(PARAMS_MODULE))
    return sorted(set(written))


# ---- the typed clients' per-RPC methods -----------------------------------------------------

_LINE = 100  # ruff's line length: the rendered module is ruff-format clean as written
_CLIENT_HEADER = '''\
"""The typed clients' per-RPC methods: GENERATED by `make protos` (autointerp_grpc.protogen)
from the {service} service of protos/{proto}; do not edit.

One method per RPC, in the proto's order, named in snake_case, with the RPC's request message
(or a dict in its proto3 JSON form) and its response in the signature, so a type checker sees
each call exactly; a request message without fields takes no request. The sync and async
mixins differ only in what they declare to return; both start the call through
``ClientBase._start``. tests/unit/test_generated_code.py regenerates this file and compares it,
so an RPC added or changed in the proto without `make protos` fails the suite.
"""

from __future__ import annotations

from typing import Generic, TypeVar

import grpc.aio

from autointerp_grpc.client._base import ClientBase, JsonRequest
from autointerp_grpc.gen.autointerp.v1 import autointerp_pb2 as pb

StreamT = TypeVar("StreamT")
"""The client's stream of a server-streaming RPC's events (EventStream, AsyncEventStream)."""
'''
_MIXINS = {
    "SyncRpcs": "One blocking method per RPC: each returns the response, or a stream of events.",
    "AsyncRpcs": (
        "One grpc.aio method per RPC: each returns the awaitable call, or a stream of events."
    ),
}


def snake_case(name: str) -> str:
    """An RPC's client method name: ``ExplainDefault`` → ``explain_default``."""
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def _rpc_comments(file: descriptor_pb2.FileDescriptorProto, service_index: int) -> dict[str, str]:
    """Leading comments of the service's RPCs, by RPC name, each as one paragraph."""
    methods = file.service[service_index].method
    out = {}
    for location in file.source_code_info.location:
        path = tuple(location.path)  # 6 = service, 2 = method: (6, service, 2, method)
        if len(path) == 4 and path[:3] == (6, service_index, 2) and location.leading_comments:
            words = location.leading_comments.split()
            out[methods[path[3]].name] = " ".join(words)
    return out


def _docstring(paragraphs: list[str], indent: str) -> str:
    """A docstring of ``paragraphs``, wrapped to the line length at ``indent``."""
    width = _LINE - len(indent)
    lines: list[str] = []
    for paragraph in paragraphs:
        # Escaped so a proto comment cannot end the docstring or start an escape sequence.
        text = paragraph.replace("\\", "\\\\").replace('"""', r"\"\"\"")
        lines += [
            *([""] if lines else []),
            *textwrap.wrap(
                text, width, initial_indent="" if lines else '"""', break_on_hyphens=False
            ),
        ]
    body = "".join(f"{indent}{line}\n" if line else "\n" for line in lines)
    return f'{body}{indent}"""\n'


def _client_method(
    mixin: str,
    package: str,
    method: descriptor_pb2.MethodDescriptorProto,
    messages: dict[str, descriptor_pb2.DescriptorProto],
    comment: str,
) -> str:
    request, response = (
        _message_name(t, package, messages) for t in (method.input_type, method.output_type)
    )
    takes_request = bool(messages[request].field)
    indent = " " * 8
    params = ["self"]
    if takes_request:
        params.append(f"request: pb.{request} | JsonRequest")
    params += ["*", "timeout: float | None = None", "request_id: str | None = None"]
    deadline = "deadline in seconds (default: the client's)"
    if method.server_streaming:
        returns = "StreamT"
        result = f"Returns the client's stream of {response} events at once (not a coroutine)."
        deadline = "deadline in seconds (default: none, as a stream's length grows with its work)"
    elif mixin == "AsyncRpcs":
        returns = f"grpc.aio.UnaryUnaryCall[pb.{request}, pb.{response}]"
        result = f"Returns the grpc.aio call; awaiting it gives the {response}."
    else:
        returns = f"pb.{response}"
        result = f"Returns the {response}."
    closing = f"    ) -> {returns}:"
    if len(closing) > _LINE:  # as ruff format splits a long subscript
        head, _, tail = returns.partition("[")
        closing = f"    ) -> {head}[\n{indent}{tail[:-1]}\n    ]:"
    request_text = (
        f"``request``: the {request} message, or a dict in its proto3 JSON form. "
        if takes_request
        else ""
    )
    doc = [
        f"Calls {method.name}. {comment}".strip(),
        f"{request_text}{result} ``timeout``: {deadline}; ``request_id``: sent as "
        "x-request-id (default: a fresh uuid4 hex).",
    ]
    argument = "request" if takes_request else "{}"
    return (
        f"    def {snake_case(method.name)}(\n"
        + "".join(f"{indent}{p},\n" for p in params)
        + f"{closing}\n"
        + _docstring(doc, indent)
        + f'{indent}return self._start("{method.name}", {argument}, timeout, request_id)\n'
    )


def _message_name(
    type_name: str, package: str, messages: dict[str, descriptor_pb2.DescriptorProto]
) -> str:
    """``.autointerp.v1.ExplainRequest`` → ``ExplainRequest``: a top-level message of the file."""
    name = type_name.removeprefix(f".{package}.")
    if name not in messages:
        raise ValueError(
            f"{type_name}: the client methods take request and response messages declared at "
            f"the top level of {CLIENT_PROTO}; extend protogen to name others"
        )
    return name


def render_client_rpcs(files: descriptor_pb2.FileDescriptorSet) -> str:
    """The source of ``client/_rpcs.py`` for the ``CLIENT_SERVICE`` of ``files``."""
    (file,) = (f for f in files.file if f.name == CLIENT_PROTO)
    messages = {m.name: m for m in file.message_type}
    (index,) = (i for i, s in enumerate(file.service) if s.name == CLIENT_SERVICE)
    comments = _rpc_comments(file, index)
    parts = [_CLIENT_HEADER.format(service=CLIENT_SERVICE, proto=CLIENT_PROTO)]
    for mixin, summary in _MIXINS.items():
        methods = "\n".join(
            _client_method(mixin, file.package, m, messages, comments.get(m.name, ""))
            for m in file.service[index].method
        )
        parts.append(
            f'\n\nclass {mixin}(ClientBase, Generic[StreamT]):\n    """{summary}"""\n\n{methods}'
        )
    return "".join(parts)


def generate_client_rpcs(gen_dir: Path) -> str:
    """``render_client_rpcs`` of the descriptor set that :func:`generate` wrote to ``gen_dir``."""
    data = (gen_dir / DESCRIPTOR_SET).read_bytes()
    return render_client_rpcs(descriptor_pb2.FileDescriptorSet.FromString(data))


# ---- the methods' parameters as typed classes ------------------------------------------------

_PARAMS_HEADER = '''\
"""The methods' parameters as typed classes: GENERATED by `make protos` (autointerp_grpc.protogen)
from protos/{proto}; do not edit.

One frozen dataclass per parameters message: each member of the Explain and Score requests'
``params`` oneof, and {extra}. A class's fields are its message's, in order, typed from the
descriptor; each defaults to its ``(parameter).default_value`` (a field without one to None
where it has presence, else to its proto3 zero value); a field with ``allowed`` values is a
Literal of them. ``methods.params.resolve`` builds one from a request, checking every sent
value; tests/unit/test_generated_code.py regenerates this file and compares it, so a parameter
added or changed in the proto without `make protos` fails the suite.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal
'''

_PY_TYPES = {
    descriptor_pb2.FieldDescriptorProto.TYPE_DOUBLE: "float",
    descriptor_pb2.FieldDescriptorProto.TYPE_FLOAT: "float",
    descriptor_pb2.FieldDescriptorProto.TYPE_INT32: "int",
    descriptor_pb2.FieldDescriptorProto.TYPE_SINT32: "int",
    descriptor_pb2.FieldDescriptorProto.TYPE_SFIXED32: "int",
    descriptor_pb2.FieldDescriptorProto.TYPE_UINT32: "int",
    descriptor_pb2.FieldDescriptorProto.TYPE_FIXED32: "int",
    descriptor_pb2.FieldDescriptorProto.TYPE_BOOL: "bool",
    descriptor_pb2.FieldDescriptorProto.TYPE_STRING: "str",
}
_ZERO = {"float": 0.0, "int": 0, "bool": False, "str": ""}


def _parameter_reader(files: descriptor_pb2.FileDescriptorSet) -> Callable[[bytes], Message]:
    """Parses a field's serialized options into the ``(parameter)`` ParameterSpec they carry.

    The options are read against a pool built from ``files`` themselves (their imports taken
    from the installed modules), never against the committed generated module, which is what
    a stale checkout would get wrong."""
    import google.api.annotations_pb2
    import google.api.field_behavior_pb2  # noqa: F401

    pool = descriptor_pool.DescriptorPool()
    installed = descriptor_pool.Default()
    own = {f.name: f for f in files.file}
    added: set[str] = set()

    def add(name: str) -> None:
        if name in added:
            return
        proto = own.get(name)
        if proto is None:
            proto = descriptor_pb2.FileDescriptorProto()
            installed.FindFileByName(name).CopyToProto(proto)
        for dependency in proto.dependency:
            add(dependency)
        pool.Add(proto)
        added.add(name)

    for name in own:
        add(name)
    extension = pool.FindExtensionByName(PARAMETER_EXTENSION)
    options = message_factory.GetMessageClass(
        pool.FindMessageTypeByName("google.protobuf.FieldOptions")
    )

    def read(serialized: bytes) -> Message:
        # typeshed wants a typed extension handle; a pool's FieldDescriptor is the runtime one.
        return options.FromString(serialized).Extensions[extension]  # pyright: ignore[reportArgumentType]

    return read


def _comments(file: descriptor_pb2.FileDescriptorProto) -> dict[tuple[int, ...], str]:
    """Leading comments by source path, each as one paragraph."""
    return {
        tuple(location.path): " ".join(location.leading_comments.split())
        for location in file.source_code_info.location
        if location.leading_comments
    }


def _parameter_messages(file: descriptor_pb2.FileDescriptorProto) -> list[int]:
    """Indexes (in declaration order) of the file's parameters messages."""
    package = f".{file.package}."
    names: set[str] = set(PARAMS_EXTRA_MESSAGES)
    for message in file.message_type:
        for index, oneof in enumerate(message.oneof_decl):
            if oneof.name != PARAMS_ONEOF:
                continue
            for field in message.field:
                if field.HasField("oneof_index") and field.oneof_index == index:
                    if not field.type_name.startswith(package):
                        raise ValueError(
                            f"{message.name}.{field.name}: a parameters message must be "
                            f"declared at the top level of {PARAMS_PROTO}"
                        )
                    names.add(field.type_name.removeprefix(package))
    found = [i for i, m in enumerate(file.message_type) if m.name in names]
    missing = names - {file.message_type[i].name for i in found}
    if missing:
        raise ValueError(f"no top-level message {sorted(missing)} in {PARAMS_PROTO}")
    return found


def _python_value(value: object, py_type: str, where: str) -> str:
    """A default as Python source, after checking it has the field's type."""
    if py_type == "float" and isinstance(value, int | float) and not isinstance(value, bool):
        return repr(float(value))
    if py_type == "int" and isinstance(value, int) and not isinstance(value, bool):
        return repr(value)
    if py_type == "bool" and isinstance(value, bool):
        return repr(value)
    if py_type == "str" and isinstance(value, str):
        return json.dumps(value)
    raise ValueError(f"{where}: default_value {value!r} is not of type {py_type}")


def _short_docstring(text: str, indent: str) -> str:
    """A one-paragraph docstring: on one line where it fits, else wrapped."""
    escaped = text.replace("\\", "\\\\").replace('"""', r"\"\"\"")
    line = f'{indent}"""{escaped}"""'
    if len(line) <= _LINE and not escaped.endswith('"'):
        return line + "\n"
    return _docstring([text], indent)


def _params_field(
    message: descriptor_pb2.DescriptorProto,
    field: descriptor_pb2.FieldDescriptorProto,
    spec: Message,
    comment: str,
) -> str:
    where = f"{message.name}.{field.name}"
    py_type = _PY_TYPES.get(field.type)
    if py_type is None or field.label == descriptor_pb2.FieldDescriptorProto.LABEL_REPEATED:
        raise ValueError(
            f"{where}: a parameter is a single number, bool or string; extend protogen to "
            "type others"
        )
    allowed = list(getattr(spec, "allowed"))  # noqa: B009  (a message of the fresh pool)
    annotation = py_type
    if allowed:
        if py_type != "str":
            raise ValueError(f"{where}: allowed values apply to strings")
        annotation = f"Literal[{', '.join(json.dumps(a) for a in allowed)}]"
    text = getattr(spec, "default_value")  # noqa: B009
    if text:
        try:
            value = json.loads(text)
        except ValueError:
            raise ValueError(f"{where}: default_value {text!r} is not a JSON literal") from None
        if allowed and value not in allowed:
            raise ValueError(f"{where}: default_value {value!r} is not one of {allowed}")
        default = _python_value(value, py_type, where)
    elif field.proto3_optional:
        annotation = f"{annotation} | None"
        default = "None"
    else:
        default = _python_value(_ZERO[py_type], py_type, where)
    line = f"    {field.name}: {annotation} = {default}\n"
    if len(line) > _LINE + 1:
        raise ValueError(f"{where}: its generated line is over {_LINE} characters")
    return line + (_short_docstring(comment, " " * 4) if comment else "")


def render_params(files: descriptor_pb2.FileDescriptorSet) -> str:
    """The source of ``gen/params.py``: one frozen dataclass per parameters message of
    ``PARAMS_PROTO`` in ``files``, and ``BY_MESSAGE``, each class by its message's full name."""
    (file,) = (f for f in files.file if f.name == PARAMS_PROTO)
    read_spec = _parameter_reader(files)
    comments = _comments(file)
    extra = ", ".join(PARAMS_EXTRA_MESSAGES)
    parts = [_PARAMS_HEADER.format(proto=PARAMS_PROTO, extra=extra)]
    names = []
    for index in _parameter_messages(file):
        message = file.message_type[index]
        names.append(message.name)
        summary = comments.get((4, index), f"Parameters of {message.name}.")
        body = "".join(
            _params_field(
                message,
                field,
                read_spec(field.options.SerializeToString()),
                comments.get((4, index, 2, number), ""),
            )
            for number, field in enumerate(message.field)
        )
        parts.append(
            f"\n\n@dataclass(frozen=True, kw_only=True)\nclass {message.name}:\n"
            + _short_docstring(summary, " " * 4)
            + (f"\n{body}" if body else "")
        )
    table = "".join(f'    "{file.package}.{name}": {name},\n' for name in names)
    parts.append(
        f"\n\nBY_MESSAGE: dict[str, type] = {{\n{table}}}\n"
        + _short_docstring(
            "Each class by its message's full name (methods.registry checks each method's "
            "class against it).",
            "",
        )
    )
    return "".join(parts)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").partition("\n")[0])
    parser.add_argument("--out", type=Path, default=GEN_ROOT, help="output folder")
    parser.add_argument(
        "--client-out", type=Path, default=CLIENT_RPCS, help="the clients' per-RPC methods"
    )
    args = parser.parse_args(argv)
    for rel in generate(args.out):
        print(args.out / rel)
    args.client_out.write_text(generate_client_rpcs(args.out))
    print(args.client_out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
