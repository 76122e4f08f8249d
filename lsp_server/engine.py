"""The wiring: one `Engine` per workspace root builds the parts and lends them out.

The engine owns what lives as long as the workspace (the jedi-backed symbol
index, the context assembler, the agent's tools, the provider service and its
usage log, token counters, conversation summaries, the request queue) and
implements the small `Runtime` protocols (`pipeline/runtime.py`) the pipelines
ask for: `hover` (`pipeline/hover.py`), `actions` (`pipeline/actions.py`) and
`asker()` (`pipeline/ask.py`). It holds no feature logic of its own.
"""

from __future__ import annotations

import asyncio
import importlib
import json
import logging
from collections.abc import Callable
from pathlib import Path

from lsp_server.activity import Activity
from lsp_server.agent import JediNavigator, ToolRegistry, Workspace, build_tools
from lsp_server.cache import AnswerCache
from lsp_server.context.jedi.symbols import SymbolIndex
from lsp_server.context.pack.assembler import Assembler
from lsp_server.context.tokens import TokenCounter, counter_for_model
from lsp_server.limits.alerts import LimitEvent, Listener
from lsp_server.limits.build import build_limiter
from lsp_server.limits.limiter import Limiter
from lsp_server.llm.queue import RequestQueue
from lsp_server.llm.service import LlmService
from lsp_server.llm.types import ChatRequest
from lsp_server.pipeline.actions import Actions
from lsp_server.pipeline.ask import Asker
from lsp_server.pipeline.hover import HoverPipeline
from lsp_server.pipeline.hover_answer import HoverAnswer
from lsp_server.pipeline.memory import SummaryCache
from lsp_server.pipeline.runtime import Document
from lsp_server.settings import Settings
from lsp_server.settings_values import Secret
from lsp_server.telemetry import metrics
from lsp_server.telemetry.export import active_config
from lsp_server.telemetry.health import Health, SpendTally
from lsp_server.telemetry.signals import PendingFixes
from lsp_server.telemetry.usage import UsageLog
from lsp_server.workspace import BufferReader, WorkspaceBoundary

__all__ = ["Document", "Engine", "HoverAnswer"]

logger = logging.getLogger(__name__)

#: Seconds the workspace index waits for the first hover to answer before it starts.
INDEX_GRACE = 3.0


def usage_log(settings: Settings) -> UsageLog:
    """The usage log the settings name, rotated at their size."""
    storage = settings.storage
    return UsageLog(storage.usage_log, storage.usage_log_max_mb * 1024 * 1024)


def open_answers(settings: Settings) -> AnswerCache:
    """The answer cache the settings describe: diskcache under the cache dir, or Redis."""
    return AnswerCache.open(
        settings.storage.cache_dir / "answer-cache",
        ttl=settings.cache.ttl,
        size_bytes=settings.cache.size_mb * 1024 * 1024,
        redis_url=_reveal(settings.storage.redis_url),
        enabled=settings.cache.enabled,
    )


def _reveal(secret: Secret | None) -> str | None:
    return secret.reveal() if secret is not None else None


def _cache_settings(settings: Settings) -> tuple[object, ...]:
    return (settings.cache, settings.storage.cache_dir, _reveal(settings.storage.redis_url))


