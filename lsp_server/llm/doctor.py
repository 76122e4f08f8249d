"""Health check of every configured provider: `llm-lsp doctor` and `llmLsp.doctor`.

For each provider of the chain, concurrently: list its models (`GET /v1/models`), send a
tiny real streamed prompt (a few tokens, never a user's code) and time it (total latency
and time to first token), and report the breaker state when a running service is given.
A provider whose key variable is unset is reported, not called. The report is "ok" when
at least one tier can answer; `DoctorReport.exit_code` is non-zero otherwise.

The doctor's prompts are real calls and cost (very little): each is written to the usage
log with feature "doctor". Errors are classified and scrubbed like any provider failure;
nothing here prints (the CLI prints `format_report`).
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field

from lsp_server.llm.errors import classify
from lsp_server.llm.pricing import cost_usd
from lsp_server.llm.providers import TierSpec, list_models, sdk_client, tier_specs
from lsp_server.llm.service import LlmService
from lsp_server.llm.types import ErrorKind, ProviderFailure
from lsp_server.settings import LlmSettings
from lsp_server.telemetry.usage import UsageLog, UsageRecord

logger = logging.getLogger(__name__)

DOCTOR_PROMPT = "Reply with the single word OK."
DOCTOR_MAX_TOKENS = 5


@dataclass(frozen=True, slots=True)
class ProviderCheck:
    """What the doctor found out about one provider."""

    name: str
    role: str
    url: str
    model: str = ""
    ok: bool = False
    latency_ms: float | None = None
    ttft_ms: float | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    reply: str = ""
    models: tuple[str, ...] = ()
    models_error: str | None = None
    error: str | None = None
    breaker: str = "n/a"


@dataclass(frozen=True, slots=True)
class DoctorReport:
    """Every provider's check; `ok` when at least one tier can answer."""

    checks: tuple[ProviderCheck, ...] = field(default_factory=tuple)

    @property
    def ok(self) -> bool:
        """Whether any tier answered the doctor's prompt."""
        return any(c.ok for c in self.checks)

    @property
    def exit_code(self) -> int:
        """0 when some tier can answer, 1 otherwise."""
        return 0 if self.ok else 1


def _failure_text(failure: ProviderFailure) -> str:
    return f"{failure.kind.value}: {failure.message}"


async def _models(spec: TierSpec) -> tuple[tuple[str, ...], str | None]:
    try:
        return tuple(await list_models(spec, spec.timeout)), None
    except ProviderFailure as failure:
        return (), _failure_text(failure)


async def _prompt(
    spec: TierSpec, model: str, usage_log: UsageLog | None
) -> tuple[float, float | None, int, int, str]:
    """Stream the doctor's prompt: (latency ms, ttft ms, in tokens, out tokens, reply)."""
    client = sdk_client(spec, spec.timeout)
    secrets = (spec.api_key.reveal(),) if spec.api_key else ()
    started = time.perf_counter()
    ttft: float | None = None
    parts: list[str] = []
    tokens_in = tokens_out = 0
    outcome, error_class, status = "error", None, None
    try:
        async with asyncio.timeout(spec.timeout):
            stream = await client.chat.completions.create(
                model=model,
                messages=[{"role": "user", "content": DOCTOR_PROMPT}],
                max_tokens=DOCTOR_MAX_TOKENS,
                temperature=0.0,
                stream=True,
                stream_options={"include_usage": True},
            )
            async with stream:
                async for chunk in stream:
                    if ttft is None:
                        ttft = (time.perf_counter() - started) * 1000
                    if chunk.usage is not None:
                        tokens_in = chunk.usage.prompt_tokens or 0
                        tokens_out = chunk.usage.completion_tokens or 0
                    for choice in chunk.choices or ():
                        parts.append(choice.delta.content or "")
        outcome = "ok"
    except asyncio.CancelledError:
        outcome = "cancelled"
        raise
    except TimeoutError:
        error_class = ErrorKind.TIMEOUT.value
        raise ProviderFailure(
            ErrorKind.TIMEOUT, f"no complete answer within {spec.timeout:g} s"
        ) from None
    except Exception as exc:  # classified: every failure becomes a ProviderFailure
        failure = classify(exc, provider=spec.name, model=model, secrets=secrets)
        error_class, status = failure.kind.value, failure.status
        raise failure from None
    finally:
        latency = (time.perf_counter() - started) * 1000
        await client.close()
        cost = 0.0 if spec.role == "local" else cost_usd(model, tokens_in, tokens_out)
        if usage_log is not None:
            usage_log.write(
                UsageRecord(
                    request_id=f"doctor-{uuid.uuid4().hex[:12]}",
                    feature="doctor",
                    provider=spec.name,
                    model=model,
                    outcome=outcome,
                    latency_ms=round(latency, 1),
                    prompt_tokens=tokens_in,
                    completion_tokens=tokens_out,
                    cost_usd=cost,
                    error_class=error_class,
                    status=status,
                    tier=spec.role,
                )
            )
    return latency, ttft, tokens_in, tokens_out, "".join(parts).strip()


