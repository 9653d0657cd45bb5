"""A failed batch request's reason is kept in the ledger and may reach a caller's error:
never with the API key a hostile provider echoed into it (issue 21; DESIGN §3b)."""

from __future__ import annotations

from types import SimpleNamespace

from autointerp_grpc.backends.batch import BatchRound
from autointerp_grpc.pricing import PriceTable

KEY = "sk-batch-echo-0123456789abcdef"


async def test_a_failure_reason_never_holds_the_api_key() -> None:
    client = SimpleNamespace(api_key=KEY)
    round_ = BatchRound(
        client,  # pyright: ignore[reportArgumentType]
        SimpleNamespace(store=None),  # pyright: ignore[reportArgumentType]
        provider="p",
        model="m",
        prices=PriceTable({}),
        answer_bytes=1 << 20,
    )
    # The key at the very end of a long message: cut after redaction, no part of it stays.
    for message in (f"Invalid key {KEY}", "x" * 190 + KEY, KEY.upper()):
        reason = await round_._store_line("k", {"error": {"message": message}})
        assert reason.startswith("the provider failed the request: ")
        assert KEY[:8].lower() not in reason.lower(), reason
