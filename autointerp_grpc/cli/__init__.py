"""``autointerp``: the command-line client of the autointerp service.

    autointerp methods                                     # every explainer and scorer
    autointerp explain --method default --input records.json --model openai/gpt-4o-mini
    autointerp score --method fuzz --explanation "the word cat" --input records.json --model M
    autointerp run --input features.jsonl --output results.jsonl \\
        --explainer default --scorers detection,fuzz --model openai/gpt-4o-mini

Every subcommand takes ``--server`` (default ``$AUTOINTERP_SERVER`` or ``127.0.0.1:50051``;
a comma-separated list spreads the work over several servers) and ``--secret`` (default
``$SECRET``). The provider key comes from ``--api-key`` or ``$AUTOINTERP_API_KEY`` /
``$OPENROUTER_API_KEY``; prefer the environment, since other users of a machine can read a
process's arguments. Neither the secret nor the key is ever printed or written to a file.

Exit status: 0 success; 1 a call failed or (``run``) some feature failed; 2 a usage error (bad
arguments, unreadable or malformed input, an unknown method, a request the server rejected as
a whole); 130 interrupted (``run`` resumes where it stopped when started again).

Rooms: :mod:`.commands` (the parser, ``main``, methods/explain/score), :mod:`.run` (the
``run`` command over :mod:`autointerp_grpc.client.bulk`), :mod:`.inputs` (records and
features files, JSON flags), :mod:`.results` (results file, resume, statistics, summary).
"""

from autointerp_grpc.cli.commands import main

__all__ = ["main"]
