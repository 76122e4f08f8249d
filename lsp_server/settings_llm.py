"""The `settings.llm` group: providers, models, timeouts, retry, breakers, fallback, queue.

Declared like every other group (see `settings_spec.setting`); `settings.py` puts the
groups together and builds them from the layers. `provider_chain` turns these settings
into the list of OpenAI-compatible endpoints the service calls, in fallback order.
"""

from __future__ import annotations

from dataclasses import dataclass

from lsp_server.settings_spec import Trust, setting
from lsp_server.settings_values import (
    ProviderSetting,
    RoutingRule,
    Secret,
    parse_bool,
    parse_fraction,
    parse_optional_positive_int,
    parse_optional_str,
    parse_positive_float,
    parse_positive_int,
    parse_providers,
    parse_routing_rules,
    parse_seconds_or_zero,
    parse_secret,
    parse_str,
    parse_url,
)

USER = Trust.USER


def _names_a_model(rules: tuple[RoutingRule, ...]) -> bool:
    return any(rule.model for rule in rules)


@dataclass(frozen=True)
class LlmSettings:
    """Providers, models, timeouts, retry, circuit breakers, fallback and the queue."""

    api_key: Secret | None = setting(
        key="apiKey",
        env="OPENAI_API_KEY",
        parse=parse_secret,
        doc="key of the primary provider; never logged",
        trust=USER,
        shown_default="unset (offline mode)",
    )
    base_url: str | None = setting(
        key="baseUrl",
        env="OPENAI_BASE_URL",
        parse=parse_url,
        doc="any OpenAI-compatible endpoint",
        trust=USER,
        shown_default="the SDK's",
    )
    model: str = setting(
        "gpt-4o", key="model", env="LLM_MODEL", parse=parse_str, doc="primary model"
    )
    cheap_model: str = setting(
        "gpt-4o-mini",
        key="cheapModel",
        env="LLM_CHEAP_MODEL",
        parse=parse_str,
        doc="cheaper tier, same provider (also writes conversation summaries)",
    )
    local_base_url: str | None = setting(
        key="localBaseUrl",
        env="LLM_LOCAL_BASE_URL",
        parse=parse_url,
        doc="local tier (Ollama, llama.cpp, vLLM)",
        trust=USER,
    )
    local_model: str | None = setting(
        key="localModel",
        env="LLM_LOCAL_MODEL",
        parse=parse_optional_str,
        doc="model name on the local endpoint",
    )
    local_context_tokens: int | None = setting(
        key="localContextTokens",
        env="LLM_LOCAL_CONTEXT_TOKENS",
        parse=parse_optional_positive_int,
        doc="the local model's window; larger prompts skip it",
    )
    providers: tuple[ProviderSetting, ...] | None = setting(
        key="providers",
        env="LLM_LSP_PROVIDERS",
        parse=parse_providers,
        doc="a JSON list of providers instead of the above (`name`, `role`, `baseUrl`, "
        "`apiKeyEnv`, `models`, `maxContextTokens`, `timeout`); see `scripts/deploy/README.md`",
        trust=USER,
    )
    routing_rules: tuple[RoutingRule, ...] = setting(
        (),
        key="routingRules",
        env="LLM_LSP_ROUTING_RULES",
        parse=parse_routing_rules,
        doc="rules tried before the built-in ones (`tier`, `kind`, `complexity`, "
        "`minContextTokens`, `maxContextTokens`, `model`)",
        shown_default="none",
        needs_trust=_names_a_model,
        trust_note="workspace, except rules naming a `model`",
    )
    timeout: float = setting(
        30.0,
        key="timeout",
        env="LLM_TIMEOUT",
        parse=parse_positive_float,
        doc="seconds one provider attempt may take",
    )
    retry_max_attempts: int = setting(
        3,
        key="retryMaxAttempts",
        env="LLM_RETRY_MAX_ATTEMPTS",
        parse=parse_positive_int,
        doc="attempts per provider",
    )
    retry_initial_backoff: float = setting(
        0.5,
        key="retryInitialBackoff",
        env="LLM_RETRY_INITIAL_BACKOFF",
        parse=parse_seconds_or_zero,
        doc="seconds before the first retry, with jitter; `Retry-After` wins",
    )
    retry_max_backoff: float = setting(
        8.0,
        key="retryMaxBackoff",
        env="LLM_RETRY_MAX_BACKOFF",
        parse=parse_seconds_or_zero,
        doc="longest wait between retries, in seconds",
    )
    breaker_failure_threshold: int = setting(
        5,
        key="breakerFailureThreshold",
        env="LLM_BREAKER_FAILURE_THRESHOLD",
        parse=parse_positive_int,
        doc="failures in a row that open a provider's breaker",
    )
    breaker_cooldown: float = setting(
        30.0,
        key="breakerCooldown",
        env="LLM_BREAKER_COOLDOWN",
        parse=parse_positive_float,
        doc="seconds a breaker stays open before one probe",
    )
    breaker_quota_cooldown: float = setting(
        600.0,
        key="breakerQuotaCooldown",
        env="LLM_BREAKER_QUOTA_COOLDOWN",
        parse=parse_positive_float,
        doc="the same after a quota error",
    )
    fallback_reserve: float = setting(
        0.4,
        key="fallbackReserve",
        env="LLM_FALLBACK_RESERVE",
        parse=parse_fraction,
        doc="share of the deadline kept for the later tiers",
    )
    queue_requests: bool = setting(
        True,
        key="queueRequests",
        env="LLM_LSP_QUEUE",
        parse=parse_bool,
        doc="explain/fix wait for a model instead of failing when no tier answers",
    )
    queue_max_wait: float = setting(
        1800.0,
        key="queueMaxWait",
        env="LLM_LSP_QUEUE_MAX_WAIT",
        parse=parse_positive_float,
        doc="seconds a queued request may wait in all",
    )
    queue_retry_interval: float = setting(
        10.0,
        key="queueRetryInterval",
        env="LLM_LSP_QUEUE_RETRY_INTERVAL",
        parse=parse_positive_float,
        doc="seconds between a queued request's attempts",
    )

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
