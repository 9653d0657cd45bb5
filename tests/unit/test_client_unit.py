"""The typed client's pure parts: targets for one or several servers, requests, metadata."""

from __future__ import annotations

import inspect
import socket
import typing
from collections.abc import Mapping

import grpc.aio
import pytest
from google.protobuf import json_format

from autointerp_grpc.client import (
    REQUEST_ID_METADATA,
    SECRET_METADATA,
    AsyncAutoInterpClient,
    AsyncEventStream,
    AutoInterpClient,
    EventStream,
    channel_options,
    grpc_target,
    split_servers,
    to_message,
)
from autointerp_grpc.gen.autointerp.v1 import autointerp_pb2 as pb


def test_one_server_is_its_own_target() -> None:
    assert grpc_target("127.0.0.1:50051") == "127.0.0.1:50051"
    assert grpc_target(" localhost:50051 ") == "localhost:50051"
    assert grpc_target(["myhost.example:1"]) == "myhost.example:1"  # not resolved here


def test_several_servers_become_one_ipv4_target() -> None:
    assert grpc_target("127.0.0.1:1,127.0.0.2:2") == "ipv4:127.0.0.1:1,127.0.0.2:2"
    assert grpc_target(["10.0.0.1:50051", "10.0.0.2:50051"]) == (
        "ipv4:10.0.0.1:50051,10.0.0.2:50051"
    )


def test_repeats_and_blanks_are_dropped() -> None:
    assert split_servers("a:1, ,b:2,a:1,") == ["a:1", "b:2"]
    assert grpc_target("127.0.0.1:1,127.0.0.1:1") == "127.0.0.1:1"
    with pytest.raises(ValueError, match="no server"):
        split_servers(" , ")


def test_host_names_are_resolved_ipv4_first() -> None:
    assert grpc_target("localhost:5001,127.0.0.1:5002") == "ipv4:127.0.0.1:5001,127.0.0.1:5002"


def test_host_names_resolved_with_getaddrinfo(monkeypatch: pytest.MonkeyPatch) -> None:
    table = {
        "alpha": [(socket.AF_INET6, "::1"), (socket.AF_INET, "10.1.1.1")],
        "beta": [(socket.AF_INET, "10.2.2.2")],
    }

    def fake_getaddrinfo(host, port, *args, **kwargs):
        return [(family, socket.SOCK_STREAM, 6, "", (ip, port)) for family, ip in table[host]]

    monkeypatch.setattr(socket, "getaddrinfo", fake_getaddrinfo)
    assert grpc_target("alpha:1,beta:2") == "ipv4:10.1.1.1:1,10.2.2.2:2"


def test_ipv6_servers() -> None:
    assert grpc_target("[::1]:1,[::1]:2") == "ipv6:[::1]:1,[::1]:2"
    with pytest.raises(ValueError, match="mix IPv4 and IPv6"):
        grpc_target("[::1]:1,127.0.0.1:2")


@pytest.mark.parametrize("bad", ["127.0.0.1", "127.0.0.1:x", "127.0.0.1:0", ":80", "[::1]"])
def test_malformed_addresses_are_rejected(bad: str) -> None:
    with pytest.raises(ValueError, match="not host:port"):
        grpc_target(f"{bad},127.0.0.1:2")


def test_unresolvable_host_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="cannot resolve"):
        grpc_target("no-such-host.invalid:1,127.0.0.1:2")


def test_channel_balances_round_robin() -> None:
    options = dict(channel_options())
    assert '"round_robin"' in options["grpc.service_config"]


def test_requests_as_messages_or_json_dicts() -> None:
    message = pb.ExplainDefaultRequest(model="m")
    assert to_message(message, pb.ExplainDefaultRequest) is message
    camel = to_message(
        {"activations": [{"tokens": ["a"], "values": [1]}], "openrouterKey": "k", "model": "m"},
        pb.ExplainDefaultRequest,
    )
    snake = to_message(
        {"activations": [{"tokens": ["a"], "values": [1]}], "openrouter_key": "k", "model": "m"},
        pb.ExplainDefaultRequest,
    )
    assert camel == snake
    assert camel.openrouter_key == "k"
    with pytest.raises(TypeError, match="ExplainDefaultRequest"):
        to_message(pb.ScoreRequest(), pb.ExplainDefaultRequest)
    with pytest.raises(json_format.ParseError):
        to_message({"nope": 1}, pb.ExplainDefaultRequest)


