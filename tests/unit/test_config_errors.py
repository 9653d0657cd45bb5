"""Operator mistakes (issue 17, item 16): every setting's bad value is one line,
``invalid configuration: <setting>: <rule>``, never a traceback or the value itself."""

from __future__ import annotations

from pathlib import Path

import pytest

from autointerp_grpc.config import (
    FORMER_NAMES,
    ConfigError,
    Settings,
    env_name,
    former_env_name,
    load_settings,
    setting_paths,
)

# One bad value per setting. A new setting needs its row here (the test below says so).
BAD_VALUES: dict[str, str] = {
    "host": "no-such-host.invalid",
    "grpc.port": "70000",
    "http.port": "-1",
    "secret": " padded-secret-value ",
    "llm.base_url": "not-a-url",
    "llm.default_provider": "",
    "llm.providers": "{bad",
    "llm.timeout_s": "0",
    "llm.max_retries": "11",
    "llm.max_concurrency": "0",
    "llm.adaptive_concurrency": "sometimes",
    "llm.slot_wait_s": "0",
    "llm.request_concurrency": "0",
    "llm.max_connections": "zero",
    "llm.max_response_bytes": "10",
    "llm.max_answer_bytes": "10",
    "embedding.model": "  ",
    "embedding.device": "banana",
    "embedding.trust_remote_code": "maybe",
    "embedding.config_kwargs": "[1, 2]",
    "embedding.coalesce": "perhaps",
    "embedding.batch_window_ms": "-1",
    "embedding.max_batch": "0",
    "malloc_mmap_threshold": "-1",
    "embedding.encode_batch": "0",
    "embedding.encode_tokens": "0",
    "limits.max_records": "0",
    "limits.max_request_bytes": "10",
    "limits.max_header_bytes": "10",
    "http.head_timeout_s": "0",
    "max_in_flight": "0",
    "request_timeout_s": "nan-ish",
    "limits.max_tokens_per_record": "0",
    "limits.max_record_chars": "0",
    "limits.max_request_chars": "0",
    "limits.max_request_tokens": "0",
    "limits.max_explanation_chars": "0",
    "limits.max_top_logits": "0",
    "limits.max_bulk_scorers": "0",
    "limits.max_bulk_features": "0",
    "shutdown_grace_s": "-1",
    "grpc.max_health_watchers": "0",
    "log_level": "verbose",
    "log_format": "xml",
    "store.dir": "/dev/null",
    "store.url": "mysql://user:pw@db/store",
    "llm.prices": '{"some-model": {"input": -1, "output": 1}}',
}


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path) -> pytest.MonkeyPatch:
    """No AUTOINTERP_* / SECRET from the outside, and no .env file."""
    import os

    for name in list(os.environ):
        if name.startswith("AUTOINTERP_") or name == "SECRET":
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    return monkeypatch


def test_every_setting_has_a_bad_value_here() -> None:
    missing = sorted(set(setting_paths()) - set(BAD_VALUES))
    assert not missing, f"add a bad value for {missing} to BAD_VALUES"


_FORMER = {path: old for old, path in FORMER_NAMES.items()}


@pytest.mark.parametrize(
    ("field", "variable"),
    [(path, env_name(path)) for path in sorted(set(BAD_VALUES) & set(setting_paths()))]
    + [(path, former_env_name(_FORMER[path])) for path in sorted(set(BAD_VALUES) & set(_FORMER))],
)
def test_a_bad_value_is_one_line_naming_the_setting(clean_env, field: str, variable: str) -> None:
    """Under its current name or its former one, the line names the variable that was set."""
    clean_env.setenv(variable, BAD_VALUES[field])
    with pytest.raises(ConfigError) as caught:
        load_settings()
    message = str(caught.value)
    assert "\n" not in message, message
    prefix = f"invalid configuration: {variable}: "
    assert message.startswith(prefix), message
    assert len(message) > len(prefix) + 5, message  # the rule itself
    if len(BAD_VALUES[field].strip()) >= 5:  # (short numbers may be part of the rule)
        assert BAD_VALUES[field].strip() not in message, message


def test_the_defaults_are_valid(clean_env) -> None:
    assert load_settings() == Settings()


