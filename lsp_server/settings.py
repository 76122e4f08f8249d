"""One typed, validated settings object for the server and the CLI.

Built in layers, later ones winning: defaults ← environment variables ←
LSP `initializationOptions` ← `workspace/configuration` section `llmLsp`.
An invalid value never stops the server: it is replaced by the value of the
layer below and reported as a `SettingsProblem` that the caller shows to the
user (the LSP surface as a `window/showMessage` warning, the CLI on stderr).

The API key is held in a `Secret`, whose `repr`/`str` never show it, so a
settings object can be logged or put in an error message safely.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lsp_server.settings_values import (
    ProviderSetting,
    RoutingRule,
    Secret,
    _backoff,
    _bool,
    _fraction,
    _log_level,
    _opt_positive_int,
    _opt_str,
    _path,
    _positive_float,
    _positive_int,
    _providers,
    _routing_rules,
    _secret,
    _str,
    _url,
    _with_keys,
)

logger = logging.getLogger(__name__)

SECTION = "llmLsp"


def _user_dir(xdg_var: str, fallback: str, env: Mapping[str, str]) -> Path:
    base = env.get(xdg_var) or str(Path(env.get("HOME") or Path.home()) / fallback)
    return Path(base) / "llm-lsp"


@dataclass(frozen=True, slots=True)
class SettingsProblem:
    """One invalid value: where it came from, what it was, what is used instead."""

    setting: str
    source: str
    value: str
    used: str
    reason: str

    def message(self) -> str:
        """A one-line, user-facing description."""
        return (
            f"llm-lsp: invalid {self.setting} from {self.source} ({self.value}): "
            f"{self.reason}; using {self.used}"
        )


@dataclass(frozen=True)
class Settings:
    """Everything the server and the CLI can be configured with."""

    api_key: Secret | None = None
    base_url: str | None = None
    model: str = "gpt-4o"
    cheap_model: str = "gpt-4o-mini"
    local_base_url: str | None = None
    local_model: str | None = None
    timeout: float = 30.0
    hover_deadline: float = 15.0
    action_deadline: float = 120.0
    ai_hover: bool = True
    hover_context_tokens: int = 2000
    hover_max_tokens: int = 400
    cache_dir: Path = field(default_factory=lambda: _user_dir("XDG_CACHE_HOME", ".cache", {}))
    usage_log: Path = field(
        default_factory=lambda: _user_dir("XDG_STATE_HOME", ".local/state", {}) / "usage.jsonl"
    )
    log_level: str = "INFO"
    providers: tuple[ProviderSetting, ...] | None = None
    routing_rules: tuple[RoutingRule, ...] = ()
    local_context_tokens: int | None = None
    retry_max_attempts: int = 3
    retry_initial_backoff: float = 0.5
    retry_max_backoff: float = 8.0
    breaker_failure_threshold: int = 5
    breaker_cooldown: float = 30.0
    breaker_quota_cooldown: float = 600.0
    fallback_reserve: float = 0.4
    queue_requests: bool = True
    run_tests: bool = False
    queue_max_wait: float = 1800.0
    queue_retry_interval: float = 10.0
    # Context engine (issue 3).
    explain_context_tokens: int = 3000
    fix_context_tokens: int = 3000
    context_deadline: float = 1.0
    memory_keep_last: int = 4
    memory_window_tokens: int = 16000
    embedding_model: str | None = "text-embedding-3-small"
    embedding_dimensions: int | None = None
    ask_context_tokens: int = 3000

    @property
    def ai_enabled(self) -> bool:
        """Whether a primary provider can be called at all."""
        return bool(self.api_key)

    def redacted(self) -> dict[str, str]:
        """A printable view (the key shown only as set/unset)."""
        out: dict[str, str] = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            out[f.name] = ("set" if value else "unset") if f.name == "api_key" else str(value)
        return out

    def provider_chain(self) -> tuple[ProviderSetting, ...]:
        """The configured providers, or the defaults derived from the environment.

        Defaults: the primary model (`LLM_MODEL`) and the cheap model (`LLM_CHEAP_MODEL`)
        on the OpenAI-compatible endpoint `OPENAI_BASE_URL` (OpenAI when unset) with
        `OPENAI_API_KEY`, plus a local endpoint when `LLM_LOCAL_BASE_URL` is set.
        """
        if self.providers is not None:
            return self.providers
        chain: list[ProviderSetting] = []
        if self.api_key:
            openai = self.base_url is None
            tiers = [("openai" if openai else "primary", "primary", self.model)]
            if self.cheap_model != self.model:
                tiers.append(("openai-cheap" if openai else "cheap", "cheap", self.cheap_model))
            chain.extend(
                ProviderSetting(
                    name,
                    role,
                    base_url=self.base_url,
                    api_key_env="OPENAI_API_KEY",
                    models=(model,),
                    api_key=self.api_key,
                )
                for name, role, model in tiers
            )
        if self.local_base_url:
            chain.append(
                ProviderSetting(
                    "local",
                    "local",
                    base_url=self.local_base_url,
                    models=(self.local_model,) if self.local_model else (),
                    max_context_tokens=self.local_context_tokens,
                )
            )
        return tuple(chain)


Parser = Callable[[Any], Any]


@dataclass(frozen=True, slots=True)
class _Spec:
    name: str
    env: str | None
    key: str
    parse: Parser


_SPECS: tuple[_Spec, ...] = (
    _Spec("api_key", "OPENAI_API_KEY", "apiKey", _secret),
    _Spec("base_url", "OPENAI_BASE_URL", "baseUrl", _url),
    _Spec("model", "LLM_MODEL", "model", _str),
    _Spec("cheap_model", "LLM_CHEAP_MODEL", "cheapModel", _str),
    _Spec("local_base_url", "LLM_LOCAL_BASE_URL", "localBaseUrl", _url),
    _Spec("local_model", "LLM_LOCAL_MODEL", "localModel", _opt_str),
    _Spec("timeout", "LLM_TIMEOUT", "timeout", _positive_float),
    _Spec("hover_deadline", "LLM_HOVER_DEADLINE", "hoverDeadline", _positive_float),
    _Spec("action_deadline", "LLM_ACTION_DEADLINE", "actionDeadline", _positive_float),
    _Spec("ai_hover", "LLM_LSP_AI_HOVER", "aiHover", _bool),
    _Spec(
        "hover_context_tokens", "LLM_LSP_HOVER_CONTEXT_TOKENS", "hoverContextTokens", _positive_int
    ),
    _Spec("hover_max_tokens", "LLM_LSP_HOVER_MAX_TOKENS", "hoverMaxTokens", _positive_int),
    _Spec("cache_dir", "LLM_LSP_CACHE_DIR", "cacheDir", _path),
    _Spec("usage_log", "LLM_LSP_USAGE_LOG", "usageLog", _path),
    _Spec("log_level", "LLM_LSP_LOG_LEVEL", "logLevel", _log_level),
    _Spec("providers", "LLM_LSP_PROVIDERS", "providers", _providers),
    _Spec("routing_rules", "LLM_LSP_ROUTING_RULES", "routingRules", _routing_rules),
    _Spec(
        "local_context_tokens",
        "LLM_LOCAL_CONTEXT_TOKENS",
        "localContextTokens",
        _opt_positive_int,
    ),
    _Spec("retry_max_attempts", "LLM_RETRY_MAX_ATTEMPTS", "retryMaxAttempts", _positive_int),
    _Spec("retry_initial_backoff", "LLM_RETRY_INITIAL_BACKOFF", "retryInitialBackoff", _backoff),
    _Spec("retry_max_backoff", "LLM_RETRY_MAX_BACKOFF", "retryMaxBackoff", _backoff),
    _Spec(
        "breaker_failure_threshold",
        "LLM_BREAKER_FAILURE_THRESHOLD",
        "breakerFailureThreshold",
        _positive_int,
    ),
    _Spec("breaker_cooldown", "LLM_BREAKER_COOLDOWN", "breakerCooldown", _positive_float),
    _Spec(
        "breaker_quota_cooldown",
        "LLM_BREAKER_QUOTA_COOLDOWN",
        "breakerQuotaCooldown",
        _positive_float,
    ),
    _Spec("fallback_reserve", "LLM_FALLBACK_RESERVE", "fallbackReserve", _fraction),
    _Spec("queue_requests", "LLM_LSP_QUEUE", "queueRequests", _bool),
    _Spec("run_tests", "LLM_LSP_RUN_TESTS", "runTests", _bool),
    _Spec("queue_max_wait", "LLM_LSP_QUEUE_MAX_WAIT", "queueMaxWait", _positive_float),
    _Spec(
        "queue_retry_interval",
        "LLM_LSP_QUEUE_RETRY_INTERVAL",
        "queueRetryInterval",
        _positive_float,
    ),
    _Spec(
        "explain_context_tokens",
        "LLM_LSP_EXPLAIN_CONTEXT_TOKENS",
        "explainContextTokens",
        _positive_int,
    ),
    _Spec("fix_context_tokens", "LLM_LSP_FIX_CONTEXT_TOKENS", "fixContextTokens", _positive_int),
    _Spec("context_deadline", "LLM_LSP_CONTEXT_DEADLINE", "contextDeadline", _backoff),
    _Spec("memory_keep_last", "LLM_LSP_MEMORY_KEEP_LAST", "memoryKeepLast", _positive_int),
    _Spec(
        "memory_window_tokens",
        "LLM_LSP_MEMORY_WINDOW_TOKENS",
        "memoryWindowTokens",
        _positive_int,
    ),
    _Spec("embedding_model", "LLM_LSP_EMBEDDING_MODEL", "embeddingModel", _opt_str),
    _Spec(
        "embedding_dimensions",
        "LLM_LSP_EMBEDDING_DIMENSIONS",
        "embeddingDimensions",
        _opt_positive_int,
    ),
    _Spec("ask_context_tokens", "LLM_LSP_ASK_CONTEXT_TOKENS", "askContextTokens", _positive_int),
)


def _shown(spec: _Spec, value: Any) -> str:
    if spec.name == "api_key":
        return "<redacted>"
    if spec.name == "providers":
        # A misplaced key inside a provider object must not reach a message.
        if isinstance(value, tuple):
            return "[" + ", ".join(p.name for p in value) + "]"
        return "<provider list>" if value is not None else "the defaults"
    text = repr(value) if not isinstance(value, Path) else str(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _apply(
    current: dict[str, Any],
    values: Mapping[str, Any],
    source: str,
    keyname: Callable[[_Spec], str | None],
    problems: list[SettingsProblem],
) -> None:
    for spec in _SPECS:
        key = keyname(spec)
        if key is None or key not in values:
            continue
        raw = values[key]
        try:
            current[spec.name] = spec.parse(raw)
        except ValueError as exc:
            setting = key if source == "environment" else f"{SECTION}.{key}"
            problems.append(
                SettingsProblem(
                    setting=setting,
                    source=source,
                    value=_shown(spec, raw),
                    used=_shown(spec, current[spec.name]),
                    reason=str(exc),
                )
            )


def build_settings(
    env: Mapping[str, str] | None = None,
    init_options: Mapping[str, Any] | None = None,
    workspace_config: Mapping[str, Any] | None = None,
) -> tuple[Settings, list[SettingsProblem]]:
    """Layer defaults, environment, initializationOptions and workspace configuration.

    `init_options` may hold the options directly or under the `llmLsp` key.
    Returns the settings and the problems found (never raises on bad values).
    """
    env = os.environ if env is None else env
    current: dict[str, Any] = {
        f.name: getattr(Settings(), f.name) for f in dataclasses.fields(Settings)
    }
    current["cache_dir"] = _user_dir("XDG_CACHE_HOME", ".cache", env)
    current["usage_log"] = _user_dir("XDG_STATE_HOME", ".local/state", env) / "usage.jsonl"
    problems: list[SettingsProblem] = []
    env_values = {k: v for k, v in env.items() if v != ""}
    _apply(current, env_values, "environment", lambda s: s.env, problems)
    for source, layer in (
        ("initializationOptions", init_options),
        ("workspace configuration", workspace_config),
    ):
        if not layer:
            continue
        if not isinstance(layer, Mapping):
            problems.append(
                SettingsProblem(
                    SECTION,
                    source,
                    type(layer).__name__,
                    "the previous values",
                    "expected an object",
                )
            )
            continue
        section = layer.get(SECTION, layer)
        if isinstance(section, Mapping):
            _apply(current, section, source, lambda s: s.key, problems)
    current["providers"] = _with_keys(current["providers"], env, current["api_key"])
    for problem in problems:
        logger.warning("%s", problem.message())
    return Settings(**current), problems
