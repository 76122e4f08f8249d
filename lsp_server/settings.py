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
import math
import os
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
)


def _shown(spec: _Spec, value: Any) -> str:
    if spec.name == "api_key":
        return "<redacted>"
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
    for problem in problems:
        logger.warning("%s", problem.message())
    return Settings(**current), problems
