"""Test doubles for autointerp's tests, benchmarks and client examples.

A distribution of its own (``testing/pyproject.toml``, installed editable by ``make install``)
rather than a subpackage of the service, so that the service's wheel and images never carry
it. Nothing on the service's runtime path imports this package, and nothing in a production
prompt exists to help a double recognise it: :mod:`autointerp_testing.fake_llm` tells the
prompts apart by their content, as a real model reads them.
"""
