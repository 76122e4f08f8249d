"""The pipeline behind every feature, independent of LSP: hover today.

The engine takes plain values (a document snapshot and a position), gathers
static facts with jedi, assembles context with the chunker under a token
budget, asks the model through `LlmService`, and returns markdown with a
footer that says who answered, what it cost and how long it took. It never
raises to its caller for provider trouble: failures become a one-line notice
under the static facts. `asyncio.CancelledError` always propagates.
"""

from __future__ import annotations

import asyncio
import importlib
import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from lsp_server.actions import Actions
from lsp_server.agent import JediNavigator, ToolRegistry, Workspace, build_tools
from lsp_server.ask import Asker
from lsp_server.context.assembler import Assembler, ContextPack, ContextTask, TaskKind
from lsp_server.context.jedi_process import JediCrashed
from lsp_server.context.memory import SummaryCache
from lsp_server.context.symbols import Definition, SymbolIndex, SymbolInfo
from lsp_server.context.tokens import TokenCounter, counter_for_model
from lsp_server.llm.queue import RequestQueue
from lsp_server.llm.service import LlmService
from lsp_server.llm.types import ChatRequest, Completion, ProviderFailure
from lsp_server.prompts import hover_messages
from lsp_server.render import (
    answer_notes,
    footer,
    offline_notice,
    static_markdown,
    unavailable_notice,
)
from lsp_server.settings import Settings
from lsp_server.telemetry.usage import UsageLog

logger = logging.getLogger(__name__)

#: How long static analysis may take before a hover gives up on it.
STATIC_DEADLINE = 5.0


class AnswerSource(StrEnum):
    """Where the AI part of an answer came from."""

    PROVIDER = "provider"
    CACHE = "cache"
    FALLBACK = "fallback"
    OFFLINE = "offline"


@dataclass(frozen=True, slots=True)
class Document:
    """A snapshot of one file as the editor has it."""

    path: Path | None
    text: str
    version: int | None = None


@dataclass(frozen=True, slots=True)
class HoverAnswer:
    """What a hover shows, and what produced it."""

    markdown: str
    source: AnswerSource
    symbol: SymbolInfo
    completion: Completion | None = None
    pack: ContextPack | None = None


ReadBuffer = Callable[[Path], str | None]


