"""The LLM side: pooled OpenAI-SDK clients for the process, and delphi ``Client``s over them.

:class:`LLMBackend` owns one ``AsyncOpenAI`` client per configured provider, each on a
keep-alive HTTP connection pool per base URL (retries with backoff for 429/5xx/connection
errors come from the SDK). Each request gets an :class:`LLMClient` — delphi's ``Client``
interface — that carries the caller's model and API key on every call through
``with_options``, which shares the pool. The key lives only as long as the request's client
object. A process-wide :class:`~autointerp_grpc.backends.llm_transport.FairGate` caps the
upstream calls in flight across all requests (``AUTOINTERP_LLM_MAX_CONCURRENCY``): a call
waits for a slot at most ``AUTOINTERP_LLM_SLOT_WAIT_S`` and never past its request's time
limit (then RESOURCE_EXHAUSTED), and a free slot goes to the waiting request with the fewest
calls in flight.

What a provider sends is bounded before it is parsed: the response body, decoded, to
``AUTOINTERP_LLM_MAX_RESPONSE_BYTES`` (read as a stream, see
:class:`~autointerp_grpc.backends.llm_transport.BoundedHttpxClient`); the answer's content to
``AUTOINTERP_LLM_MAX_ANSWER_BYTES``; both UNAVAILABLE beyond. A body nested too deeply to
decode is UNAVAILABLE too, and a big answer is cleaned on a worker thread.

Provider failures become typed errors (see :func:`translate_provider_error`) whose messages
never contain the key, in any form (:func:`~autointerp_grpc.redaction.redact_value`).

Every call is first looked up in the response store, where one is configured
(:mod:`~autointerp_grpc.backends.store`): a stored answer is returned without a provider call
and counted as ``usage.cachedResponses``; an answer the provider sends is stored. A call's cost
is the provider's figure, else the price table's (:mod:`~autointerp_grpc.pricing`). A dry run
(``LlmOptions.dry_run``) makes no call at all: it counts each rendered prompt's tokens.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from dataclasses import dataclass, field
from typing import Any

import httpx2
import openai
from openai.types.chat import ChatCompletion

from autointerp_grpc.backends.adaptive import AdaptiveGate, AdaptiveLimits, AdaptiveWaitExpired
from autointerp_grpc.backends.batch import (
    BATCH_FILE_MAX_READ_BYTES,
    MAX_BATCH_ATTEMPTS,
    BatchRound,
    CallPending,
    pending_calls,
)
from autointerp_grpc.backends.llm_transport import (
    BoundedHttpxClient,
    FairGate,
    ResponseTooLarge,
    SlotWaitExpired,
)
from autointerp_grpc.backends.store import (
    GuardedStore,
    StoredAnswer,
    call_key,
    candidate_index,
    open_store,
)
from autointerp_grpc.config import Settings
from autointerp_grpc.delphi_compat import Client, Response
from autointerp_grpc.errors import (
    AutoInterpError,
    DeadlineExceeded,
    FailedPrecondition,
    InvalidArgument,
    ResourceExhausted,
    Unavailable,
    UpstreamBadResponse,
)
from autointerp_grpc.observability import Metrics, current_request
from autointerp_grpc.offload import OFF_LOOP_ITEMS, bytes_as_items, off_loop
from autointerp_grpc.pricing import (
    CHARS_PER_TOKEN,
    DRY_RUN_COMPLETION_TOKENS,
    PriceTable,
    count_tokens,
)
from autointerp_grpc.prompts import strip_reasoning
from autointerp_grpc.redaction import redact_value
from autointerp_grpc.usage import Usage, plausible_cost

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
# How much of a provider's error message is looked at (redacted, then cut to the limit).
_PROVIDER_MESSAGE_SCAN = 64 * 1024
# Answers at least this long (characters) are cleaned on a worker thread.
OFF_LOOP_ANSWER_CHARS = 32 * 1024
# A call stops waiting for a slot this long before its request's time limit, to say why.
_DEADLINE_MARGIN_S = 0.25


# More tokens than any model's context: a reported count past it is not a count.
_MAX_PLAUSIBLE_TOKENS = 100_000_000

DRY_RUN_ANSWER = "[EXPLANATION]: placeholder answer of a dry run (no LLM call was made)"
"""What a dry run's calls answer: a default-explainer answer, so an explainer's placeholder
explanation goes on to the scorers' prompts (whose answers are placeholders too)."""