def test_same_http_and_grpc_port_is_refused(clean_env) -> None:
    clean_env.setenv("AUTOINTERP_GRPC_PORT", "6000")
    clean_env.setenv("AUTOINTERP_HTTP_PORT", "6000")
    with pytest.raises(ConfigError, match=r"^invalid configuration: AUTOINTERP_HTTP_PORT: must "):
        load_settings()
    clean_env.setenv("AUTOINTERP_HTTP_PORT", "0")  # the REST door off: no clash
    assert load_settings().http.port == 0


def test_several_bad_settings_are_one_line_each(clean_env) -> None:
    clean_env.setenv("AUTOINTERP_LOG_LEVEL", "verbose")
    clean_env.setenv("AUTOINTERP_MAX_RECORDS", "0")
    with pytest.raises(ConfigError) as caught:
        load_settings()
    lines = str(caught.value).splitlines()
    assert sorted(line.split(":")[1].strip() for line in lines) == [
        "AUTOINTERP_LOG_LEVEL",
        "AUTOINTERP_MAX_RECORDS",
    ]


def test_good_values_of_the_checked_settings_pass(clean_env) -> None:
    clean_env.setenv("AUTOINTERP_LOG_LEVEL", "debug")
    clean_env.setenv("AUTOINTERP_LLM_PROVIDERS", '{"local": "http://vllm:8000/v1"}')
    clean_env.setenv("AUTOINTERP_EMBEDDING_CONFIG_KWARGS", '{"unpad_inputs": false}')
    clean_env.setenv("AUTOINTERP_EMBEDDING_DEVICE", "cuda:1")
    clean_env.setenv("AUTOINTERP_HOST", "localhost")
    settings = load_settings()
    assert settings.log_level == "DEBUG"
    assert settings.llm.providers == {"local": "http://vllm:8000/v1"}
    assert settings.embedding.config_kwargs == {"unpad_inputs": False}


def test_a_provider_that_is_not_a_url_is_refused(clean_env) -> None:
    clean_env.setenv("AUTOINTERP_LLM_PROVIDERS", '{"local": "vllm:8000"}')
    with pytest.raises(ConfigError, match="AUTOINTERP_LLM_PROVIDERS: must be an http"):
        load_settings()


def test_current_and_former_names_are_read_and_a_conflict_is_refused(clean_env) -> None:
    clean_env.setenv("AUTOINTERP_LLM__BASE_URL", "http://current:1/v1")
    clean_env.setenv("AUTOINTERP_MAX_RECORDS", "7")  # former name of limits.max_records
    settings = load_settings()
    assert settings.llm.base_url == "http://current:1/v1"
    assert settings.limits.max_records == 7
    clean_env.setenv("AUTOINTERP_LLM_BASE_URL", "http://current:1/v1")  # the same value: fine
    assert load_settings().llm.base_url == "http://current:1/v1"
    clean_env.setenv("AUTOINTERP_LLM_BASE_URL", "http://former:1/v1")
    with pytest.raises(ConfigError) as caught:
        load_settings()
    assert str(caught.value) == (
        "invalid configuration: AUTOINTERP_LLM__BASE_URL and its former name "
        "AUTOINTERP_LLM_BASE_URL are both set, to different values; keep one"
    )
    assert "former:1" not in str(caught.value)


def test_former_names_in_the_env_file_are_read(clean_env) -> None:
    (Path.cwd() / ".env").write_text(
        "AUTOINTERP_LLM_MAX_RETRIES=5\nAUTOINTERP_LIMITS__MAX_TOP_LOGITS=9\n"
    )
    settings = load_settings()
    assert (settings.llm.max_retries, settings.limits.max_top_logits) == (5, 9)
    clean_env.setenv("AUTOINTERP_LLM_MAX_RETRIES", "3")  # the environment wins over the file
    assert load_settings().llm.max_retries == 3


def test_a_keyword_under_its_former_name_overrides_the_environment(clean_env) -> None:
    clean_env.setenv("AUTOINTERP_LIMITS__MAX_RECORDS", "5")
    assert Settings(max_records=3).limits.max_records == 3
    assert Settings().limits.max_records == 5
