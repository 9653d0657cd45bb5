"""``python -m autointerp_testing.fake_llm``: serve the fake LLM until SIGINT/SIGTERM."""

from __future__ import annotations

import argparse
import signal
import threading

from autointerp_testing.fake_llm.faults import FAULT_MODES
from autointerp_testing.fake_llm.server import FakeLLMServer

__all__ = ["main"]


def main(argv: list[str] | None = None) -> int:
    """Serve until SIGINT/SIGTERM, printing ``fake LLM serving at <base url>`` first."""
    parser = argparse.ArgumentParser(description="Fake OpenAI-compatible chat-completions server")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8900)
    parser.add_argument("--latency-ms", type=float, default=0.0)
    parser.add_argument("--fault", choices=sorted(FAULT_MODES), default=None)
    parser.add_argument("--fault-count", type=int, default=None)
    parser.add_argument("--retry-after-ms", type=int, default=50)
    parser.add_argument(
        "--rate-limit-rps", type=float, default=None, help="answer 429 beyond this rate"
    )
    args = parser.parse_args(argv)

    done = threading.Event()

    def _on_signal(signum: int, frame: object) -> None:
        done.set()

    signal.signal(signal.SIGINT, _on_signal)
    signal.signal(signal.SIGTERM, _on_signal)
    server = FakeLLMServer(
        host=args.host,
        port=args.port,
        latency_s=args.latency_ms / 1000.0,
        fault=args.fault,
        fault_count=args.fault_count,
        retry_after_ms=args.retry_after_ms,
    )
    if args.rate_limit_rps is not None:
        server.set_rate_limit(args.rate_limit_rps)
    with server:
        print(f"fake LLM serving at {server.base_url}", flush=True)
        while not done.wait(0.5):
            pass
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
