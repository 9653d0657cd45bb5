"""Test doubles for autointerp's tests, benchmarks and client examples.

Nothing on the service's runtime path imports this package, and nothing in a production
prompt exists to help a double recognise it: :mod:`autointerp_grpc.testing.fake_llm` tells
the prompts apart by their content, as a real model reads them.
"""