class Engine:
    """Answers features for one workspace root."""

    def __init__(
        self,
        settings: Settings,
        root: Path | None,
        read_buffer: BufferReader | None = None,
        on_limit_event: Listener | None = None,
    ) -> None:
        """``root``: the workspace folder; None is single-file mode (`WorkspaceBoundary`).

        ``on_limit_event`` hears budget alerts and backend notices (`limit_listeners`
        takes more, e.g. a metrics exporter)."""
        #: The one answer to which files may be read and sent; handed to every part.
        self.workspace = WorkspaceBoundary(root, read_buffer)
        self.root = self.workspace.root
        self.symbols = SymbolIndex(self.workspace, cache_dir=settings.storage.cache_dir / "jedi")
        self.assembler = Assembler(self.symbols)
        self.actions = Actions(self)
        self._hover = HoverPipeline(self)
        self._tools: ToolRegistry | None = None
        self._queue: RequestQueue | None = None
        self._retired: dict[LlmService, asyncio.Task[None]] = {}
        self._settings = settings
        self.usage_log = usage_log(settings)
        #: Who hears budget alerts and limits notices (`LimitEvent`).
        self.limit_listeners: list[Listener] = [on_limit_event] if on_limit_event else []
        self.llm = LlmService(settings.llm, self.usage_log, limiter=self._limiter(settings))
        self._counters: dict[str, asyncio.Future[TokenCounter]] = {}
        #: Fixes handed to the editor, until a change shows them applied or discarded.
        self.pending_fixes = PendingFixes()
        #: requests in progress: the workspace warm-up steps aside for them
        self.activity = Activity()
        #: set once the first hover has answered: the workspace is indexed after it
        self._first_hover = asyncio.Event()
        self.answers = open_answers(settings)
        self._summaries: SummaryCache | None = None
        self._asker: Asker | None = None
        self._tally: SpendTally | None = None
        #: USD left in today's budget, None when no budget is set; the budget part sets it.
        self.budget_left: Callable[[], float | None] = lambda: None

    def document_changed(self, path: Path | None) -> None:
        """A buffer or file changed (also opened, closed, created, deleted): forget what
        was derived from it."""
        self.workspace.document_changed(path)
        self.symbols.invalidate(path)
        self.assembler.document_changed(path)
        self._hover.documents_changed(path)

    def document_edited(self, path: Path | None) -> None:
        """The editor changed (or closed) a document: besides `document_changed`, stop the
        hovers' background calls about its earlier text."""
        self.document_changed(path)
        self._hover.document_edited(path)

    def watch_files(self) -> None:
        """The client reports changes to workspace files: no need to poll mtimes."""
        self.assembler.words.watched = True

    def may_send(self, path: Path | None) -> bool:
        """Whether the workspace boundary lets this document's text go to a model."""
        return self.workspace.may_send(path)

    def in_workspace(self, path: Path) -> bool:
        """Whether `path` lies inside the workspace boundary."""
        return self.workspace.contains(path)

    def agent_tools(self) -> ToolRegistry:
        """The agent's workspace tools, built once per engine."""
        if self._tools is None:
            workspace = Workspace(self.workspace)
            # The agent's navigator runs in the index's jedi worker (one child process).
            self._tools = build_tools(
                workspace,
                JediNavigator(workspace.root, self.symbols.worker),
                run_tests_enabled=self._settings.agent.run_tests,
            )
        return self._tools

    def summaries(self) -> SummaryCache:
        """Conversation summaries, on disk under the cache dir (shared by editor windows)."""
        if self._summaries is None:
            self._summaries = SummaryCache(self._settings.storage.cache_dir / "summaries")
        return self._summaries

    def asker(self) -> Asker:
        """Questions about the workspace (`llmLsp.ask`, `llm-lsp ask`), built on first use."""
        if self._asker is None:
            self._asker = Asker(self)
        return self._asker

    async def file_saved(self, path: Path) -> None:
        """A file was saved: keep the question index current (once a question built it)."""
        if self._asker is not None:
            await self._asker.file_saved(path)

    def request_queue(self) -> RequestQueue:
        """Where explain/fix requests wait when no tier can answer (built on first use)."""
        if self._queue is None:
            self._queue = RequestQueue.from_settings(
                lambda: self.llm, self._settings.llm, self._settings.agent.deadline
            )
        return self._queue

    @property
    def settings(self) -> Settings:
        """The settings in force."""
        return self._settings

    async def update_settings(self, settings: Settings) -> None:
        """Swap settings; provider clients are rebuilt, in-flight calls finish on the old ones.

        Unchanged settings keep everything (breakers included) as it is.
        """
        if settings == self._settings:
            return
        old, old_settings = self.llm, self._settings
        if self._tools is not None and settings.agent.run_tests != self._settings.agent.run_tests:
            self._tools.close()
            self._tools = None
        self._settings = settings
        self.usage_log = usage_log(settings)
        self.llm = LlmService(settings.llm, self.usage_log, limiter=self._limiter(settings))
        if _cache_settings(settings) != _cache_settings(old_settings):
            old_answers, self.answers = self.answers, open_answers(settings)
            await old_answers.aclose()
        grace = max(settings.hover.deadline, settings.agent.deadline)
        self._retired[old] = asyncio.get_running_loop().create_task(self._close_later(old, grace))

    def _limiter(self, settings: Settings) -> Limiter:
        return build_limiter(
            settings,
            self.root,
            self.usage_log,
            count_prompt=self._count_prompt,
            notify=self._limit_event,
        )

    async def _count_prompt(self, request: ChatRequest) -> int:
        """Prompt tokens of ``request`` as tiktoken counts them (tool specs included)."""
        counter = await self.counter(self._settings.llm.model)
        tokens = counter.count_messages(request.messages)
        if request.tools:
            tokens += counter.count(json.dumps(request.tools))
        return tokens

    def _limit_event(self, event: LimitEvent) -> None:
        if event.kind == "alert":
            metrics.record_budget_alert(
                scope=event.scope, period=event.period, unit=event.unit, threshold=event.threshold
            )
        for listener in list(self.limit_listeners):
            listener(event)

    async def _close_later(self, service: LlmService, delay: float) -> None:
        """Close a replaced service once calls that started on it have had their time."""
        await asyncio.sleep(delay)
        self._retired.pop(service, None)
        await service.aclose()

    async def warm_up(self) -> None:
        """Load the tokenizer and the provider SDK and make its clients, then index and
        chunk the workspace (background; cancellable). The SDK is imported lazily (about
        2 s), off the loop here so the first model call does not import it on the event
        loop. Indexing (seconds of
        chunking on worker threads, competing for the GIL) starts once the first hover has
        answered, or after `INDEX_GRACE` seconds without one, and steps aside, file by file,
        while a hover is being answered (`Activity`)."""
        await self.counter(self._settings.llm.model)
        if self.llm.available:
            await asyncio.to_thread(importlib.import_module, "openai")
            await asyncio.to_thread(self.llm.prepare)
        try:
            async with asyncio.timeout(INDEX_GRACE):
                await self._first_hover.wait()
        except TimeoutError:
            pass
        await self.assembler.warm_workspace(self.activity.idle)

    async def counter(self, model: str) -> TokenCounter:
        """The token counter for `model`, loaded once: a hover arriving while the warm-up
        loads it waits for that load instead of starting a second one."""
        loading = self._counters.get(model)
        if loading is None or (loading.done() and loading.exception() is not None):
            cache = self._settings.storage.cache_dir / "tiktoken"
            loading = asyncio.ensure_future(asyncio.to_thread(counter_for_model, model, cache))
            self._counters[model] = loading
        # shielded: one caller's cancellation does not cancel the load the others wait on
        return await asyncio.shield(loading)

    def display_path(self, path: Path | None) -> str:
        """A workspace-relative path for labels and prompts."""
        return self.workspace.display_path(path)

    def health(self) -> Health:
        """Today's spend (all windows, from the usage log), budget left, breakers, queue."""
        path = self._settings.storage.usage_log
        if self._tally is None or self._tally.path != path:
            self._tally = SpendTally(path)
        spend, requests = self._tally.today()
        queued = len(self._queue.jobs) if self._queue is not None else 0
        breakers = self.llm.breaker_states()
        exporter = active_config().exporter
        return Health(spend, requests, self.budget_left(), breakers, queued, exporter)

    async def hover(
        self,
        doc: Document,
        line: int,
        column: int,
        *,
        regenerate: bool = False,
        on_ready: Callable[[HoverAnswer | None], None] | None = None,
        in_place: bool = False,
    ) -> HoverAnswer | None:
        """Hover at 0-based `line`/`column` (columns in code points); None if nothing is there.

        ``regenerate``: bypass the answer cache and refresh it (the Regenerate action).
        ``on_ready``: hears the whole hover when the model answers after ``hoverWait``
        (with ``in_place``: the client puts it into the open hover itself, so there is no
        wait; None when a placeholder's name turned out to be nothing)."""
        try:
            with self.activity.request():
                return await self._hover.hover(
                    doc, line, column, regenerate=regenerate, on_ready=on_ready, in_place=in_place
                )
        finally:
            self._first_hover.set()

    async def aclose(self) -> None:
        """Release clients and threads."""
        if self._queue is not None:
            await self._queue.aclose()
        for service, task in list(self._retired.items()):
            task.cancel()
            await service.aclose()
        self._retired.clear()
        await self._hover.aclose()
        await self.llm.aclose()
        await self.answers.aclose()
        self.assembler.close()
        self.symbols.close()
        if self._summaries is not None:
            self._summaries.close()
        if self._asker is not None:
            self._asker.close()
        if self._tools is not None:
            self._tools.close()
