"""The command line's one error type."""

from __future__ import annotations


class UsageError(Exception):
    """A problem with the command line or its input files (exit status 2)."""