async def check_provider(
    spec: TierSpec, *, breaker: str = "n/a", usage_log: UsageLog | None = None
) -> ProviderCheck:
    """Models, one tiny streamed prompt, and the breaker state of one provider."""
    base = ProviderCheck(spec.name, spec.role, spec.url, spec.default_model, breaker=breaker)
    if spec.unavailable:
        return dataclasses.replace(base, error=f"not configured: {spec.unavailable}")
    models, models_error = await _models(spec)
    model = spec.default_model or (models[0] if models else "")
    base = dataclasses.replace(base, model=model, models=models, models_error=models_error)
    if not model:
        why = f"failed: {models_error}" if models_error else "listed none"
        return dataclasses.replace(base, error=f"no model configured and /v1/models {why}")
    try:
        latency, ttft, tokens_in, tokens_out, reply = await _prompt(spec, model, usage_log)
    except ProviderFailure as failure:
        return dataclasses.replace(base, error=_failure_text(failure))
    return dataclasses.replace(
        base,
        ok=True,
        latency_ms=latency,
        ttft_ms=ttft,
        prompt_tokens=tokens_in,
        completion_tokens=tokens_out,
        reply=reply,
    )


async def run_doctor(
    settings: LlmSettings,
    *,
    service: LlmService | None = None,
    usage_log: UsageLog | None = None,
) -> DoctorReport:
    """Check every configured provider concurrently.

    With `service` (the editor's running one) the report shows its live breaker states.
    """
    specs = tier_specs(settings)
    states = service.breaker_states() if service is not None else {}
    checks = await asyncio.gather(
        *(
            check_provider(
                spec,
                breaker=states.get(spec.name, "closed" if service is None else "n/a"),
                usage_log=usage_log,
            )
            for spec in specs
        )
    )
    report = DoctorReport(tuple(checks))
    logger.info("doctor: %d of %d providers answered", sum(c.ok for c in checks), len(checks))
    return report


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f} ms"


def _models_line(models: Sequence[str], error: str | None) -> str:
    if error is not None:
        return f"models: unavailable ({error})"
    shown = ", ".join(models[:8]) + (f", ... ({len(models)} in all)" if len(models) > 8 else "")
    return f"models: {shown or 'none listed'}"


def format_report(report: DoctorReport) -> str:
    """The report as plain text, one block per provider and a verdict line."""
    lines = ["llm-lsp doctor"]
    if not report.checks:
        lines.append(
            "  no provider configured: set OPENAI_API_KEY, LLM_LOCAL_BASE_URL "
            "or the llmLsp.providers setting"
        )
    for c in report.checks:
        lines.append(f"  {c.role:<8} {c.name}  {c.url}  {c.model or '(model unknown)'}")
        if c.ok:
            lines.append(
                f"    ok: {_ms(c.latency_ms)} total, first token {_ms(c.ttft_ms)}, "
                f"{c.prompt_tokens} in / {c.completion_tokens} out tokens, "
                f"reply {c.reply[:40]!r}"
            )
        else:
            lines.append(f"    FAILED: {c.error}")
        if c.models or c.models_error:
            lines.append(f"    {_models_line(c.models, c.models_error)}")
        lines.append(f"    breaker: {c.breaker}")
    answering = sum(c.ok for c in report.checks)
    verdict = "ok" if report.ok else "NO TIER CAN ANSWER"
    lines.append(f"{verdict}: {answering} of {len(report.checks)} providers answered")
    return "\n".join(lines)
