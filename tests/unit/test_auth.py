"""The shared-secret check."""

from __future__ import annotations

import pytest

from autointerp_grpc.config import Settings
from autointerp_grpc.errors import Unauthenticated
from autointerp_grpc.service import Authenticator


def test_no_secret_lets_everyone_in() -> None:
    auth = Authenticator(None)
    assert not auth.enabled
    auth.check(None)
    auth.check("anything")


@pytest.mark.parametrize("presented", [None, "", b"", "wrong", "sëcret", b"\xff\xfe", "secret "])
def test_wrong_or_missing_secret_is_rejected(presented) -> None:
    with pytest.raises(Unauthenticated) as info:
        Authenticator("secret").check(presented)
    assert "X-SECRET-KEY" in info.value.message
    if presented in ("wrong", "sëcret"):
        assert presented not in info.value.message


@pytest.mark.parametrize("secret", ["secret", "sëcret-ü"])
def test_right_secret_passes_as_str_or_bytes(secret: str) -> None:
    auth = Authenticator(secret)
    auth.check(secret)
    auth.check(secret.encode())


def test_empty_secret_setting_means_no_auth(monkeypatch) -> None:
    monkeypatch.setenv("SECRET", "")
    assert Settings().secret is None
    monkeypatch.setenv("SECRET", "s3")
    assert Settings().secret.get_secret_value() == "s3"
