"""Values and parsers behind `settings.py`: secrets, provider and routing entries.

Every parser takes a raw value (from the environment, `initializationOptions` or
`workspace/configuration`) and returns the typed value or raises `ValueError`
with a user-readable reason, which `settings.build_settings` turns into a
`SettingsProblem`. Nothing here reads the environment except `resolve_provider_keys`, which
resolves each provider's key from the variable its settings name.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


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


def parse_str(value: Any) -> str:
    """A non-empty string, stripped."""
    if not isinstance(value, str) or not value.strip():
        raise ValueError("expected a non-empty string")
    return value.strip()


def parse_optional_str(value: Any) -> str | None:
    """A non-empty string, or None for null or ""."""
    if value is None or value == "":
        return None
    return parse_str(value)


def parse_url(value: Any) -> str | None:
    """An http(s) URL, or None for null or ""."""
    text = parse_optional_str(value)
    if text is not None and not text.startswith(("http://", "https://")):
        raise ValueError("expected an http:// or https:// URL")
    return text


def parse_positive_float(value: Any) -> float:
    """A positive, finite number of seconds."""
    if isinstance(value, bool):
        raise ValueError("expected a number of seconds")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError("expected a number of seconds") from None
    if not math.isfinite(number) or number <= 0:
        raise ValueError("expected a positive number of seconds")
    return number


def parse_positive_int(value: Any) -> int:
    """A positive whole number."""
    if isinstance(value, bool):
        raise ValueError("expected a positive whole number")
    try:
        number = int(str(value).strip())
    except (TypeError, ValueError):
        raise ValueError("expected a positive whole number") from None
    if number <= 0:
        raise ValueError("expected a positive whole number")
    return number


def parse_bool(value: Any) -> bool:
    """true/false (also 1/0, yes/no, on/off, as environment variables spell them)."""
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off"):
        return False
    raise ValueError("expected true or false")


def parse_path(value: Any) -> Path:
    """A file system path; `~` is expanded."""
    text = parse_str(value)
    if "\0" in text:
        raise ValueError("expected a path without NUL characters")
    try:
        return Path(text).expanduser()
    except RuntimeError:  # `~user` naming no user
        raise ValueError("expected a path whose ~ names a user") from None


def parse_secret(value: Any) -> Secret | None:
    """A key, held in a `Secret`; None for null or ""."""
    text = parse_optional_str(value)
    return Secret(text) if text else None


def parse_log_level(value: Any) -> str:
    """DEBUG, INFO, WARNING or ERROR (any case)."""
    text = parse_str(value).upper()
    if text not in ("DEBUG", "INFO", "WARNING", "ERROR"):
        raise ValueError("expected DEBUG, INFO, WARNING or ERROR")
    return text


AI_HOVER_MODES = ("always", "onRepeat", "off")


def parse_ai_hover(value: Any) -> str:
    """always, onRepeat or off; true and false (the setting's old form) mean always and off."""
    if isinstance(value, bool):
        return "always" if value else "off"
    text = parse_str(value)
    for mode in AI_HOVER_MODES:
        if text.lower() == mode.lower():
            return mode
    try:
        return "always" if parse_bool(text) else "off"
    except ValueError:
        raise ValueError("expected always, onRepeat or off") from None


TELEMETRY_EXPORTERS = ("none", "console", "file", "otlp")


def parse_telemetry_exporter(value: Any) -> str:
    """none, console, file or otlp (any case)."""
    text = parse_str(value).lower()
    if text not in TELEMETRY_EXPORTERS:
        raise ValueError("expected none, console, file or otlp")
    return text


def parse_optional_positive_int(value: Any) -> int | None:
    """A positive whole number, or None for null or ""."""
    return None if value is None or value == "" else parse_positive_int(value)


def parse_seconds_or_zero(value: Any) -> float:
    """A number of seconds, zero allowed."""
    return 0.0 if value in (0, "0") else parse_positive_float(value)


def parse_fraction(value: Any) -> float:
    """A fraction from 0 up to (not including) 1."""
    number = parse_seconds_or_zero(value)
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


def parse_providers(value: Any) -> tuple[ProviderSetting, ...] | None:
    """The `providers` list (a list or its JSON text); None for null or ""."""
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
            name = parse_str(entry.get("name"))
            role = parse_str(entry.get("role"))
            if role not in ROLES:
                raise ValueError(f"role must be one of {', '.join(ROLES)}")
            base_url = parse_url(entry.get("baseUrl"))
            key_env = parse_optional_str(entry.get("apiKeyEnv"))
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
                    timeout=None if timeout is None else parse_positive_float(timeout),
                    max_context_tokens=parse_optional_positive_int(entry.get("maxContextTokens")),
                )
            )
        except ValueError as exc:
            raise ValueError(f"{what}: {exc}") from None
    if len({p.name for p in out}) != len(out):
        raise ValueError("provider names must be unique")
    return tuple(out)


