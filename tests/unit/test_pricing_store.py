"""The price table, the cost of a call (the provider's figure first, else the table's, cached
prompt tokens at their price) and the response store's keys and entries."""

from __future__ import annotations

import math
from pathlib import Path
from types import SimpleNamespace

import pytest

from autointerp_grpc.backends.llm import LLMClient, _StoreUse
from autointerp_grpc.backends.store import SqliteStore, StoredAnswer, call_key
from autointerp_grpc.pricing import PriceError, PriceTable, count_tokens

PRICES = {"m": {"input": 2.0, "cached_input": 0.5, "output": 8.0}}


def test_the_table_prices_input_cached_and_output_tokens() -> None:
    table = PriceTable.parse(PRICES)
    # 1,000 prompt tokens of which 400 cached, 100 completion tokens.
    assert table.cost("m", 1000, 100, 400) == pytest.approx((600 * 2 + 400 * 0.5 + 100 * 8) / 1e6)
    assert table.cost("m", 1000, 100, 400, batch=True) == pytest.approx(
        (600 * 2 + 400 * 0.5 + 100 * 8) / 1e6 / 2
    )
    assert table.cost("unknown", 1000, 100) is None
    # cached_input defaults to the input price.
    assert PriceTable.parse({"x": {"input": 1, "output": 1}}).cost("x", 10, 0, 10) == 1e-5


@pytest.mark.parametrize(
    ("table", "named"),
    [
        ({"m": {"input": -1, "output": 1}}, "input"),
        ({"m": {"input": math.inf, "output": 1}}, "input"),
        ({"m": {"input": 1}}, "output"),
        ({"m": {"input": 1, "output": "1"}}, "output"),
        ({"m": {"input": 1, "output": 1, "batch_discount": 2}}, "batch_discount"),
        ({"m": {"input": 1, "output": 1, "inptu": 1}}, "inptu"),
        ({"m": 3}, "'m'"),
    ],
)
def test_a_bad_price_names_model_and_field(table: dict, named: str) -> None:
    with pytest.raises(PriceError, match=named):
        PriceTable.parse(table)


def _client(prices: dict) -> LLMClient:
    return LLMClient(
        SimpleNamespace(),  # pyright: ignore[reportArgumentType] (never called here)
        "m",
        "sk-unused",
        store=_StoreUse(prices=PriceTable.parse(prices)),
    )


def test_the_providers_cost_wins_and_the_table_fills_in() -> None:
    client = _client(PRICES)
    reported = SimpleNamespace(
        prompt_tokens=1000,
        completion_tokens=100,
        prompt_tokens_details={"cached_tokens": 400},
        model_extra={"cost": 0.25},
    )
    counted = client._account(0.0, "ok", reported)
    assert counted.cost == 0.25 and counted.cached_prompt_tokens == 400
    silent = SimpleNamespace(
        prompt_tokens=1000,
        completion_tokens=100,
        prompt_tokens_details=SimpleNamespace(cached_tokens=400),
        model_extra={},
    )
    assert client._account(0.0, "ok", silent).cost == pytest.approx(0.0022)
    # A hostile cached count (over the prompt, negative, a string) is clamped or ignored.
    for cached in (10**12, -5, "400"):
        odd = SimpleNamespace(
            prompt_tokens=1000,
            completion_tokens=0,
            prompt_tokens_details={"cached_tokens": cached},
            model_extra={},
        )
        assert 0 <= client._account(0.0, "ok", odd).cached_prompt_tokens <= 1000
    usage = client.usage
    assert usage.cached_prompt_tokens == 400 + 400 + 0 + 0 + 0
    assert usage.cost == pytest.approx(0.25 + 0.0022 + 3 * 0.002)
    # Unpriced and unreported: unknown, never 0.
    assert _client({})._account(0.0, "ok", silent).cost is None


def test_the_key_covers_what_changes_an_answer_and_nothing_else() -> None:
    messages = [{"role": "user", "content": "hello"}]
    base = call_key("openrouter", "m", messages, {"temperature": 0.0})
    assert base == call_key("openrouter", "m", [dict(messages[0])], {"temperature": 0.0})
    for other in (
        call_key("local", "m", messages, {"temperature": 0.0}),
        call_key("openrouter", "m2", messages, {"temperature": 0.0}),
        call_key("openrouter", "m", [{"role": "user", "content": "hello!"}], {"temperature": 0}),
        call_key("openrouter", "m", messages, {"temperature": 0.7}),
        call_key("openrouter", "m", messages, {"temperature": 0.0, "logprobs": True}),
        call_key("openrouter", "m", messages, {"temperature": 0.0}, candidate=1),
    ):
        assert other != base


async def test_sqlite_entries_round_trip_and_damaged_ones_are_misses(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "nested" / "dir")
    answer = StoredAnswer("text", [{"token": "a", "logprob": -1.0}], "m", 3, 4, 1, None, 5.0)
    try:
        assert await store.get("k") is None
        await store.put("k", answer)
        assert await store.get("k") == answer
        assert await store.count() == 1
    finally:
        await store.aclose()
    assert StoredAnswer.from_json("not json") is None
    assert StoredAnswer.from_json('{"content": 3}') is None
    assert StoredAnswer.from_json("[" * 100_000) is None


def test_prompt_tokens_are_counted_without_a_model() -> None:
    short = count_tokens([{"role": "user", "content": "the cat sat on the mat"}])
    long = count_tokens([{"role": "user", "content": "the cat sat on the mat " * 100}])
    assert 1 <= short < long
    assert 50 * short <= long <= 200 * short