def _provider_counts_cost(url: str) -> bool:
    """Whether the provider at ``url`` reports a call's cost when asked (OpenRouter's usage
    accounting, ``usage: {include: true}``); other providers may refuse the field."""
    host = httpx2.URL(url).host
    return host == "openrouter.ai" or host.endswith(".openrouter.ai")


def _token_count(value: Any) -> int:
    if (
        isinstance(value, int)
        and not isinstance(value, bool)
        and 0 <= value <= _MAX_PLAUSIBLE_TOKENS
    ):
        return value
    return 0


def _redact(text: str, secret: str) -> str:
    """``text`` without ``secret`` in any form (exact, case-folded, JSON-escaped, split)."""
    return redact_value(text, secret) if secret else text


def _provider_message(exc: openai.APIStatusError, api_key: str) -> str:
    """A short, redacted excerpt of the provider's error message (never its whole body)."""
    body = exc.body
    message = ""
    if isinstance(body, dict):
        inner = body.get("error", body)
        message = inner.get("message", "") if isinstance(inner, dict) else str(inner)
    message = _redact(str(message)[:_PROVIDER_MESSAGE_SCAN], api_key).strip()
    if len(message) > _PROVIDER_MESSAGE_LIMIT:
        message = message[:_PROVIDER_MESSAGE_LIMIT] + "…"
    return f": {message}" if message else ""


