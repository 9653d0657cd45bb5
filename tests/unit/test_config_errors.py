"""Operator mistakes (issue 17, item 16): every setting's bad value is one line,
``invalid configuration: <setting>: <rule>``, never a traceback or the value itself."""

from __future__ import annotations

import pytest

from autointerp_grpc.config import ConfigError, Settings, env_name, load_settings

# One bad value per setting. A new setting needs its row here (the test below says so).
BAD_VALUES: dict[str, str] = {
    "host": "no-such-host.invalid",
    "grpc_port": "70000",
    "http_port": "-1",
    "secret": " padded-secret-value ",
    "llm_base_url": "not-a-url",
    "llm_default_provider": "",
    "llm_providers": "{bad",
    "llm_timeout_s": "0",
    "llm_max_retries": "11",
    "llm_max_concurrency": "0",
    "llm_slot_wait_s": "0",
    "llm_request_concurrency": "0",
    "llm_max_connections": "zero",
    "llm_max_response_bytes": "10",
    "llm_max_answer_bytes": "10",
    "embedding_model": "  ",
    "embedding_device": "banana",
    "embedding_trust_remote_code": "maybe",
    "embedding_config_kwargs": "[1, 2]",
    "embedding_coalesce": "perhaps",
    "embedding_batch_window_ms": "-1",
    "embedding_max_batch": "0",
    "malloc_mmap_threshold": "-1",
    "embedding_encode_batch": "0",
    "embedding_encode_tokens": "0",
    "max_records": "0",
    "max_request_bytes": "10",
    "max_header_bytes": "10",
    "request_head_timeout_s": "0",
    "max_in_flight": "0",
    "request_timeout_s": "nan-ish",
    "max_tokens_per_record": "0",
    "max_record_chars": "0",
    "max_request_chars": "0",
    "max_request_tokens": "0",
    "max_explanation_chars": "0",
    "max_top_logits": "0",
    "max_bulk_scorers": "0",
    "max_bulk_features": "0",
    "shutdown_grace_s": "-1",
    "health_max_watchers": "0",
    "log_level": "verbose",
    "log_format": "xml",
    "store_dir": "/dev/null",
    "store_url": "mysql://user:pw@db/store",
    "prices": '{"some-model": {"input": -1, "output": 1}}',
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
    missing = sorted(set(Settings.model_fields) - set(BAD_VALUES))
    assert not missing, f"add a bad value for {missing} to BAD_VALUES"


@pytest.mark.parametrize("field", sorted(set(BAD_VALUES) & set(Settings.model_fields)))
def test_a_bad_value_is_one_line_naming_the_setting(clean_env, field: str) -> None:
    clean_env.setenv(env_name(field), BAD_VALUES[field])
    with pytest.raises(ConfigError) as caught:
        load_settings()
    message = str(caught.value)
    assert "\n" not in message, message
    prefix = f"invalid configuration: {env_name(field)}: "
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
    assert load_settings().http_port == 0


def test_several_bad_settings_are_one_line_each(clean_env) -> None:
    clean_env.setenv("AUTOINTERP_LOG_LEVEL", "verbose")
    clean_env.setenv("AUTOINTERP_MAX_RECORDS", "0")
    with pytest.raises(ConfigError) as caught:
        load_settings()
    lines = str(caught.value).splitlines()
    assert [line.split(":")[1].strip() for line in lines] == [
        "AUTOINTERP_MAX_RECORDS",
        "AUTOINTERP_LOG_LEVEL",
    ]


def test_good_values_of_the_checked_settings_pass(clean_env) -> None:
    clean_env.setenv("AUTOINTERP_LOG_LEVEL", "debug")
    clean_env.setenv("AUTOINTERP_LLM_PROVIDERS", '{"local": "http://vllm:8000/v1"}')
    clean_env.setenv("AUTOINTERP_EMBEDDING_CONFIG_KWARGS", '{"unpad_inputs": false}')
    clean_env.setenv("AUTOINTERP_EMBEDDING_DEVICE", "cuda:1")
    clean_env.setenv("AUTOINTERP_HOST", "localhost")
    settings = load_settings()
    assert settings.log_level == "DEBUG"
    assert settings.llm_providers == {"local": "http://vllm:8000/v1"}
    assert settings.embedding_config_kwargs == {"unpad_inputs": False}


def test_a_provider_that_is_not_a_url_is_refused(clean_env) -> None:
    clean_env.setenv("AUTOINTERP_LLM_PROVIDERS", '{"local": "vllm:8000"}')
    with pytest.raises(ConfigError, match="AUTOINTERP_LLM_PROVIDERS: must be an http"):
        load_settings()
