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
import json
import logging
import math
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

SECTION = "llmLsp"


class Secret:
    """A string that never shows itself in logs, reprs or messages."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        """The secret itself: pass it to the SDK, never to a logger."""
        return self._value

    def __repr__(self) -> str:
        return "Secret('***')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)

    def __bool__(self) -> bool:
        return bool(self._value)


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


ROLES = ("primary", "cheap", "local")
"""Provider roles, in fallback order."""

TASK_KINDS = ("hover", "explain", "fix", "summary")
COMPLEXITIES = ("low", "medium", "high")


@dataclass(frozen=True, slots=True)
class ProviderSetting:
    """One OpenAI-compatible endpoint of the provider chain (`llmLsp.providers` entry).

    Settings name the environment variable holding the key (`api_key_env`); the key
    itself is read from the environment when settings are built (`api_key`) and is
    never accepted from a settings file. `models` empty means "ask `/v1/models`".
    """

    name: str
    role: str
    base_url: str | None = None
    api_key_env: str | None = None
    models: tuple[str, ...] = ()
    timeout: float | None = None
    max_context_tokens: int | None = None
    api_key: Secret | None = field(default=None, compare=False)


@dataclass(frozen=True, slots=True)
class RoutingRule:
    """`llmLsp.routingRules` entry: when a request matches, start the chain at `tier`.

    Empty `kinds`/`complexity` match anything; token bounds are inclusive.
    """

    tier: str
    kinds: tuple[str, ...] = ()
    complexity: tuple[str, ...] = ()
    min_context_tokens: int | None = None
    max_context_tokens: int | None = None
    model: str | None = None
    reason: str = ""


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
    queue_max_wait: float = 1800.0
    queue_retry_interval: float = 10.0

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


def _str(value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValueError("expected a non-empty string")
    return value.strip()


def _opt_str(value: Any) -> str | None:
    if value is None or value == "":
        return None
    return _str(value)


def _url(value: Any) -> str | None:
    text = _opt_str(value)
    if text is not None and not text.startswith(("http://", "https://")):
        raise ValueError("expected an http:// or https:// URL")
    return text


def _positive_float(value: Any) -> float:
    if isinstance(value, bool):
        raise ValueError("expected a number of seconds")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError("expected a number of seconds") from None
    if not math.isfinite(number) or number <= 0:
        raise ValueError("expected a positive number of seconds")
    return number


def _positive_int(value: Any) -> int:
    if isinstance(value, bool):
        raise ValueError("expected a positive whole number")
    try:
        number = int(str(value).strip())
    except (TypeError, ValueError):
        raise ValueError("expected a positive whole number") from None
    if number <= 0:
        raise ValueError("expected a positive whole number")
    return number


def _bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off"):
        return False
    raise ValueError("expected true or false")


def _path(value: Any) -> Path:
    return Path(_str(value)).expanduser()


def _secret(value: Any) -> Secret | None:
    text = _opt_str(value)
    return Secret(text) if text else None


def _log_level(value: Any) -> str:
    text = _str(value).upper()
    if text not in ("DEBUG", "INFO", "WARNING", "ERROR"):
        raise ValueError("expected DEBUG, INFO, WARNING or ERROR")
    return text


def _opt_positive_int(value: Any) -> int | None:
    return None if value is None or value == "" else _positive_int(value)


def _backoff(value: Any) -> float:
    return 0.0 if value in (0, "0") else _positive_float(value)


def _fraction(value: Any) -> float:
    number = _backoff(value)
    if number >= 1.0:
        raise ValueError("expected a fraction from 0 up to (not including) 1")
    return number


_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def _json_list(value: Any, what: str) -> list[Mapping[str, Any]]:
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            raise ValueError(f"expected a JSON list of {what} objects") from None
    if not isinstance(value, list) or not all(isinstance(v, Mapping) for v in value):
        raise ValueError(f"expected a list of {what} objects")
    return value


def _names(value: Any, allowed: tuple[str, ...], what: str) -> tuple[str, ...]:
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or not all(isinstance(i, str) and i for i in items):
        raise ValueError(f"{what}: expected a string or a list of strings")
    if allowed and any(i not in allowed for i in items):
        raise ValueError(f"{what}: expected some of {', '.join(allowed)}")
    return tuple(items)


def _check_keys(entry: Mapping[str, Any], known: set[str], what: str) -> None:
    unknown = sorted(set(entry) - known)
    if unknown:
        raise ValueError(f"{what}: unknown field(s) {', '.join(unknown)}")


_PROVIDER_KEYS = {"name", "role", "baseUrl", "apiKeyEnv", "models", "timeout", "maxContextTokens"}


def _providers(value: Any) -> tuple[ProviderSetting, ...] | None:
    if value is None or value == "":
        return None
    out: list[ProviderSetting] = []
    for i, entry in enumerate(_json_list(value, "provider")):
        what = f"provider {i + 1}"
        if any(k.lower() in ("apikey", "key", "api_key") for k in entry):
            raise ValueError(
                f"{what}: keys are never read from settings; put the key in an environment "
                "variable and name it in apiKeyEnv"
            )
        _check_keys(entry, _PROVIDER_KEYS, what)
        try:
            name = _str(entry.get("name"))
            role = _str(entry.get("role"))
            if role not in ROLES:
                raise ValueError(f"role must be one of {', '.join(ROLES)}")
            base_url = _url(entry.get("baseUrl"))
            key_env = _opt_str(entry.get("apiKeyEnv"))
            if key_env is not None and not _ENV_NAME.fullmatch(key_env):
                raise ValueError("apiKeyEnv must be an environment variable name")
            models = _names(entry.get("models", []), (), "models")
            if role != "local" and not models:
                raise ValueError("models must list at least one model (optional for local)")
            if role == "local" and base_url is None:
                raise ValueError("a local provider needs baseUrl")
            timeout = entry.get("timeout")
            out.append(
                ProviderSetting(
                    name=name,
                    role=role,
                    base_url=base_url,
                    api_key_env=key_env,
                    models=models,
                    timeout=None if timeout is None else _positive_float(timeout),
                    max_context_tokens=_opt_positive_int(entry.get("maxContextTokens")),
                )
            )
        except ValueError as exc:
            raise ValueError(f"{what}: {exc}") from None
    if len({p.name for p in out}) != len(out):
        raise ValueError("provider names must be unique")
    return tuple(out)


_RULE_KEYS = {"tier", "kind", "complexity", "minContextTokens", "maxContextTokens", "model"}


def _routing_rules(value: Any) -> tuple[RoutingRule, ...]:
    if value is None or value == "":
        return ()
    out: list[RoutingRule] = []
    for i, entry in enumerate(_json_list(value, "rule")):
        what = f"rule {i + 1}"
        _check_keys(entry, _RULE_KEYS | {"reason"}, what)
        try:
            tier = _str(entry.get("tier"))
            if tier not in ROLES:
                raise ValueError(f"tier must be one of {', '.join(ROLES)}")
            out.append(
                RoutingRule(
                    tier=tier,
                    kinds=_names(entry.get("kind", []), TASK_KINDS, "kind"),
                    complexity=_names(entry.get("complexity", []), COMPLEXITIES, "complexity"),
                    min_context_tokens=_opt_positive_int(entry.get("minContextTokens")),
                    max_context_tokens=_opt_positive_int(entry.get("maxContextTokens")),
                    model=_opt_str(entry.get("model")),
                    reason=_opt_str(entry.get("reason")) or f"user rule {i + 1}",
                )
            )
        except ValueError as exc:
            raise ValueError(f"{what}: {exc}") from None
    return tuple(out)


def _with_keys(
    providers: tuple[ProviderSetting, ...] | None,
    env: Mapping[str, str],
    api_key: Secret | None,
) -> tuple[ProviderSetting, ...] | None:
    """Read each provider's key from the environment variable its settings name."""
    if providers is None:
        return None
    out = []
    for p in providers:
        key = _secret(env.get(p.api_key_env, "")) if p.api_key_env else None
        if key is None and p.api_key_env == "OPENAI_API_KEY":
            key = api_key  # the editor's llmLsp.apiKey stands in for OPENAI_API_KEY
        out.append(dataclasses.replace(p, api_key=key))
    return tuple(out)


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
    _Spec("queue_max_wait", "LLM_LSP_QUEUE_MAX_WAIT", "queueMaxWait", _positive_float),
    _Spec(
        "queue_retry_interval",
        "LLM_LSP_QUEUE_RETRY_INTERVAL",
        "queueRetryInterval",
        _positive_float,
    ),
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