def translate_provider_error(exc: openai.OpenAIError, api_key: str) -> AutoInterpError:
    """Map an OpenAI-SDK error (after the SDK's own retries) to one of our typed errors."""
    if isinstance(exc, ResponseTooLarge):
        return Unavailable(
            f"The LLM provider's response is larger than this server's limit of {exc.limit} "
            "bytes (AUTOINTERP_LLM_MAX_RESPONSE_BYTES)"
        )
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
        # Calls in flight per provider and model, adapted to the provider's rate limit.
        self.adaptive = AdaptiveLimits(
            settings.llm.max_concurrency,
            self.metrics,
            enabled=settings.llm.adaptive_concurrency,
        )
        limits = httpx2.Limits(
            max_connections=settings.llm.max_connections,
            max_keepalive_connections=settings.llm.max_connections,
        )
        # One keep-alive connection pool per base URL, shared by every request to it; each
        # response body is read (decoded) up to the limit.
        self._pools = {
            url: BoundedHttpxClient(
                limits=limits,
                max_body_bytes=settings.llm.max_response_bytes,
                event_hooks=self.adaptive.event_hooks(),
            )
            for url in set(settings.providers().values())
        }
        self.default_provider = settings.llm.default_provider
        self._providers = {
            name: openai.AsyncOpenAI(
                # Every request brings its own key (with_options); this placeholder is never sent.
                api_key="unset",
                base_url=url,
                http_client=self._pools[url],
                timeout=settings.llm.timeout_s,
                max_retries=settings.llm.max_retries,
            )
            for name, url in settings.providers().items()
        }
        # Process-wide cap on upstream calls in flight, across every request, shared fairly.
        self.gate = FairGate(settings.llm.max_concurrency)
        url = settings.store.url.get_secret_value() if settings.store.url is not None else None
        store = open_store(settings.store.dir, url)
        self.store = GuardedStore(store) if store is not None else None
        self.prices = PriceTable.parse(settings.llm.prices)
        self._urls = settings.providers()
        self._timeout_s = settings.llm.timeout_s
        self._counts_cost = {
            name: _provider_counts_cost(url) for name, url in settings.providers().items()
        }
        # One call, its retries included, never takes longer than this.
        self._total_timeout_s = settings.llm.timeout_s * (settings.llm.max_retries + 1)
        self._limits = _Limits(
            answer_bytes=settings.llm.max_answer_bytes,
            slot_wait_s=settings.llm.slot_wait_s,
            request_s=settings.request_timeout_s,
        )

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
        *,
        fresh: bool = False,
        dry_run: bool = False,
        batch: bool = False,
    ) -> LLMClient:
        """A delphi ``Client`` for one request: its model, key and options over the shared pool.
        ``fresh`` sends every call to the provider whatever the store holds; ``dry_run`` sends
        none (see :class:`LLMClient`)."""
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
            gate=self.gate,
            adaptive=(self.adaptive, self.adaptive.gate(name, model)),
            observer=_Observer(self.metrics, name, model),
            total_timeout_s=self._total_timeout_s,
            limits=self._limits,
            store=_StoreUse(
                self.store,
                provider=name,
                fresh=fresh,
                dry_run=dry_run,
                batch=batch,
                prices=self.prices,
                counts_cost=self._counts_cost.get(name, False),
            ),
        )

    def batch_round(self, model: str, api_key: str, provider: str = "") -> BatchRound:
        """A batch-mode request's Batch API dealings (see :mod:`.batch`), on a connection of
        its own whose bodies may be as large as a batch file; ``aclose`` it when done."""
        name = provider or self.default_provider
        if name not in self._urls:
            raise InvalidArgument(
                "llm.provider is not configured on this server; "
                f"use one of: {', '.join(self.provider_names)}"
            )
        if self.store is None:
            raise FailedPrecondition(
                "llm.batch needs the server's response store (AUTOINTERP_STORE__DIR or "
                "AUTOINTERP_STORE__URL): batch answers are kept there between rounds"
            )
        client = openai.AsyncOpenAI(
            api_key=api_key,
            base_url=self._urls[name],
            http_client=BoundedHttpxClient(max_body_bytes=BATCH_FILE_MAX_READ_BYTES),
            timeout=max(self._timeout_s, 300.0),
            max_retries=2,
        )
        return BatchRound(
            client,
            self.store,
            provider=name,
            model=model,
            prices=self.prices,
            answer_bytes=self._limits.answer_bytes,
        )

    async def aclose(self) -> None:
        for pool in self._pools.values():
            await pool.aclose()
        if self.store is not None:
            await self.store.aclose()


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

    def stored(self, cost: float | None) -> None:
        """Count a call the response store answered in the current request's stats."""
        stats = current_request.get()
        if stats is not None:
            stats.usage.add_stored(cost)


@dataclass(frozen=True)
class _StoreUse:
    """How one client uses the response store, the price table and dry runs."""

    store: GuardedStore | None = None
    provider: str = ""
    fresh: bool = False
    """Skip lookups (the answers are still stored)."""
    dry_run: bool = False
    batch: bool = False
    """Collect the calls the store cannot answer for a provider batch (:mod:`.batch`)."""
    prices: PriceTable = field(default_factory=PriceTable)
    counts_cost: bool = False
    """The provider reports costs when the request asks (OpenRouter)."""


@dataclass(frozen=True)
class _Limits:
    """What bounds one client's calls (from the settings)."""

    answer_bytes: int = 256 * 1024
    """Largest answer content (UTF-8 bytes) read."""
    slot_wait_s: float = 60.0
    """Longest wait for a process-wide slot."""
    request_s: float = 600.0
    """The request's time limit, counted from the client's creation (at the request's
    start): no call waits for a slot past it."""


