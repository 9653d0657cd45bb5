"""The README's configuration table covers every setting."""

from __future__ import annotations

from pathlib import Path

from autointerp_grpc.config import FORMER_NAMES, env_name, former_env_name, setting_paths

README = Path(__file__).resolve().parents[2] / "README.md"


def test_every_setting_is_documented() -> None:
    text = README.read_text()
    former = {path: old for old, path in FORMER_NAMES.items()}
    for path in setting_paths():
        env = env_name(path)
        row = (
            f"| `{env}` | `{former_env_name(former[path])}` |"
            if path in former
            else f"| `{env}` | |"
        )
        assert row in text, f"{env} is missing from the README (expected the row {row})"
