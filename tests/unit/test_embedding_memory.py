"""An embedding request's memory is bounded at its source (issue 17, "peak RSS <= 1 GiB").

Most of an embedding request's peak is one forward pass's activations, which grow with the
tokens in the pass (texts x the longest one's length). The backend runs at most
``AUTOINTERP_EMBEDDING_ENCODE_TOKENS`` tokens a pass: 1,000-character records go 8 at a time
instead of 16 (measured on all-MiniLM-L6-v2: a pass of 16 such texts grew the process by
72-111 MiB, a pass of 8 by 36). The fast tests count tokens per pass with a model that
batches like sentence-transformers; the slow one measures the real model's peak.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from collections.abc import Sequence
from typing import Any

import numpy as np
import pytest

from autointerp_grpc.backends.embedding import EmbeddingBackend
from autointerp_grpc.config import Settings

MAX_SEQ_LENGTH = 256


class PassCountingModel:
    """Batches like sentence-transformers' ``encode`` (longest first, ``batch_size`` texts a
    forward pass, each text truncated at ``max_seq_length`` tokens, one token a byte plus
    [CLS] and [SEP]) and records the tokens of every pass. A text's row is its own number,
    so the order of the answer can be checked."""

    max_seq_length = MAX_SEQ_LENGTH

    def __init__(self) -> None:
        self.pass_tokens: list[int] = []

    def tokens(self, text: str) -> int:
        return min(len(text.encode()) + 2, self.max_seq_length)

    def encode(self, texts: Sequence[str], batch_size: int = 32, **_: Any) -> np.ndarray:
        order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))
        for start in range(0, len(order), batch_size):
            chunk = order[start : start + batch_size]
            self.pass_tokens.append(len(chunk) * max(self.tokens(texts[i]) for i in chunk))
        return np.array([[float(t.split("#")[1])] for t in texts], dtype=np.float32)


def _texts(lengths: Sequence[int]) -> list[str]:
    return [f"#{i}#".ljust(n, "x") for i, n in enumerate(lengths)]


def test_a_pass_of_long_records_holds_at_most_the_token_budget() -> None:
    model = PassCountingModel()
    backend = EmbeddingBackend(model, "counting", encode_batch=16, encode_tokens=2048)
    texts = _texts([1000] * 100)
    rows = backend.encode_now(texts)
    assert max(model.pass_tokens) <= 2048
    assert max(model.pass_tokens) == 8 * MAX_SEQ_LENGTH  # 8 long texts a pass, not 16
    assert rows[:, 0].tolist() == list(range(100))  # in the caller's order


def test_short_texts_still_go_a_full_batch_at_a_time() -> None:
    model = PassCountingModel()
    backend = EmbeddingBackend(model, "counting", encode_batch=16, encode_tokens=2048)
    backend.encode_now(_texts([40] * 64))
    assert len(model.pass_tokens) == 4  # 16 a pass: no slower than before for short texts


def test_mixed_lengths_come_back_in_order_within_budget() -> None:
    model = PassCountingModel()
    backend = EmbeddingBackend(model, "counting", encode_batch=16, encode_tokens=1000)
    lengths = [5, 3000, 40, 900, 7, 260, 120, 2, 1000, 55] * 7
    rows = backend.encode_now(_texts(lengths))
    assert rows[:, 0].tolist() == list(range(len(lengths)))
    assert max(model.pass_tokens) <= 1000


def test_the_budget_is_a_setting() -> None:
    assert Settings().embedding.encode_tokens == 2048


_MEASURE = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from autointerp_grpc.backends.embedding import EmbeddingBackend
    from autointerp_grpc.config import Settings
    from autointerp_grpc.memory import set_mmap_threshold

    settings = Settings()
    set_mmap_threshold(settings.malloc_mmap_threshold)
    backend = EmbeddingBackend.load(settings)
    backend.warm_up()
    texts = [" ".join(f"w{i}x{j}" for j in range(200))[:1000] for i in range(48)]
    backend.encode_now(texts[:16])  # first-call allocations out of the way

    def kib(key):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])

    Path("/proc/self/clear_refs").write_text("5")  # VmHWM := VmRSS
    before = kib("VmRSS")
    backend.encode_now(texts)
    print((kib("VmHWM") - before) / 1024)
    """
)


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self")
def test_encoding_long_records_grows_the_process_by_one_small_pass() -> None:
    """48 records of 1,000 characters through the real model: the peak grows by one pass of
    8 (about 36 MiB measured), not one of 16 (72-111 MiB)."""
    out = subprocess.run(
        [sys.executable, "-c", _MEASURE],
        capture_output=True,
        text=True,
        timeout=900,
        env={"HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false", "PATH": ""},
        check=True,
    )
    growth_mib = float(out.stdout.strip().splitlines()[-1])
    assert growth_mib < 60, out.stdout