_RULE_KEYS = {"tier", "kind", "complexity", "minContextTokens", "maxContextTokens", "model"}


def parse_routing_rules(value: Any) -> tuple[RoutingRule, ...]:
    """The `routingRules` list (a list or its JSON text); empty for null or ""."""
    if value is None or value == "":
        return ()
    out: list[RoutingRule] = []
    for i, entry in enumerate(_json_list(value, "rule")):
        what = f"rule {i + 1}"
        _check_keys(entry, _RULE_KEYS | {"reason"}, what)
        try:
            tier = parse_str(entry.get("tier"))
            if tier not in ROLES:
                raise ValueError(f"tier must be one of {', '.join(ROLES)}")
            out.append(
                RoutingRule(
                    tier=tier,
                    kinds=_names(entry.get("kind", []), TASK_KINDS, "kind"),
                    complexity=_names(entry.get("complexity", []), COMPLEXITIES, "complexity"),
                    min_context_tokens=parse_optional_positive_int(entry.get("minContextTokens")),
                    max_context_tokens=parse_optional_positive_int(entry.get("maxContextTokens")),
                    model=parse_optional_str(entry.get("model")),
                    reason=parse_optional_str(entry.get("reason")) or f"user rule {i + 1}",
                )
            )
        except ValueError as exc:
            raise ValueError(f"{what}: {exc}") from None
    return tuple(out)


def resolve_provider_keys(
    providers: tuple[ProviderSetting, ...] | None,
    env: Mapping[str, str],
    api_key: Secret | None,
) -> tuple[ProviderSetting, ...] | None:
    """Read each provider's key from the environment variable its settings name."""
    if providers is None:
        return None
    out = []
    for p in providers:
        key = parse_secret(env.get(p.api_key_env, "")) if p.api_key_env else None
        if key is None and p.api_key_env == "OPENAI_API_KEY":
            key = api_key  # the editor's llmLsp.apiKey stands in for OPENAI_API_KEY
        out.append(dataclasses.replace(p, api_key=key))
    return tuple(out)


Parser = Callable[[Any], Any]

_NUMBER = {"type": "number", "exclusiveMinimum": 0}
_OPTIONAL_STRING = {"type": ["string", "null"]}
_PARSER_SCHEMAS: dict[Parser, dict[str, Any]] = {
    parse_str: {"type": "string", "minLength": 1},
    parse_optional_str: _OPTIONAL_STRING,
    parse_url: {**_OPTIONAL_STRING, "pattern": "^https?://"},
    parse_positive_float: _NUMBER,
    parse_positive_int: {"type": "integer", "minimum": 1},
    parse_bool: {"type": "boolean"},
    parse_ai_hover: {"type": "string", "enum": list(AI_HOVER_MODES)},
    parse_path: {"type": "string", "minLength": 1},
    parse_secret: _OPTIONAL_STRING,
    parse_log_level: {"type": "string", "enum": ["DEBUG", "INFO", "WARNING", "ERROR"]},
    parse_optional_positive_int: {"type": ["integer", "null"], "minimum": 1},
    parse_telemetry_exporter: {"type": "string", "enum": list(TELEMETRY_EXPORTERS)},
    parse_seconds_or_zero: {"type": "number", "minimum": 0},
    parse_fraction: {"type": "number", "minimum": 0, "exclusiveMaximum": 1},
    parse_providers: {"type": ["array", "null"], "items": {"type": "object"}},
    parse_routing_rules: {"type": "array", "items": {"type": "object"}},
}


def parser_schema(parse: Parser) -> dict[str, Any]:
    """The JSON schema of the values `parse` accepts (as editors' setting lists show them)."""
    return dict(_PARSER_SCHEMAS.get(parse, {}))