def test_metadata_carries_secret_and_request_id() -> None:
    client = AutoInterpClient("127.0.0.1:1", secret="s3cret-value", timeout=5)
    try:
        metadata = dict(client._metadata(None))
        assert metadata[SECRET_METADATA] == "s3cret-value"
        assert len(metadata[REQUEST_ID_METADATA]) == 32
        assert dict(client._metadata("my-id"))[REQUEST_ID_METADATA] == "my-id"
        assert client._metadata(None) != client._metadata(None)  # a fresh id per call
        assert "s3cret-value" not in repr(client)
    finally:
        client.close()
    open_client = AutoInterpClient("127.0.0.1:1")
    try:
        assert SECRET_METADATA not in dict(open_client._metadata(None))
    finally:
        open_client.close()


# ---- the per-RPC methods, generated from the service descriptor ----------------------------

RPC_METHODS = {
    "ExplainDefault": "explain_default",
    "ScoreEmbedding": "score_embedding",
    "ScoreFuzzDetection": "score_fuzz_detection",
    "ListMethods": "list_methods",
    "Explain": "explain",
    "Score": "score",
    "ExplainAndScore": "explain_and_score",
}


@pytest.mark.parametrize("cls", [AutoInterpClient, AsyncAutoInterpClient])
def test_every_rpc_is_a_method_of_both_clients(cls: type) -> None:
    service = pb.DESCRIPTOR.services_by_name["AutoInterp"]
    assert {m.name: RPC_METHODS.get(m.name) for m in service.methods} == RPC_METHODS
    for attribute in RPC_METHODS.values():
        parameters = inspect.signature(getattr(cls, attribute)).parameters
        expected = ["self", "timeout", "request_id"]
        if attribute != "list_methods":  # ListMethodsRequest has no fields
            expected.insert(1, "request")
        assert list(parameters) == expected, attribute
        assert parameters["timeout"].kind is inspect.Parameter.KEYWORD_ONLY


@pytest.mark.parametrize("cls", [AutoInterpClient, AsyncAutoInterpClient])
def test_each_method_is_typed_with_its_rpcs_messages(cls: type) -> None:
    """What a type checker reads of each method: its RPC's own request message (or a JSON dict),
    and its response (sync), the grpc.aio call of both (async) or the client's event stream."""
    stream = {AutoInterpClient: EventStream, AsyncAutoInterpClient: AsyncEventStream}[cls]
    (base,) = cls.__orig_bases__
    assert typing.get_args(base) == (stream,)  # StreamT, as the streaming method returns it
    for method in pb.DESCRIPTOR.services_by_name["AutoInterp"].methods:
        request = getattr(pb, method.input_type.name)
        response = getattr(pb, method.output_type.name)
        hints = typing.get_type_hints(getattr(cls, RPC_METHODS[method.name]))
        if method.input_type.fields:
            assert hints["request"] == request | Mapping[str, typing.Any], method.name
        if method.server_streaming:
            assert isinstance(hints["return"], typing.TypeVar), method.name
        elif cls is AsyncAutoInterpClient:
            assert hints["return"] == grpc.aio.UnaryUnaryCall[request, response], method.name
        else:
            assert hints["return"] is response, method.name


class RecordingStub:
    """Stands in for the generated stub: records each call, answers with a marker."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, object, float | None, dict[str, str]]] = []

    def __getattr__(self, name: str):
        def call(message, *, timeout, metadata):
            self.calls.append((name, message, timeout, dict(metadata)))
            return f"call:{name}"

        return call


def test_methods_send_the_message_deadline_and_metadata() -> None:
    client = AutoInterpClient("127.0.0.1:1", secret="s", timeout=5)
    try:
        stub = RecordingStub()
        client._stub = stub
        assert client.explain({"method": "default"}, request_id="r-1") == "call:Explain"
        assert client.list_methods(timeout=2) == "call:ListMethods"
        stream = client.explain_and_score({"features": [{"id": "a"}]})
        assert isinstance(stream, EventStream)
        (n1, m1, t1, md1), (n2, m2, t2, _), (n3, m3, t3, md3) = stub.calls
        assert (n1, m1, t1) == ("Explain", pb.ExplainRequest(method="default"), 5)
        assert md1 == {REQUEST_ID_METADATA: "r-1", SECRET_METADATA: "s"}
        assert (n2, m2, t2) == ("ListMethods", pb.ListMethodsRequest(), 2)
        assert n3 == "ExplainAndScore" and m3.features[0].id == "a"
        assert t3 is None  # streams have no deadline unless one is given
        assert stream.request_id == md3[REQUEST_ID_METADATA]
        with pytest.raises(TypeError, match="ExplainRequest"):
            client.explain(pb.ScoreRequest())
    finally:
        client.close()
