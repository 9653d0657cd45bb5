"""What LLM calls cost: the operator's price table, and token counts for estimates.

The price table (``AUTOINTERP_LLM__PRICES``) maps a model, as callers name it, to dollars per
million tokens: ``input``, ``cached_input`` (prompt tokens the provider served from its prompt
cache, ``usage.prompt_tokens_details.cached_tokens``; the input price when not given) and
``output``, and optionally ``batch_discount``, the fraction a provider's Batch API takes off
(0.5 when not given: OpenAI's and Anthropic's batch prices are half the live ones)::

    {"openai/gpt-4o-mini": {"input": 0.15, "cached_input": 0.075, "output": 0.6}}

A call's cost is the provider's own figure where it reports one (OpenRouter's ``usage.cost``,
which the service asks for), else the table's, else unknown.

:func:`count_tokens` counts a prompt's tokens without calling a model: with tiktoken's
``o200k_base`` encoding where it can be loaded (tiktoken downloads it once into its cache,
``TIKTOKEN_CACHE_DIR``), else at 4 characters a token, OpenAI's rule of thumb for English.
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

log = logging.getLogger(__name__)

DEFAULT_BATCH_DISCOUNT = 0.5
DRY_RUN_COMPLETION_TOKENS = 20
"""Completion tokens a dry run counts per call: an assumption (its prompts are rendered and
counted, but no model writes its answers)."""
MAX_PRICE_PER_MILLION = 10_000.0
"""More dollars per million tokens than any model costs: a price past it is a typo."""
_PRICE_FIELDS = ("input", "cached_input", "output", "batch_discount")
MESSAGE_OVERHEAD_TOKENS = 4
"""Tokens a chat API adds per message (role and separators), on top of its content's."""
CHARS_PER_TOKEN = 4
ENCODING = "o200k_base"
_ENCODING_LOAD_S = 10.0


@dataclass(frozen=True)
class Price:
    """One model's prices, dollars per million tokens."""

    input: float
    cached_input: float
    output: float
    batch_discount: float = DEFAULT_BATCH_DISCOUNT

    def cost(
        self,
        prompt_tokens: int,
        completion_tokens: int,
        cached_prompt_tokens: int = 0,
        batch: bool = False,
    ) -> float:
        """Dollars for one call's (or a sum of calls') tokens; ``batch`` at the Batch API's
        discount. Cached prompt tokens are part of ``prompt_tokens``."""
        cached = min(max(0, cached_prompt_tokens), max(0, prompt_tokens))
        dollars = (
            (max(0, prompt_tokens) - cached) * self.input
            + cached * self.cached_input
            + max(0, completion_tokens) * self.output
        ) / 1e6
        return dollars * (1.0 - self.batch_discount) if batch else dollars


class PriceError(ValueError):
    """A price table that cannot be used (the message names the model and field)."""


def _number(model: str, name: str, value: Any, upper: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise PriceError(f"{model!r}: {name} must be a number")
    number = float(value)
    if not (math.isfinite(number) and 0 <= number <= upper):
        raise PriceError(f"{model!r}: {name} must be between 0 and {upper:g}")
    return number


class PriceTable:
    """Model -> :class:`Price`, from the ``AUTOINTERP_LLM__PRICES`` JSON object."""

    def __init__(self, prices: Mapping[str, Price] | None = None) -> None:
        self.prices = dict(prices or {})

    @classmethod
    def parse(cls, table: Mapping[str, Any]) -> PriceTable:
        """The table ``table`` (parsed JSON) describes; :class:`PriceError` naming the model
        and field when an entry is not a price."""
        prices: dict[str, Price] = {}
        for model, entry in table.items():
            if not str(model).strip():
                raise PriceError("model names must not be empty")
            if not isinstance(entry, Mapping):
                raise PriceError(f"{model!r} must map to an object of prices")
            unknown = sorted(set(entry) - set(_PRICE_FIELDS))
            if unknown:
                raise PriceError(
                    f"{model!r}: unknown field {unknown[0]!r}; use {', '.join(_PRICE_FIELDS)}"
                )
            for required in ("input", "output"):
                if required not in entry:
                    raise PriceError(f"{model!r}: {required} is required")
            given = {
                name: _number(model, name, entry[name], 1.0 if name == "batch_discount" else 1e4)
                for name in _PRICE_FIELDS
                if name in entry
            }
            prices[str(model)] = Price(
                input=given["input"],
                cached_input=given.get("cached_input", given["input"]),
                output=given["output"],
                batch_discount=given.get("batch_discount", DEFAULT_BATCH_DISCOUNT),
            )
        return cls(prices)

    def get(self, model: str) -> Price | None:
        return self.prices.get(model)

    def cost(
        self,
        model: str,
        prompt_tokens: int,
        completion_tokens: int,
        cached_prompt_tokens: int = 0,
        batch: bool = False,
    ) -> float | None:
        """Dollars by the table, or None when it has no price for ``model``."""
        price = self.prices.get(model)
        if price is None:
            return None
        return price.cost(prompt_tokens, completion_tokens, cached_prompt_tokens, batch)


# ---- counting tokens without a model --------------------------------------------------------

_encoder: Any = None
_encoder_tried = False
_encoder_lock = threading.Lock()


def _load_encoder() -> Any:
    """tiktoken's encoding, or None where it cannot be had (no cached copy and no network).
    Tried once per process, for at most a few seconds (a download that hangs is given up)."""
    global _encoder, _encoder_tried  # noqa: PLW0603 - one encoder per process
    with _encoder_lock:
        if _encoder_tried:
            return _encoder
        found: list[Any] = []

        def load() -> None:
            try:
                import tiktoken

                found.append(tiktoken.get_encoding(ENCODING))
            except Exception:  # no cached copy and no network: count by characters
                return

        worker = threading.Thread(target=load, name="autointerp-tiktoken", daemon=True)
        worker.start()
        worker.join(_ENCODING_LOAD_S)
        _encoder = found[0] if found else None
        _encoder_tried = True
        if _encoder is None:
            log.info(
                "tiktoken's %s encoding is not available here; estimates count 4 characters "
                "a token",
                ENCODING,
            )
        return _encoder


def token_counter() -> str:
    """How :func:`count_tokens` counts here: ``tiktoken:o200k_base`` or ``chars/4``."""
    return f"tiktoken:{ENCODING}" if _load_encoder() is not None else f"chars/{CHARS_PER_TOKEN}"


def count_text_tokens(text: str) -> int:
    encoder = _load_encoder()
    if encoder is not None:
        return len(encoder.encode(text, disallowed_special=()))
    return len(text) // CHARS_PER_TOKEN


def count_tokens(messages: list[dict[str, str]]) -> int:
    """The prompt tokens of a chat request's ``messages`` (at least 1)."""
    encoder = _load_encoder()
    if encoder is None:
        # The whole prompt's characters at once, as a provider's rule of thumb counts them.
        chars = sum(len(m.get("content", "")) for m in messages)
        return max(1, chars // CHARS_PER_TOKEN)
    return max(
        1,
        sum(
            len(encoder.encode(m.get("content", ""), disallowed_special=()))
            + MESSAGE_OVERHEAD_TOKENS
            for m in messages
        ),
    )
