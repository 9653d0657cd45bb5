"""Every explainer and scorer behind one request shape.

:mod:`~autointerp_grpc.methods.registry` holds one :class:`MethodSpec` per method; the
Explain/Score handlers dispatch through it and ListMethods is generated from it. Adding a
method is one registry entry (in ``explainers.py`` or ``scorers.py``) plus its parameters
message in the proto.
"""
