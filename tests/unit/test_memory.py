"""glibc's mmap threshold is fixed at start-up so the embedding model's freed buffers go back
to the system (autointerp_grpc/memory.py; measured there: +375 MiB -> +83 MiB per encode)."""

from __future__ import annotations

import platform

import pytest

from autointerp_grpc.config import Settings
from autointerp_grpc.memory import set_mmap_threshold


def test_zero_leaves_the_c_library_alone() -> None:
    assert set_mmap_threshold(0) is False


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="mallopt is glibc's")
def test_the_default_threshold_is_set_on_glibc() -> None:
    assert set_mmap_threshold(Settings().malloc_mmap_threshold) is True
