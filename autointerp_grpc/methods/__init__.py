"""Every explainer and scorer behind one request shape.

:mod:`~autointerp_grpc.methods.registry` holds one :class:`~.spec.ExplainerSpec` or
:class:`~.spec.ScorerSpec` per method; the Explain/Score handlers dispatch through it and
ListMethods is generated from it. Adding a method is one registry entry (in ``explainers.py``
or ``scorer_specs.py``) plus its parameters message in the proto, then ``make protos`` for its
typed parameters class (``gen/params.py``). ``scorer_common.py`` holds what every scorer
shares (concurrency, the answered-items rules, the classifier result).
"""
