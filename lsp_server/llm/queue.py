"""Queue instead of fail: explain/fix requests that no tier can serve now wait for one.

`RequestQueue.submit` takes a request the chain could not answer (after
`AllTiersFailed`) and completes it in the background once a tier is back: it retries
when a breaker's cooldown ends (or every `retry_interval` seconds while breakers are
closed but calls still fail), up to `max_wait`. Each job reports progress through
its `on_progress` callback (the LSP surface turns that into work-done progress) and
resolves `QueuedJob.result` with the `Completion`, exactly as a direct call would have
returned it; `cancel` stops it. Hovers are never queued: they are only worth having now. Only
failures that waiting can heal are worth queueing (`worth_queueing`): an open breaker,
a timeout, a 429/5xx, exhausted quota; never a rejected key or a bad request.

The queue asks for the current `LlmService` through a callable, so a settings change
(which builds a new service) does not strand queued work on closed clients.
"""

from __future__ import annotations

import asyncio
import enum
import itertools
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from lsp_server.llm.chain import AllTiersFailed
from lsp_server.llm.service import LlmService
from lsp_server.llm.types import ChatRequest, Completion, ErrorKind, ProviderFailure
from lsp_server.settings import LlmSettings
from lsp_server.telemetry import metrics

logger = logging.getLogger(__name__)

QUEUEABLE = frozenset({"explain", "fix", "summary"})
"""Task kinds that may wait for a provider; hovers never do."""


def worth_queueing(failure: ProviderFailure) -> bool:
    """Whether waiting may help: a breaker was open, or a failure was transient.

    Auth and request errors do not heal by waiting, so such requests are not queued.
    """
    if not isinstance(failure, AllTiersFailed):
        return failure.retryable or failure.kind is ErrorKind.QUOTA_EXCEEDED
    return any(
        o.skipped
        or (o.kind is not None and (o.kind.retryable or o.kind is ErrorKind.QUOTA_EXCEEDED))
        for o in failure.outcomes
    )


class JobState(enum.StrEnum):
    """Where a queued job is."""

    WAITING = "waiting"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"


@dataclass(eq=False)
class QueuedJob:
    """One queued request; `result` resolves to its Completion (or its final failure)."""

    id: str
    request: ChatRequest
    request_id: str
    created: float
    result: asyncio.Future[Completion]
    state: JobState = JobState.WAITING
    attempts: int = 0
    message: str = "queued: waiting for a provider"
    on_progress: Callable[[QueuedJob], None] | None = field(default=None, repr=False)
    task: asyncio.Task[None] | None = field(default=None, repr=False)

    def _report(self, state: JobState, message: str) -> None:
        self.state, self.message = state, message
        logger.info("queued job %s: %s: %s", self.id, state.value, message)
        if self.on_progress is not None:
            try:
                self.on_progress(self)
            except Exception:
                logger.exception("queued job %s: progress callback failed", self.id)


class RequestQueue:
    """Background completion of explain/fix requests once a tier can answer."""

    def __init__(
        self,
        service: Callable[[], LlmService],
        *,
        attempt_deadline: float = 120.0,
        retry_interval: float = 10.0,
        max_wait: float = 1800.0,
        max_jobs: int = 20,
    ) -> None:
        self._service = service
        self.attempt_deadline = attempt_deadline
        self.retry_interval = retry_interval
        self.max_wait = max_wait
        self.max_jobs = max_jobs
        self._jobs: dict[str, QueuedJob] = {}
        self._ids = itertools.count(1)

    @classmethod
    def from_settings(
        cls, service: Callable[[], LlmService], settings: LlmSettings, attempt_deadline: float
    ) -> RequestQueue:
        """A queue with `queueMaxWait`, `queueRetryInterval` and the `actionDeadline` given."""
        return cls(
            service,
            attempt_deadline=attempt_deadline,
            retry_interval=settings.queue_retry_interval,
            max_wait=settings.queue_max_wait,
        )

    @property
    def jobs(self) -> list[QueuedJob]:
        """Jobs not yet finished, oldest first."""
        return list(self._jobs.values())

    def submit(
        self,
        request: ChatRequest,
        *,
        request_id: str,
        reason: str = "",
        on_progress: Callable[[QueuedJob], None] | None = None,
    ) -> QueuedJob:
        """Queue `request`; raises ValueError for hovers or when the queue is full."""
        if request.feature not in QUEUEABLE:
            raise ValueError(f"{request.feature} requests are never queued")
        if len(self._jobs) >= self.max_jobs:
            raise ValueError(f"the queue is full ({self.max_jobs} requests wait already)")
        loop = asyncio.get_running_loop()
        job = QueuedJob(
            id=f"q{next(self._ids)}",
            request=request,
            request_id=request_id,
            created=time.monotonic(),
            result=loop.create_future(),
            on_progress=on_progress,
        )
        if reason:
            job.message = f"queued: {reason}"
        self._jobs[job.id] = job
        job.task = loop.create_task(self._run(job), name=f"llm-queue-{job.id}")
        return job

    def cancel(self, job_id: str) -> bool:
        """Cancel a waiting or running job; False if there is no such job."""
        job = self._jobs.get(job_id)
        if job is None or job.task is None:
            return False
        job.task.cancel()
        return True

    async def aclose(self) -> None:
        """Cancel every job and wait for them to stop."""
        tasks = [j.task for j in self._jobs.values() if j.task is not None]
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)

    def _wait_time(self, service: LlmService) -> float:
        """Until a tier may answer: now if a breaker is closed, else its cooldown's end."""
        if any(t.viable for t in service.tiers.values()):
            return self.retry_interval
        waits = [t.breaker.retry_in for t in service.tiers.values()]
        return max(0.5, min([*waits, self.retry_interval]) + 0.1)

    async def _run(self, job: QueuedJob) -> None:
        try:
            await self._serve(job)
        except asyncio.CancelledError:
            job._report(JobState.CANCELLED, "cancelled")
            job.result.cancel()
            raise
        finally:
            self._jobs.pop(job.id, None)
            waited = time.monotonic() - job.created
            metrics.record_queue_wait(waited, feature=job.request.feature, outcome=job.state.value)

    async def _serve(self, job: QueuedJob) -> None:
        give_up_at = job.created + self.max_wait
        last: ProviderFailure | None = None
        while True:
            service = self._service()
            wait = max(0.0, min(self._wait_time(service), give_up_at - time.monotonic()))
            if wait > 0:
                job._report(JobState.WAITING, f"waiting for a provider, next try in {wait:.0f} s")
                await asyncio.sleep(wait)
            if time.monotonic() >= give_up_at:
                break
            service = self._service()
            job.attempts += 1
            job._report(JobState.RUNNING, f"asking again (try {job.attempts})")
            try:
                completion = await service.complete(
                    job.request,
                    deadline=time.monotonic() + self.attempt_deadline,
                    request_id=job.request_id,
                )
            except ProviderFailure as failure:
                last = failure
                if not worth_queueing(failure):
                    break
                continue
            job._report(JobState.DONE, f"answered by {completion.tier} {completion.model}")
            job.result.set_result(completion)
            return
        final = last or ProviderFailure(
            ErrorKind.TIMEOUT, f"no provider came back within {self.max_wait:g} s"
        )
        job._report(JobState.FAILED, f"gave up: {final.message}")
        job.result.set_exception(final)
