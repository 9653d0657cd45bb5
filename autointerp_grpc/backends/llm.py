"""The LLM side: pooled OpenAI-SDK clients for the process, and delphi ``Client``s over them.

:class:`LLMBackend` owns one ``AsyncOpenAI`` client per configured provider, each on a
keep-alive HTTP connection pool per base URL (retries with backoff for 429/5xx/connection
errors come from the SDK). Each request gets an :class:`LLMClient` — delphi's ``Client``
interface — that carries the caller's model and API key on every call through
``with_options``, which shares the pool. The key lives only as long as the request's client
object. A process-wide semaphore caps the upstream calls in flight across all requests
(``AUTOINTERP_LLM_MAX_CONCURRENCY``).

Provider failures become typed errors (see :func:`translate_provider_error`) whose messages
never contain the key.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from typing import Any

import httpx2
import openai
from openai.types.chat import ChatCompletion

from autointerp_grpc.config import Settings
from autointerp_grpc.delphi_compat import Client, Response
from autointerp_grpc.errors import (
    AutoInterpError,
    FailedPrecondition,
    InvalidArgument,
    ResourceExhausted,
    Unavailable,
    UpstreamBadResponse,
)
from autointerp_grpc.observability import Metrics, current_request
from autointerp_grpc.prompts import strip_reasoning
from autointerp_grpc.usage import Usage

log = logging.getLogger(__name__)

# What delphi's explainers and scorers pass that the chat-completions API understands.
_FORWARDED_KWARGS = (
    "max_tokens",
    "temperature",
    "logprobs",
    "top_logprobs",
    "response_format",
    "reasoning_effort",
)
_PROVIDER_MESSAGE_LIMIT = 300


# More tokens than any model's context: a reported count past it is not a count.
_MAX_PLAUSIBLE_TOKENS = 100_000_000


def _token_count(value: Any) -> int:
    if (
        isinstance(value, int)
        and not isinstance(value, bool)
        and 0 <= value <= _MAX_PLAUSIBLE_TOKENS
    ):
        return value
    return 0


def _redact(text: str, secret: str) -> str:
    return text.replace(secret, "[redacted]") if secret else text


def _provider_message(exc: openai.APIStatusError, api_key: str) -> str:
    body = exc.body
    message = ""
    if isinstance(body, dict):
        inner = body.get("error", body)
        message = inner.get("message", "") if isinstance(inner, dict) else str(inner)
    message = _redact(str(message), api_key).strip()
    if len(message) > _PROVIDER_MESSAGE_LIMIT:
        message = message[:_PROVIDER_MESSAGE_LIMIT] + "…"
    return f": {message}" if message else ""


def translate_provider_error(exc: openai.OpenAIError, api_key: str) -> AutoInterpError:
    """Map an OpenAI-SDK error (after the SDK's own retries) to one of our typed errors."""
    if isinstance(exc, openai.APITimeoutError):
        return Unavailable("The LLM provider did not answer in time")
    if isinstance(exc, openai.APIConnectionError):
        return Unavailable("Could not connect to the LLM provider")
    if not isinstance(exc, openai.APIStatusError):
        return UpstreamBadResponse("The LLM provider's answer could not be read")
    status = exc.status_code
    detail = _provider_message(exc, api_key)
    if status in (401, 403):
        return FailedPrecondition(
            f"The LLM provider rejected the API key (HTTP {status}){detail}. "
            "Check that the openrouter_key is valid."
        )
    if status == 402:
        return FailedPrecondition(
            f"The LLM provider refused the request: the account has no credits left "
            f"(HTTP 402){detail}. Add credits or use another key."
        )
    if status == 429:
        return ResourceExhausted(f"The LLM provider is rate limiting requests (HTTP 429){detail}")
    if status >= 500:
        return Unavailable(f"The LLM provider failed (HTTP {status}){detail}")
    # 400, 404, 422: the provider did not accept what we sent on the caller's behalf, most often
    # an unknown model name.
    return InvalidArgument(f"The LLM provider rejected the request (HTTP {status}){detail}")


class LLMBackend:
    """The process-wide upstream connection pool and one OpenAI-SDK client per provider.

    Providers are the endpoints the operator configured (``Settings.providers()``); callers
    pick one by name and never send a URL. All of them share one HTTP connection pool with
    keep-alive (connections are pooled per origin inside it).
    """

    def __init__(self, settings: Settings, metrics: Metrics | None = None) -> None:
        self.metrics = metrics or Metrics()
        limits = httpx2.Limits(
            max_connections=settings.llm_max_connections,
            max_keepalive_connections=settings.llm_max_connections,
        )
        # One keep-alive connection pool per base URL, shared by every request to it.
        self._pools = {
            url: openai.DefaultAsyncHttpxClient(limits=limits)
            for url in set(settings.providers().values())
        }
        self.default_provider = settings.llm_default_provider
        self._providers = {
            name: openai.AsyncOpenAI(
                # Every request brings its own key (with_options); this placeholder is never sent.
                api_key="unset",
                base_url=url,
                http_client=self._pools[url],
                timeout=settings.llm_timeout_s,
                max_retries=settings.llm_max_retries,
            )
            for name, url in settings.providers().items()
        }
        # Process-wide cap on upstream calls in flight, across every request.
        self._gate = asyncio.Semaphore(settings.llm_max_concurrency)
        # One call, its retries included, never takes longer than this.
        self._total_timeout_s = settings.llm_timeout_s * (settings.llm_max_retries + 1)

    @property
    def provider_names(self) -> list[str]:
        """Configured provider names, the default first."""
        return sorted(self._providers, key=lambda name: (name != self.default_provider, name))

    def client(
        self,
        model: str,
        api_key: str,
        provider: str = "",
        max_tokens: int | None = None,
        reasoning_effort: str = "",
    ) -> LLMClient:
        """A delphi ``Client`` for one request: its model, key and options over the shared pool."""
        name = provider or self.default_provider
        base = self._providers.get(name)
        if base is None:
            raise InvalidArgument(
                "llm.provider is not configured on this server; "
                f"use one of: {', '.join(self.provider_names)}"
            )
        overrides: dict[str, Any] = {}
        if max_tokens is not None:
            overrides["max_tokens"] = max_tokens
        if reasoning_effort:
            overrides["reasoning_effort"] = reasoning_effort
        return LLMClient(
            base.with_options(api_key=api_key),
            model,
            api_key,
            overrides,
            gate=self._gate,
            observer=_Observer(self.metrics, name, model),
            total_timeout_s=self._total_timeout_s,
        )

    async def aclose(self) -> None:
        for pool in self._pools.values():
            await pool.aclose()


class _Observer:
    """Records one client's upstream calls in the metrics and the current request's stats."""

    def __init__(self, metrics: Metrics, provider: str, model: str) -> None:
        self._metrics = metrics
        self._labels = (provider, metrics.model_label(model))

    def call(
        self, seconds: float, outcome: str, prompt_tokens: int, completion_tokens: int
    ) -> None:
        m = self._metrics
        m.llm_calls.labels(*self._labels, outcome).inc()
        m.llm_seconds.labels(*self._labels).observe(seconds)
        m.llm_tokens.labels(*self._labels, "prompt").inc(prompt_tokens)
        m.llm_tokens.labels(*self._labels, "completion").inc(completion_tokens)
        stats = current_request.get()
        if stats is not None:
            stats.usage.add_call(prompt_tokens, completion_tokens)


@dataclass
class _CallLog:
    usage: Usage = field(default_factory=Usage)
    errors: list[AutoInterpError] = field(default_factory=list)
    answers: list[str] = field(default_factory=list)
    logprobs_requested: int = 0
    logprobs_returned: int = 0


def _plain_messages(prompt: str | list[dict[str, Any]]) -> list[dict[str, str]]:
    if isinstance(prompt, str):
        return [{"role": "user", "content": prompt}]
    # delphi's simulator builds roles as a str Enum; send their plain values.
    return [
        {"role": str(getattr(m["role"], "value", m["role"])), "content": m["content"]}
        for m in prompt
    ]


class LLMClient(Client):
    """delphi ``Client`` backed by the OpenAI SDK's chat-completions API.

    Only the model's final answer is returned: a reasoning trace inline in the content
    (``<think>...</think>``) is stripped, and one the provider sends separately is never
    read. Failed calls raise typed errors; they are also remembered in :attr:`errors`, because
    delphi's classifier scorers swallow exceptions from ``generate`` and mark the batch
    unanswered, and the handler then needs to say why nothing was answered.
    """

    def __init__(
        self,
        openai_client: openai.AsyncOpenAI,
        model: str,
        api_key: str,
        overrides: dict[str, Any] | None = None,
        *,
        gate: asyncio.Semaphore | None = None,
        observer: _Observer | None = None,
        total_timeout_s: float = 600.0,
    ) -> None:
        super().__init__(model)
        self._total_timeout_s = total_timeout_s
        self._openai = openai_client
        self._api_key = api_key
        self._overrides = overrides or {}
        self._gate = gate or asyncio.Semaphore(1)
        self._observer = observer
        self._log = _CallLog()

    @property
    def usage(self) -> Usage:
        return self._log.usage

    @property
    def errors(self) -> list[AutoInterpError]:
        return self._log.errors

    @property
    def answers(self) -> list[str]:
        """Final answers received, in order."""
        return self._log.answers

    @property
    def logprobs_missing(self) -> bool:
        """Log probabilities were asked for and the provider sent none."""
        return self._log.logprobs_requested > 0 and self._log.logprobs_returned == 0

    async def generate(  # type: ignore[override]
        self, prompt: str | list[dict[str, Any]], **kwargs: Any
    ) -> Response:
        params = {k: kwargs[k] for k in _FORWARDED_KWARGS if k in kwargs}
        params.update(self._overrides)
        began = time.perf_counter()
        try:
            async with self._gate, asyncio.timeout(self._total_timeout_s):
                # The SDK's own HTTP path (auth, retries with backoff, typed errors and
                # response), minus chat.completions.create's recursive parameter transform,
                # which costs milliseconds per call on delphi's long prompts and has nothing
                # to convert in plain string messages. The SDK's timeout bounds each read;
                # the total here bounds a provider that drips its answer slowly.
                completion = await self._openai.post(
                    "/chat/completions",
                    body={"model": self.model, "messages": _plain_messages(prompt), **params},
                    cast_to=ChatCompletion,
                )
        except (openai.OpenAIError, TimeoutError, ValueError) as exc:
            if isinstance(exc, TimeoutError):
                error: AutoInterpError = Unavailable("The LLM provider did not answer in time")
            elif isinstance(exc, ValueError):
                # The SDK decodes a 200 whose body is not JSON with json.loads.
                error = UpstreamBadResponse("The LLM provider's answer is not a chat completion")
            else:
                error = translate_provider_error(exc, self._api_key)
            self._log.errors.append(error)
            self._account(began, error.code_name, None)
            raise error from None
        try:
            usage = getattr(completion, "usage", None)
            self._account(began, "ok", usage)
            choice = completion.choices[0]
            text = strip_reasoning(choice.message.content or "")
            logprobs = choice.logprobs.content if choice.logprobs is not None else None
            if not isinstance(text, str):
                raise TypeError("content is not text")
        except (AttributeError, TypeError, IndexError, KeyError, ValueError):
            # An HTTP 200 whose body is not a chat completion (not JSON, `choices` not a
            # list, no message, ...): the SDK hands it over unvalidated.
            error = UpstreamBadResponse("The LLM provider's answer is not a chat completion")
            self._log.errors.append(error)
            raise error from None
        self._log.answers.append(text)
        if params.get("logprobs"):
            self._log.logprobs_requested += 1
            self._log.logprobs_returned += 1 if logprobs else 0
        # delphi annotates Response.logprobs as list[float], but its scorers read OpenAI's
        # per-token objects (``.top_logprobs``), which is what is passed here.
        return Response(text=text, logprobs=logprobs or None)  # pyright: ignore[reportArgumentType]

    def _account(self, began: float, outcome: str, usage: Any) -> None:
        """Count one call (and what its answer reported) in the request's usage and the
        metrics; counts a provider reported that are not plausible token counts read as 0."""
        prompt = _token_count(getattr(usage, "prompt_tokens", 0))
        completion = _token_count(getattr(usage, "completion_tokens", 0))
        # OpenRouter reports the call's cost as an extra usage field.
        extra = getattr(usage, "model_extra", None)
        cost = extra.get("cost") if isinstance(extra, dict) else None
        cost = float(cost) if isinstance(cost, int | float) and not isinstance(cost, bool) else None
        self._log.usage.add_call(prompt, completion, cost)
        if self._observer is not None:
            self._observer.call(time.perf_counter() - began, outcome, prompt, completion)
