"""The one door to the models: builds provider clients from settings and calls them.

Today it calls the primary provider once within the request's deadline; the
provider chain (cheaper model, local endpoint), retries and circuit breakers
slot in here without the engine changing. `Answer.tier` and `Answer.notice`
tell the user which tier answered and why.
"""

from __future__ import annotations

import logging
import time

from lsp_server.llm.client import ProviderClient, ProviderConfig
from lsp_server.llm.types import ChatRequest, Completion, ErrorKind, ProviderFailure
from lsp_server.settings import Settings
from lsp_server.telemetry.usage import UsageLog

logger = logging.getLogger(__name__)


class LlmService:
    """Provider clients for the current settings."""

    def __init__(self, settings: Settings, usage_log: UsageLog) -> None:
        self.settings = settings
        self.usage_log = usage_log
        self.primary: ProviderClient | None = None
        if settings.api_key:
            self.primary = ProviderClient(
                ProviderConfig(
                    name="openai" if settings.base_url is None else "primary",
                    base_url=settings.base_url,
                    api_key=settings.api_key,
                    timeout=settings.timeout,
                    tier="primary",
                ),
                usage_log,
            )

    @property
    def available(self) -> bool:
        """Whether any provider is configured."""
        return self.primary is not None

    async def complete(
        self, request: ChatRequest, *, deadline: float, request_id: str
    ) -> Completion:
        """Ask the primary model; raise ProviderFailure if it cannot answer by `deadline`.

        `deadline` is an absolute `time.monotonic()` value.
        """
        if self.primary is None:
            raise ProviderFailure(ErrorKind.AUTH_ERROR, "no API key configured")
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise ProviderFailure(ErrorKind.TIMEOUT, "deadline passed before the call")
        return await self.primary.complete(
            request, self.settings.model, request_id=request_id, attempt_timeout=remaining
        )

    async def aclose(self) -> None:
        """Close every client's connections."""
        if self.primary is not None:
            await self.primary.aclose()
