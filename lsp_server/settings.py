"""One typed, validated settings object for the server and the CLI, declared once.

Every setting is declared on its field (`settings_spec.setting`): its `llmLsp.` key,
environment variable, parser, default, description and trust level. The settings
come in groups, so each part takes only its own: `settings.llm` (providers, models,
timeouts, retry, breakers, fallback, queue), `settings.hover`, `settings.agent`
(explain/fix/ask runs), `settings.context` (budgets, memory, embeddings),
`settings.storage` (where files are written), `settings.cache` (the answer cache).

Built in layers, later ones winning: defaults ← environment variables ← LSP
`initializationOptions` ← `workspace/configuration` section `llmLsp`. An invalid
value never stops the server: it is replaced by the value of the layer below and
reported as a notice the caller shows to the user (the LSP surface as a
`window/showMessage` warning, the CLI on stderr). The workspace layer is written by
the repository's author, so settings declared `Trust.USER` (keys, endpoints,
providers, test runs, paths) are taken from it only when `initializationOptions`
carries `trustedWorkspace: true`; otherwise they are ignored with one notice naming
them. The README's settings table and the editor clients' schema are generated from
these declarations (`settings_docs`).

The API key is held in a `Secret`, whose `repr`/`str` never show it, so a
settings object can be logged or put in an error message safely.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lsp_server.settings_limits import LimitsSettings, parse_redis_url
from lsp_server.settings_llm import LlmSettings
from lsp_server.settings_spec import (
    SECTION,
    TRUST_FLAG,
    IgnoredSettings,
    Layer,
    SettingsNotice,
    SettingsProblem,
    Trust,
    UnknownSetting,
    apply_layer,
    assemble,
    collect_specs,
    setting,
    shown,
    trust_flag,
)
from lsp_server.settings_telemetry import TelemetrySettings
from lsp_server.settings_values import (
    Secret,
    parse_ai_hover,
    parse_bool,
    parse_fraction,
    parse_log_level,
    parse_optional_positive_int,
    parse_optional_str,
    parse_path,
    parse_positive_float,
    parse_positive_int,
    parse_seconds_or_zero,
    parse_secret,
    resolve_provider_keys,
)

__all__ = [
    "SECTION",
    "TRUST_FLAG",
    "IgnoredSettings",
    "LlmSettings",
    "Settings",
    "SettingsNotice",
    "SettingsProblem",
    "UnknownSetting",
    "build_settings",
]

logger = logging.getLogger(__name__)

USER = Trust.USER


def _user_dir(xdg_var: str, fallback: str, env: Mapping[str, str]) -> Path:
    base = env.get(xdg_var) or str(Path(env.get("HOME") or Path.home()) / fallback)
    return Path(base) / "llm-lsp"


def _cache_dir(env: Mapping[str, str]) -> Path:
    return _user_dir("XDG_CACHE_HOME", ".cache", env)


def _usage_log(env: Mapping[str, str]) -> Path:
    return _user_dir("XDG_STATE_HOME", ".local/state", env) / "usage.jsonl"


@dataclass(frozen=True)
class HoverSettings:
    """The hover: whether the model is asked, how long it may take, how much it sees."""

    mode: str = setting(
        "always",
        key="aiHover",
        env="LLM_LSP_AI_HOVER",
        parse=parse_ai_hover,
        doc="when hovers ask the model: `always`, `onRepeat` (the second hover on a symbol "
        "within a minute; the first shows static facts and any cached answer) or `off`",
    )
    wait: float = setting(
        0.2,
        key="hoverWait",
        env="LLM_LSP_HOVER_WAIT",
        parse=parse_seconds_or_zero,
        doc="seconds a hover waits for the model; past it the hover shows the static facts, "
        "the answer is finished in the background (cached, and sent to clients that ask). "
        "A client that updates the open hover itself (the Neovim plugin) never waits for "
        "the model, and for the static facts at most this long (a placeholder past it)",
    )
    deadline: float = setting(
        15.0,
        key="hoverDeadline",
        env="LLM_HOVER_DEADLINE",
        parse=parse_positive_float,
        doc="seconds a hover may take in all",
    )
    context_tokens: int = setting(
        2000,
        key="hoverContextTokens",
        env="LLM_LSP_HOVER_CONTEXT_TOKENS",
        parse=parse_positive_int,
        doc="code budget of a hover prompt",
    )
    max_tokens: int = setting(
        400,
        key="hoverMaxTokens",
        env="LLM_LSP_HOVER_MAX_TOKENS",
        parse=parse_positive_int,
        doc="longest hover answer",
    )

    @property
    def enabled(self) -> bool:
        """Whether hovers may ask the model at all."""
        return self.mode != "off"


@dataclass(frozen=True)
class AgentSettings:
    """Explain, Fix and Ask runs: their deadline and whether tests may run."""

    deadline: float = setting(
        120.0,
        key="actionDeadline",
        env="LLM_ACTION_DEADLINE",
        parse=parse_positive_float,
        doc="seconds an explain/fix/ask may take",
    )
    run_tests: bool = setting(
        False,
        key="runTests",
        env="LLM_LSP_RUN_TESTS",
        parse=parse_bool,
        doc="let the agent run the project's tests (and check fixes with them)",
        trust=USER,
    )


@dataclass(frozen=True)
class ContextSettings:
    """What the model is shown: token budgets, the context deadline, memory, embeddings."""

    explain_tokens: int = setting(
        3000,
        key="explainContextTokens",
        env="LLM_LSP_EXPLAIN_CONTEXT_TOKENS",
        parse=parse_positive_int,
        doc="code budget given up front to Explain (the agent reads more with its tools)",
    )
    fix_tokens: int = setting(
        3000,
        key="fixContextTokens",
        env="LLM_LSP_FIX_CONTEXT_TOKENS",
        parse=parse_positive_int,
        doc="code budget given up front to Fix",
    )
    ask_tokens: int = setting(
        3000,
        key="askContextTokens",
        env="LLM_LSP_ASK_CONTEXT_TOKENS",
        parse=parse_positive_int,
        doc="code budget of a workspace question",
    )
    deadline: float = setting(
        1.0,
        key="contextDeadline",
        env="LLM_LSP_CONTEXT_DEADLINE",
        parse=parse_seconds_or_zero,
        doc="seconds jedi may spend placing names and callers for an Explain/Fix pack",
    )
    memory_window_tokens: int = setting(
        16000,
        key="memoryWindowTokens",
        env="LLM_LSP_MEMORY_WINDOW_TOKENS",
        parse=parse_positive_int,
        doc="window of a multi-step conversation (tool specs and the answer included); "
        "the middle is summarised beyond it",
    )
    memory_keep_last: int = setting(
        4,
        key="memoryKeepLast",
        env="LLM_LSP_MEMORY_KEEP_LAST",
        parse=parse_positive_int,
        doc="exchanges always kept verbatim",
    )
    embedding_model: str | None = setting(
        "text-embedding-3-small",
        key="embeddingModel",
        env="LLM_LSP_EMBEDDING_MODEL",
        parse=parse_optional_str,
        doc="embeddings for workspace questions; empty: lexical search only",
    )
    embedding_dimensions: int | None = setting(
        key="embeddingDimensions",
        env="LLM_LSP_EMBEDDING_DIMENSIONS",
        parse=parse_optional_positive_int,
        doc="shorter vectors (text-embedding-3 models)",
        shown_default="the model's",
    )
    prompt_variant_share: float = setting(
        0.0,
        key="promptVariantShare",
        env="LLM_LSP_PROMPT_VARIANT_SHARE",
        parse=parse_fraction,
        doc="share of requests (split by hovered symbol or request id) given variant b of "
        "the prompt templates; the usage log and `llm-lsp report` compare the two",
    )


@dataclass(frozen=True)
class StorageSettings:
    """Where the server writes: its caches and the usage log."""

    cache_dir: Path = setting(
        key="cacheDir",
        env="LLM_LSP_CACHE_DIR",
        parse=parse_path,
        doc="tokenizer cache, explanations, summaries, embeddings",
        trust=USER,
        env_default=_cache_dir,
        shown_default="`~/.cache/llm-lsp`",
    )
    usage_log: Path = setting(
        key="usageLog",
        env="LLM_LSP_USAGE_LOG",
        parse=parse_path,
        doc="one JSON line per provider attempt, per request and per quality signal",
        trust=USER,
        env_default=_usage_log,
        shown_default="`~/.local/state/llm-lsp/usage.jsonl`",
    )
    redis_url: Secret | None = setting(
        key="redisUrl",
        env="LLM_LSP_REDIS_URL",
        parse=parse_redis_url,
        doc="Redis shared by a team for the answer cache, budgets and rate limits (e.g. "
        "`redis://host:6379/0`); unreachable: the local stores, said once",
        trust=USER,
        shown_default="unset (a local store under `cacheDir`)",
    )
    usage_log_max_mb: int = setting(
        20,
        key="usageLogMaxMb",
        env="LLM_LSP_USAGE_LOG_MAX_MB",
        parse=parse_positive_int,
        doc="rotate the usage log at this size (3 older files kept: `.1` to `.3`)",
        trust=USER,
    )


@dataclass(frozen=True)
class CacheSettings:
    """The answer cache: whether it is used, how long answers live, how much disk it takes."""

    enabled: bool = setting(
        True,
        key="answerCache",
        env="LLM_LSP_ANSWER_CACHE",
        parse=parse_bool,
        doc="reuse answers for unchanged code, and serve the latest one (marked stale) "
        "when no model can answer",
    )
    ttl: float = setting(
        7 * 86400.0,
        key="answerCacheTtl",
        env="LLM_LSP_ANSWER_CACHE_TTL",
        parse=parse_positive_float,
        doc="seconds a cached answer is reused (the latest answer per symbol is kept "
        "at least 30 days for the fallback tier)",
        shown_default="604800 (7 days)",
    )
    size_mb: int = setting(
        256,
        key="answerCacheSizeMb",
        env="LLM_LSP_ANSWER_CACHE_SIZE_MB",
        parse=parse_positive_int,
        doc="disk the local answer cache may take, in MiB (least recently stored evicted)",
    )


@dataclass(frozen=True)
class Settings:
    """Everything the server and the CLI can be configured with, in groups."""

    llm: LlmSettings = field(default_factory=LlmSettings)
    limits: LimitsSettings = field(default_factory=LimitsSettings)
    hover: HoverSettings = field(default_factory=HoverSettings)
    agent: AgentSettings = field(default_factory=AgentSettings)
    context: ContextSettings = field(default_factory=ContextSettings)
    storage: StorageSettings = field(default_factory=StorageSettings)
    telemetry: TelemetrySettings = field(default_factory=TelemetrySettings)
    cache: CacheSettings = field(default_factory=CacheSettings)
    log_level: str = setting(
        "INFO",
        key="logLevel",
        env="LLM_LSP_LOG_LEVEL",
        parse=parse_log_level,
        doc="server log level (stderr or `--log-file`)",
    )

    def redacted(self) -> dict[str, str]:
        """A printable view by dotted name (the key shown only as set/unset)."""
        out: dict[str, str] = {}
        for spec in SPECS:
            value: Any = self
            for part in spec.path:
                value = getattr(value, part)
            secret = spec.declaration.parse is parse_secret
            out[spec.name] = ("set" if value else "unset") if secret else shown(spec, value)
        return out


SPECS = collect_specs(Settings)
"""Every declared setting, in declaration order."""


def build_settings(
    env: Mapping[str, str] | None = None,
    init_options: Mapping[str, Any] | None = None,
    workspace_config: Mapping[str, Any] | None = None,
) -> tuple[Settings, list[SettingsNotice]]:
    """Layer defaults, environment, initializationOptions and workspace configuration.

    `init_options` and `workspace_config` may hold the options directly or under the
    `llmLsp` key. The workspace layer sets `Trust.USER` settings only when
    `init_options` carries `trustedWorkspace: true`. Returns the settings and the
    notices to show; never raises, whatever the input.
    """
    env = os.environ if env is None else env
    notices: list[SettingsNotice] = []
    current: dict[str, Any] = {spec.name: spec.default(env) for spec in SPECS}
    env_values = {k: v for k, v in env.items() if v != ""}
    apply_layer(current, Layer(env_values, "environment", by_env=True), SPECS, notices)
    trusted = trust_flag(init_options, notices)
    for source, values, layer_trusted in (
        ("initializationOptions", init_options, True),
        ("workspace configuration", workspace_config, trusted),
    ):
        if not values:
            continue
        section = values.get(SECTION, values) if isinstance(values, Mapping) else values
        if not isinstance(section, Mapping):
            name = SECTION if isinstance(values, Mapping) else "settings"
            kind = type(section).__name__
            notices.append(
                SettingsProblem(name, source, kind, "the previous values", "expected an object")
            )
            continue
        apply_layer(current, Layer(section, source, trusted=layer_trusted), SPECS, notices)
    current["llm.providers"] = resolve_provider_keys(
        current["llm.providers"], env, current["llm.api_key"]
    )
    for notice in notices:
        logger.warning("%s", notice.message())
    settings: Settings = assemble(Settings, current)
    return settings, notices
