"""Provider tiers from settings: which OpenAI-compatible endpoints exist, in what order.

`tier_specs(settings.llm)` turns `LlmSettings.provider_chain()` (an explicit `llmLsp.providers`
list, or the defaults derived from `OPENAI_API_KEY`, `LLM_MODEL`, `LLM_CHEAP_MODEL` and
`LLM_LOCAL_BASE_URL`) into `TierSpec`s sorted by role: primary, then cheap, then local.
A spec whose key variable is named but unset is kept with an `unavailable` reason so
`llm-lsp doctor` can say why, but the chain never calls it.

Every tier is reached through the same client code (`ProviderClient`); a local
endpoint (Ollama, llama.cpp server, vLLM) differs only in its URL and missing key.
`list_models` asks an endpoint's `/v1/models`, for model discovery and the doctor.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

from lsp_server.llm.client import NO_KEY
from lsp_server.llm.errors import classify
from lsp_server.settings import LlmSettings
from lsp_server.settings_values import ROLES, Secret

if TYPE_CHECKING:
    import openai

logger = logging.getLogger(__name__)

OPENAI_BASE_URL = "https://api.openai.com/v1"
"""Where a provider without `baseUrl` goes (the SDK's default)."""


@dataclass(frozen=True, slots=True)
class TierSpec:
    """One provider of the chain, resolved from settings (key included, never shown)."""

    name: str
    role: str
    base_url: str | None
    models: tuple[str, ...]
    api_key: Secret | None
    api_key_env: str | None
    timeout: float
    max_context_tokens: int | None = None
    unavailable: str | None = None

    @property
    def url(self) -> str:
        """The endpoint's base URL as it will be called."""
        return self.base_url or OPENAI_BASE_URL

    @property
    def default_model(self) -> str:
        """The first configured model, or "" when it must be discovered."""
        return self.models[0] if self.models else ""

    def same_account(self, other: TierSpec) -> bool:
        """Whether both use one key on one endpoint (a bad key or quota hits both)."""
        return (
            self.api_key is not None
            and self.api_key == other.api_key
            and self.url.rstrip("/") == other.url.rstrip("/")
        )


def tier_specs(settings: LlmSettings) -> tuple[TierSpec, ...]:
    """The provider chain for `settings`, sorted by role (stable within a role)."""
    specs: list[TierSpec] = []
    for p in settings.provider_chain():
        unavailable: str | None = None
        if p.api_key is None and p.api_key_env is not None:
            unavailable = f"{p.api_key_env} is not set"
        elif p.api_key is None and p.base_url is None:
            unavailable = "no apiKeyEnv given for the OpenAI API"
        specs.append(
            TierSpec(
                name=p.name,
                role=p.role,
                base_url=p.base_url,
                models=p.models,
                api_key=p.api_key,
                api_key_env=p.api_key_env,
                timeout=p.timeout if p.timeout is not None else settings.timeout,
                max_context_tokens=p.max_context_tokens,
                unavailable=unavailable,
            )
        )
    specs.sort(key=lambda s: ROLES.index(s.role))
    for spec in specs:
        if spec.unavailable:
            logger.info("provider %s (%s) unavailable: %s", spec.name, spec.role, spec.unavailable)
    return tuple(specs)


def sdk_client(spec: TierSpec, timeout: float) -> openai.AsyncOpenAI:
    """A bare SDK client for `spec` with the SDK's own retries off."""
    import openai

    return openai.AsyncOpenAI(
        api_key=spec.api_key.reveal() if spec.api_key else NO_KEY,
        base_url=spec.base_url,
        timeout=timeout,
        max_retries=0,
    )


async def list_models(spec: TierSpec, limit: float) -> list[str]:
    """Model ids the endpoint serves (`GET /v1/models`); raises `ProviderFailure`."""
    client = sdk_client(spec, limit)
    secrets = (spec.api_key.reveal(),) if spec.api_key else ()
    try:
        page = await client.models.list()
        return [m.id for m in page.data]
    except Exception as exc:  # classified: every failure becomes a ProviderFailure
        raise classify(exc, provider=spec.name, secrets=secrets) from None
    finally:
        await client.close()
