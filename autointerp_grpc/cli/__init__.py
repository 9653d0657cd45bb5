"""``autointerp``: the command-line client of the autointerp service.

    autointerp methods                                     # every explainer and scorer
    autointerp explain --method default --input records.json --model openai/gpt-4o-mini
    autointerp score --method fuzz --explanation "the word cat" --input records.json --model M
    autointerp run --input features.jsonl --output results.jsonl \\
        --explainer default --scorers detection,fuzz --model openai/gpt-4o-mini
    autointerp report results.jsonl --input features.jsonl -o report.html   # no server

Every subcommand takes ``--server`` (default ``$AUTOINTERP_SERVER`` or ``127.0.0.1:50051``;
a comma-separated list spreads the work over several servers) and ``--secret`` (default
``$SECRET``). The provider key comes from ``--api-key`` or ``$AUTOINTERP_API_KEY`` /
``$OPENROUTER_API_KEY``; prefer the environment, since other users of a machine can read a
process's arguments. Neither the secret nor the key is ever printed or written to a file.

Exit status: 0 success; 1 a call failed or (``run``) some feature failed, a scorer's failure
included; 2 a usage error (bad arguments, unreadable or malformed input, an unknown method, a
request the server rejected as a whole); 3 (``run``) stopped at ``--max-cost``; 130
interrupted (``run`` resumes where it stopped when started again).

Input files are read as hostile input (:mod:`.jsonread`): streamed, no line (or JSON document
spread over lines) longer than ``--max-line-bytes`` (default 16 MiB), nesting at most 100
deep, numbers a double can hold, valid Unicode; each problem one line naming file, line and
rule.

Rooms: :mod:`.commands` (the parser, ``main``, methods/explain/score), :mod:`.run` (the
``run`` command over :mod:`autointerp_grpc.client.bulk`), :mod:`.inputs` (records and
features files, JSON flags), :mod:`.jsonread` (reading them safely), :mod:`.results`
(results file, resume, statistics, summary), :mod:`.report` (``report`` and ``run --report``
over :mod:`autointerp_grpc.report`).
"""

from __future__ import annotations

import os
import sys

__all__ = ["main"]

INTERRUPTED = 130
"""The exit status after Ctrl-C (128 + SIGINT), as shells report it."""


def quiet_after_interrupt() -> None:
    """Send what is still written to stderr (the interpreter's shutdown: gRPC's "Exception
    ignored" reports of channels torn down mid-call) to /dev/null: an interrupted command has
    said what it had to say."""
    try:
        sys.stderr.flush()
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stderr.fileno())
    except (OSError, ValueError):  # no stderr to speak of
        pass


def main(argv: list[str] | None = None) -> int:
    """Run the ``autointerp`` command; returns its exit status (130 after Ctrl-C, even one
    that comes while the command is still starting)."""
    try:
        from autointerp_grpc.cli.commands import main as command_main

        return command_main(argv)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        quiet_after_interrupt()
        return INTERRUPTED
