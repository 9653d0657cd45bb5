"""The gRPC door's server: grpc.aio with the service, ``grpc.health.v1`` and reflection."""

from __future__ import annotations

import grpc
from grpc_health.v1 import health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from autointerp_grpc.config import Settings
from autointerp_grpc.grpc.health import SERVICE_NAME as HEALTH_SERVICE_NAME
from autointerp_grpc.grpc.health import HealthServicer
from autointerp_grpc.grpc.servicer import rpc_handler
from autointerp_grpc.service import SERVICE, AutoInterpService


def grpc_server(
    settings: Settings, service: AutoInterpService, health: HealthServicer
) -> grpc.aio.Server:
    """A grpc.aio server serving ``service``, ``health`` and reflection of both; not yet
    listening (the runtime binds its port, so that a taken one is a clear startup error)."""
    server = grpc.aio.server(
        options=[
            # Larger messages are refused by grpc itself with RESOURCE_EXHAUSTED.
            ("grpc.max_receive_message_length", settings.limits.max_request_bytes),
            ("grpc.max_send_message_length", 64 * 1024 * 1024),
            # Clients reconnect (and re-resolve DNS) every few minutes, so replicas added by
            # an autoscaler get traffic; RPCs in flight on an old connection are not cut.
            ("grpc.max_connection_age_ms", 5 * 60 * 1000),
            # Metadata is open to anyone (health needs no secret): bounded like REST heads.
            ("grpc.max_metadata_size", settings.limits.max_header_bytes),
            ("grpc.absolute_max_metadata_size", settings.limits.max_header_bytes),
            # Connections with nothing in flight are closed after a while.
            ("grpc.max_connection_idle_ms", 5 * 60 * 1000),
            # grpc sets SO_REUSEPORT by default: a second instance on a taken port would
            # start, and the kernel would split new connections between the two.
            ("grpc.so_reuseport", 0),
        ]
    )
    server.add_generic_rpc_handlers((rpc_handler(service),))
    health_pb2_grpc.add_HealthServicer_to_server(health, server)
    reflection.enable_server_reflection(
        (SERVICE.full_name, HEALTH_SERVICE_NAME, reflection.SERVICE_NAME), server
    )
    return server