class Engine:
    """Answers features for one workspace root."""

    def __init__(
        self, settings: Settings, root: Path | None, read_buffer: ReadBuffer | None = None
    ) -> None:
        self.root = root
        self.read_buffer: ReadBuffer = read_buffer or (lambda path: None)
        self.symbols = SymbolIndex(root, read_text=self.read_buffer)
        self.assembler = Assembler(self.symbols, self.display_path)
        self.actions = Actions(self)
        self._tools: ToolRegistry | None = None
        self._queue: RequestQueue | None = None
        self._retired: dict[LlmService, asyncio.Task[None]] = {}
        self._settings = settings
        self.usage_log = UsageLog(settings.usage_log)
        self.llm = LlmService(settings, self.usage_log)
        self._counters: dict[str, TokenCounter] = {}
        self._summaries: SummaryCache | None = None
        self._asker: Asker | None = None

    def document_changed(self, path: Path | None) -> None:
        """A buffer or file changed (also opened, closed, created, deleted): forget what
        was derived from it."""
        self.symbols.invalidate(path)
        self.assembler.document_changed(path)

    def watch_files(self) -> None:
        """The client reports changes to workspace files: no need to poll mtimes."""
        self.assembler.words.watched = True

    def in_workspace(self, path: Path) -> bool:
        """Whether `path` lies inside the workspace root."""
        if self.root is None:
            return False
        try:
            path.resolve().relative_to(self.root.resolve())
        except ValueError:
            return False
        return True

    def agent_tools(self) -> ToolRegistry:
        """The agent's workspace tools, built once per engine."""
        if self._tools is None:
            root = self.root or Path.cwd()
            # The agent's navigator runs in the index's jedi worker (one child process).
            self._tools = build_tools(
                Workspace(root, self.read_buffer),
                JediNavigator(root, self.symbols.worker),
                run_tests_enabled=self._settings.run_tests,
            )
        return self._tools

    def summaries(self) -> SummaryCache:
        """Conversation summaries, on disk under the cache dir (shared by editor windows)."""
        if self._summaries is None:
            self._summaries = SummaryCache(self._settings.cache_dir / "summaries")
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
            self._queue = RequestQueue.from_settings(lambda: self.llm, self._settings)
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
        old = self.llm
        if self._tools is not None and settings.run_tests != self._settings.run_tests:
            self._tools.close()
            self._tools = None
        self._settings = settings
        self.usage_log = UsageLog(settings.usage_log)
        self.llm = LlmService(settings, self.usage_log)
        grace = max(settings.hover_deadline, settings.action_deadline)
        self._retired[old] = asyncio.get_running_loop().create_task(self._close_later(old, grace))

    async def _close_later(self, service: LlmService, delay: float) -> None:
        """Close a replaced service once calls that started on it have had their time."""
        await asyncio.sleep(delay)
        self._retired.pop(service, None)
        await service.aclose()

    async def warm_up(self) -> None:
        """Load the tokenizer and the provider SDK, then index and chunk the workspace
        (background; cancellable). The SDK is imported lazily (about 2 s), off the loop here
        so the first model call does not import it on the event loop."""
        await self.counter(self._settings.model)
        if self.llm.available:
            await asyncio.to_thread(importlib.import_module, "openai")
        await self.assembler.warm_workspace()

    async def counter(self, model: str) -> TokenCounter:
        """The token counter for `model`, loaded once."""
        counter = self._counters.get(model)
        if counter is None:
            counter = await asyncio.to_thread(
                counter_for_model, model, self._settings.cache_dir / "tiktoken"
            )
            self._counters[model] = counter
        return counter

    def display_path(self, path: Path | None) -> str:
        """A workspace-relative path for labels and prompts."""
        if path is None:
            return "<unsaved>"
        if self.root is not None:
            try:
                return path.resolve().relative_to(self.root.resolve()).as_posix()
            except ValueError:
                pass
        return path.as_posix()

    async def hover(self, doc: Document, line: int, column: int) -> HoverAnswer | None:
        """Hover at 0-based `line`/`column` (columns in code points); None if nothing is there."""
        try:
            symbol = await self.symbols.symbol_at(
                doc.text, doc.path, line + 1, column, deadline=STATIC_DEADLINE
            )
        except JediCrashed as exc:  # restarted on the next request
            logger.warning("static analysis failed at %s:%d: %s", doc.path, line + 1, exc)
            return None
        except TimeoutError:
            logger.warning("static analysis timed out at %s:%d", doc.path, line + 1)
            return None
        if symbol is None:
            return None
        static = static_markdown(symbol, self.display_path)
        settings = self._settings
        if not settings.ai_hover:
            return HoverAnswer(static, AnswerSource.OFFLINE, symbol)
        if not self.llm.available:
            return HoverAnswer(
                static + "\n\n---\n" + offline_notice(), AnswerSource.OFFLINE, symbol
            )
        deadline = time.monotonic() + settings.hover_deadline
        request_id = uuid.uuid4().hex[:16]
        pack = await self._hover_pack(doc, line + 1, symbol, settings)
        where = f"{self.display_path(doc.path)}:{line + 1}"
        request = ChatRequest(
            messages=hover_messages(symbol, pack, where),
            feature="hover",
            max_tokens=settings.hover_max_tokens,
            metadata={"context_tokens": str(pack.tokens)},
        )
        try:
            # In this task, not wait_for's own (3.11): a cancel reaches the provider call
            # directly, and one racing the answer is not lost.
            async with asyncio.timeout(max(0.0, deadline - time.monotonic())):
                completion = await self.llm.complete(
                    request, deadline=deadline, request_id=request_id
                )
        except ProviderFailure as failure:
            return self._static_fallback(static, symbol, pack, failure.kind.value, failure.message)
        except TimeoutError:
            message = f"no answer within {settings.hover_deadline:g} s"
            return self._static_fallback(static, symbol, pack, "timeout", message)
        notes = answer_notes(completion.notice, self.llm.breaker_states())
        parts = [static, "---", completion.text.strip(), *notes]
        parts.append(footer(completion, completion.tier, pack.tokens))
        markdown = "\n\n".join(parts)
        return HoverAnswer(markdown, AnswerSource.PROVIDER, symbol, completion, pack)

    def _static_fallback(
        self, static: str, symbol: SymbolInfo, pack: ContextPack, kind: str, message: str
    ) -> HoverAnswer:
        notice = unavailable_notice(self._settings.model, kind, message)
        notes = answer_notes(None, self.llm.breaker_states())
        markdown = "\n\n".join([static, "---", notice, *notes])
        return HoverAnswer(markdown, AnswerSource.FALLBACK, symbol, pack=pack)

    async def _hover_pack(
        self, doc: Document, line: int, symbol: SymbolInfo, settings: Settings
    ) -> ContextPack:
        """The hovered line's chunk, the symbol's definition first, then what the chunk uses.

        Only the import map places the other names (no jedi inference, no callers):
        a hover must stay fast; Explain and Fix get the full search.
        """
        counter = await self.counter(settings.model)
        focus: Definition | None = None
        if symbol.definition_path is not None and symbol.definition_line is not None:
            focus = Definition(
                symbol.name,
                symbol.full_name,
                symbol.kind,
                symbol.definition_path,
                symbol.definition_line,
                0,
                symbol.in_workspace,
            )
        task = ContextTask(
            TaskKind.HOVER, doc.text, doc.path, line, line, focus=focus, callers=False, infer=False
        )
        return await self.assembler.assemble(
            task, counter, settings.hover_context_tokens, deadline=0.0
        )

    async def aclose(self) -> None:
        """Release clients and threads."""
        if self._queue is not None:
            await self._queue.aclose()
        for service, task in list(self._retired.items()):
            task.cancel()
            await service.aclose()
        self._retired.clear()
        await self.llm.aclose()
        self.assembler.close()
        self.symbols.close()
        if self._summaries is not None:
            self._summaries.close()
        if self._asker is not None:
            self._asker.close()
        if self._tools is not None:
            self._tools.close()