class _TokenLogprob:
    """One answer token's log probabilities, read by attribute as the SDK's
    ``ChatCompletionTokenLogprob`` (and its ``TopLogprob`` alternatives) are. The SDK's
    unvalidated ``construct`` costs ~1.5 s of CPU for a 6.5 MB body of 12,000 tokens with 10
    alternatives each; these cost a tenth of that. Fields are whatever the provider sent:
    every reader checks them."""

    __slots__ = ("bytes", "logprob", "token", "top_logprobs")

    def __init__(self, item: dict[str, Any], alternatives: bool = True) -> None:
        self.token = item.get("token")
        self.logprob = item.get("logprob")
        self.bytes = item.get("bytes")
        tops = item.get("top_logprobs") if alternatives else None
        self.top_logprobs = (
            [_TokenLogprob(top, alternatives=False) for top in tops if isinstance(top, dict)]
            if isinstance(tops, list)
            else None
        )


def _completion_from(body: bytes) -> ChatCompletion:
    """A chat completion from a response body, built as the SDK builds it (unvalidated),
    but for each choice's per-token log probabilities (:class:`_TokenLogprob`); ValueError,
    TypeError or RecursionError when the body is not one."""
    data = json.loads(body)
    if not isinstance(data, dict):
        raise TypeError("the body is not a JSON object")
    tokens: dict[int, list[Any]] = {}
    choices = data.get("choices")
    for index, choice in enumerate(choices if isinstance(choices, list) else []):
        logprobs = choice.get("logprobs") if isinstance(choice, dict) else None
        content = logprobs.get("content") if isinstance(logprobs, dict) else None
        if isinstance(content, list):
            tokens[index] = [_TokenLogprob(e) if isinstance(e, dict) else e for e in content]
            logprobs["content"] = []  # pyright: ignore[reportOptionalSubscript]
    completion = ChatCompletion.construct(**data)
    for index, content in tokens.items():
        completion.choices[index].logprobs.content = content  # pyright: ignore[reportOptionalMemberAccess]
    return completion


def _answer_bytes(text: str, limit: int) -> int:
    """``text``'s UTF-8 size, exactly when it could be near ``limit`` (a cheap bound
    otherwise)."""
    if len(text) > limit or len(text) * 4 <= limit:
        return len(text)
    return len(text.encode("utf-8", "surrogatepass"))


def _logprobs_json(items: list[Any] | None) -> list[dict[str, Any]] | bool | None:
    """Per-token log probabilities as the store keeps them (plain JSON); False when some item
    is not one (such an answer is not stored)."""
    if not items:
        return None
    out: list[dict[str, Any]] = []
    for item in items:
        if not isinstance(item, _TokenLogprob):
            return False
        tops = item.top_logprobs
        out.append(
            {
                "token": item.token,
                "logprob": item.logprob,
                "bytes": item.bytes,
                "top_logprobs": [
                    {"token": t.token, "logprob": t.logprob, "bytes": t.bytes} for t in tops
                ]
                if tops is not None
                else None,
            }
        )
    return out


def _usage_field(usage: Any, name: str) -> Any:
    """A field of a provider's usage object or of a plain dict in it (the SDK leaves nested
    objects it does not know as dicts)."""
    if isinstance(usage, dict):
        return usage.get(name)
    value = getattr(usage, name, None)
    if value is None:
        extra = getattr(usage, "model_extra", None)
        if isinstance(extra, dict):
            value = extra.get(name)
    return value


