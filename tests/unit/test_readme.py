"""The README's configuration table covers every setting."""

from __future__ import annotations

from pathlib import Path

from autointerp_grpc.config import Settings

README = Path(__file__).resolve().parents[2] / "README.md"


def test_every_setting_is_documented() -> None:
    text = README.read_text()
    for name, field in Settings.model_fields.items():
        env = "SECRET" if name == "secret" else f"AUTOINTERP_{name.upper()}"
        assert f"| `{env}` |" in text, f"{env} ({field.description}) is missing from the README"
