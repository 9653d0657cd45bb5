"""The gRPC door: the grpc.aio server with the service, health checking and reflection.

* :mod:`~autointerp_grpc.grpc.server`: the server, its options and what it serves;
* :mod:`~autointerp_grpc.grpc.servicer`: one generic handler for every RPC of the proto;
* :mod:`~autointerp_grpc.grpc.health`: ``grpc.health.v1`` on the event loop.

The package shares its name with the ``grpc`` library; every module here imports the library
absolutely (``import grpc``), which finds the library, never this package.
"""