@dataclass(frozen=True)
class _Counted:
    """What one call's answer reported, as counted."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_prompt_tokens: int = 0
    cost: float | None = None


@dataclass
class _CallLog:
    usage: Usage = field(default_factory=Usage)
    errors: list[AutoInterpError] = field(default_factory=list)
    answers: list[str] = field(default_factory=list)
    logprobs_requested: int = 0
    logprobs_returned: int = 0


def plain_messages(prompt: str | list[dict[str, Any]]) -> list[dict[str, str]]:
    """The chat messages ``prompt`` goes on the wire as."""
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
        gate: FairGate | None = None,
        adaptive: tuple[AdaptiveLimits, AdaptiveGate | None] | None = None,
        observer: _Observer | None = None,
        total_timeout_s: float = 600.0,
        limits: _Limits | None = None,
        store: _StoreUse | None = None,
    ) -> None:
        super().__init__(model)
        self._store = store or _StoreUse()
        self._total_timeout_s = total_timeout_s
        self._openai = openai_client
        self._api_key = api_key
        self._overrides = overrides or {}
        self._gate = gate or FairGate(1)
        self._adaptive = adaptive
        self._observer = observer
        self._log = _CallLog()
        self._limits = limits or _Limits()
        self._deadline = time.monotonic() + self._limits.request_s

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
        messages = plain_messages(prompt)
        use = self._store
        key = (
            call_key(use.provider, self.model, messages, params, candidate_index.get())
            if use.store is not None
            else ""
        )
        if use.store is not None and not use.fresh:
            stored = await use.store.get(key)
            if stored is not None:
                return await self._replay(stored, params)
        if use.dry_run:
            return await self._dry_call(messages)
        request: dict[str, Any] = {"model": self.model, "messages": messages, **params}
        if use.batch:
            raise self._pending(key, request)
        if use.counts_cost:
            request["usage"] = {"include": True}
        began = time.perf_counter()
        # Calls of one request share a place in the queue for slots (a bulk run's features
        # each have their client but one request).
        owner = current_request.get() or self
        wait_s = min(
            self._limits.slot_wait_s,
            max(0.0, self._deadline - time.monotonic() - _DEADLINE_MARGIN_S),
        )
        # The request's deadline cuts the call short (scorers count it unanswered and score
        # what the others answered, under the coverage floor).
        stats = current_request.get()
        answer_by = stats.answer_by if stats is not None else None
        left_s = self._total_timeout_s if answer_by is None else answer_by - time.monotonic()
        if left_s <= 0:
            raise self._cut_by_deadline()
        try:
            async with (
                self._slots(owner, min(wait_s, left_s)),
                asyncio.timeout(min(self._total_timeout_s, left_s)),
            ):
                # The SDK's own HTTP path (auth, retries with backoff, typed errors and
                # response), minus chat.completions.create's recursive parameter transform,
                # which costs milliseconds per call on delphi's long prompts and has nothing
                # to convert in plain string messages. The SDK's timeout bounds each read;
                # the total here bounds a provider that drips its answer slowly. The body
                # comes back read (bounded) but not parsed: a big one is parsed off the loop.
                raw = await self._openai.post(
                    "/chat/completions", body=request, cast_to=httpx2.Response
                )
            body = raw.content
            completion = await off_loop(bytes_as_items(len(body)), _completion_from, body)
        except (
            SlotWaitExpired,
            openai.OpenAIError,
            TimeoutError,
            ValueError,
            TypeError,
            RecursionError,
        ) as exc:
            raise self._failed_call(exc, began, wait_s, answer_by) from None
        try:
            usage = getattr(completion, "usage", None)
            counted = self._account(began, "ok", usage)
            choice = completion.choices[0]
            content = choice.message.content or ""
            logprobs = choice.logprobs.content if choice.logprobs is not None else None
            if not isinstance(content, str):
                raise TypeError("content is not text")
        except (AttributeError, TypeError, IndexError, KeyError, ValueError, RecursionError):
            # An HTTP 200 whose body is not a chat completion (not JSON, `choices` not a
            # list, no message, ...): the SDK hands it over unvalidated.
            error = UpstreamBadResponse("The LLM provider's answer is not a chat completion")
            self._log.errors.append(error)
            raise error from None
        text = await self._final_answer(content)
        if use.store is not None:
            await self._keep(key, content, logprobs, counted)
        return self._answered(text, logprobs, params)

    def _pending(self, key: str, request: dict[str, Any]) -> AutoInterpError:
        """A batch-mode call the store cannot answer: collected for the next batch
        (:class:`CallPending`), or a failure once batches failed it too often."""
        pending = pending_calls.get()
        if pending is None:
            error: AutoInterpError = InvalidArgument(
                "llm.batch applies to ExplainAndScore only (Explain and Score answer at once)"
            )
        elif key in pending.given_up:
            error = Unavailable(
                f"The LLM provider failed this call in {MAX_BATCH_ATTEMPTS} batches "
                f"(last: {pending.given_up[key]})"
            )
        else:
            pending.calls[key] = request
            return CallPending()
        self._log.errors.append(error)
        return error

    def _slots(self, owner: object, wait_s: float) -> contextlib.AbstractAsyncContextManager[None]:
        """The slots a call holds: its provider and model's adaptive one (where adapting),
        then a process-wide one."""
        if self._adaptive is None:
            return self._gate.slot(owner, wait_s)
        limits, gate = self._adaptive
        return limits.slots(gate, self._gate, owner, wait_s)

    def _answered(self, text: str, logprobs: Any, params: dict[str, Any]) -> Response:
        self._log.answers.append(text)
        if params.get("logprobs"):
            self._log.logprobs_requested += 1
            self._log.logprobs_returned += 1 if logprobs else 0
        # delphi annotates Response.logprobs as list[float], but its scorers read OpenAI's
        # per-token objects (``.top_logprobs``), which is what is passed here.
        return Response(text=text, logprobs=logprobs or None)  # pyright: ignore[reportArgumentType]

    async def _keep(self, key: str, content: str, logprobs: Any, counted: _Counted) -> None:
        """Store a usable answer under its call's key (never the API key)."""
        assert self._store.store is not None
        plain = _logprobs_json(logprobs)
        if plain is False:
            return  # log probabilities we could not write back as they came: not stored
        answer = StoredAnswer(
            content=content,
            logprobs=plain if isinstance(plain, list) else None,
            model=self.model,
            prompt_tokens=counted.prompt_tokens,
            completion_tokens=counted.completion_tokens,
            cached_prompt_tokens=counted.cached_prompt_tokens,
            cost=counted.cost,
            created=time.time(),
        )
        await self._store.store.put(key, answer)

    async def _replay(self, stored: StoredAnswer, params: dict[str, Any]) -> Response:
        """A stored answer, read as a provider's would be (the answer limit, the reasoning
        trace stripped), counted as a store hit: no call, and what it cost saved."""
        self._log.usage.add_stored(stored.cost)
        if self._observer is not None:
            self._observer.stored(stored.cost)
        text = await self._final_answer(stored.content)
        logprobs = (
            [_TokenLogprob(item) for item in stored.logprobs if isinstance(item, dict)]
            if stored.logprobs
            else None
        )
        return self._answered(text, logprobs, params)

    async def _dry_call(self, messages: list[dict[str, str]]) -> Response:
        """A dry run's call: the prompt's tokens counted, none sent, a placeholder answer."""
        chars = sum(len(m["content"]) for m in messages)
        prompt_tokens = await off_loop(chars // CHARS_PER_TOKEN, count_tokens, messages)
        completion_tokens = DRY_RUN_COMPLETION_TOKENS
        cost = self._store.prices.cost(self.model, prompt_tokens, completion_tokens)
        self._log.usage.add_call(prompt_tokens, completion_tokens, cost)
        self._log.usage.estimated = True
        return self._answered(DRY_RUN_ANSWER, None, {})

    def _failed_call(
        self, exc: Exception, began: float, wait_s: float, answer_by: float | None
    ) -> AutoInterpError:
        """The typed error (recorded, and the call counted where one was made) of a call
        that got no usable body: cut by the request's deadline, no slot free in time, or the
        provider's failure."""
        cut = answer_by is not None and time.monotonic() >= answer_by
        if isinstance(exc, SlotWaitExpired):
            if cut:
                return self._cut_by_deadline()
            capacity = self._gate.capacity
            error: AutoInterpError = ResourceExhausted(
                str(exc)
                if isinstance(exc, AdaptiveWaitExpired)
                else f"No upstream LLM call slot came free within {wait_s:.3g} s: all "
                f"{capacity} of this server's slots (AUTOINTERP_LLM_MAX_CONCURRENCY) are in use "
                "by other calls; retry later"
            )
            self._log.errors.append(error)
            return error
        if isinstance(exc, TimeoutError) and cut:
            self._account(began, "DEADLINE_EXCEEDED", None)
            return self._cut_by_deadline()
        error = self._call_error(exc)
        self._log.errors.append(error)
        self._account(began, error.code_name, None)
        return error

    def _cut_by_deadline(self) -> AutoInterpError:
        """The typed error (recorded) of a call the request's deadline cut short."""
        error = DeadlineExceeded(
            "The request's deadline came before the LLM answered (the server's request limit "
            "or the client's deadline, less a margin to score what had been answered)"
        )
        self._log.errors.append(error)
        return error

    def _call_error(self, exc: Exception) -> AutoInterpError:
        """The typed error for a call that got no usable body."""
        if isinstance(exc, TimeoutError):
            return Unavailable("The LLM provider did not answer in time")
        if isinstance(exc, openai.OpenAIError):
            return translate_provider_error(exc, self._api_key)
        # A 200 whose body is not JSON, not an object, or nested too deeply to decode.
        return UpstreamBadResponse("The LLM provider's answer is not a chat completion")

    async def _final_answer(self, content: str) -> str:
        """The answer without its reasoning trace; UNAVAILABLE (recorded) when the content is
        over the answer limit. A big answer is cleaned on a worker thread."""
        limit = self._limits.answer_bytes
        size = _answer_bytes(content, limit)
        if size > limit:
            error = Unavailable(
                f"The LLM provider's answer is larger than this server's limit of {limit} "
                "bytes (AUTOINTERP_LLM_MAX_ANSWER_BYTES)"
            )
            self._log.errors.append(error)
            raise error
        work = OFF_LOOP_ITEMS if len(content) >= OFF_LOOP_ANSWER_CHARS else 0
        try:
            return await off_loop(work, strip_reasoning, content)
        except RecursionError:
            error = UpstreamBadResponse(
                "The LLM provider's answer could not be read (nested too deeply)"
            )
            self._log.errors.append(error)
            raise error from None

    def _account(self, began: float, outcome: str, usage: Any) -> _Counted:
        """Count one call (and what its answer reported) in the request's usage and the
        metrics; counts a provider reported that are not plausible token counts read as 0.
        The cost is the provider's where it reports a plausible one, else the price table's
        (cached prompt tokens at their price)."""
        prompt = _token_count(getattr(usage, "prompt_tokens", 0))
        completion = _token_count(getattr(usage, "completion_tokens", 0))
        details = _usage_field(usage, "prompt_tokens_details") if usage is not None else None
        cached = min(
            _token_count(_usage_field(details, "cached_tokens")) if details is not None else 0,
            prompt,
        )
        # OpenRouter reports the call's cost as an extra usage field.
        extra = getattr(usage, "model_extra", None)
        # Implausible costs (1e308, inf, NaN, negative, strings) read as unknown.
        cost = plausible_cost(extra.get("cost")) if isinstance(extra, dict) else None
        if cost is None and usage is not None:
            cost = self._store.prices.cost(self.model, prompt, completion, cached)
        self._log.usage.add_call(prompt, completion, cost)
        self._log.usage.add_prompt_cache(cached)
        if self._observer is not None:
            self._observer.call(time.perf_counter() - began, outcome, prompt, completion)
        return _Counted(prompt, completion, cached, cost)
