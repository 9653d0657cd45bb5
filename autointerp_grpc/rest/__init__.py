"""The REST door: JSON over HTTP/1.1, served by Starlette on uvicorn.

* :mod:`~autointerp_grpc.rest.app`: the ASGI app (the RPC routes, ``/health``, ``/metrics``,
  ``/openapi.json``, ``/docs``, the middleware and the error handlers);
* :mod:`~autointerp_grpc.rest.routes`: one route per RPC, from its ``google.api.http`` option;
* :mod:`~autointerp_grpc.rest.errors`: the error body and the HTTP ↔ gRPC status table;
* :mod:`~autointerp_grpc.rest.middleware`: ``x-request-id`` on every response;
* :mod:`~autointerp_grpc.rest.jsonmap` and :mod:`~autointerp_grpc.rest.fastjson`: the proto3
  JSON codec;
* :mod:`~autointerp_grpc.rest.openapi` and :mod:`~autointerp_grpc.rest.docs`:
  ``/openapi.json`` and ``/docs``;
* :mod:`~autointerp_grpc.rest.http_protocol`: uvicorn's h11 protocol with bounded request
  heads.

Importing the package imports none of them (the CLI reads the JSON codec alone).
"""
