"""What the pipelines need from the process around them: small protocols, not the engine.

Each pipeline (hover, explain/fix, ask, conversation memory) takes a runtime
that offers only what it uses. `Engine` (`engine.py`) implements all of them
and wires the parts together; a test can hand a pipeline a tiny runtime of its
own (no jedi, no language server). Members are read at each use, so a runtime
may swap its settings and `LlmService` between requests.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from lsp_server.agent import ToolRegistry
from lsp_server.cache import AnswerCache
from lsp_server.context.jedi.symbols import SymbolIndex
from lsp_server.context.pack.assembler import Assembler
from lsp_server.context.pack.pieces import ContextPack
from lsp_server.context.retrieval.embeddings import Hit
from lsp_server.context.tokens import TokenCounter
from lsp_server.llm.queue import RequestQueue
from lsp_server.llm.service import LlmService
from lsp_server.pipeline.memory import SummaryCache
from lsp_server.settings import Settings
from lsp_server.telemetry.usage import UsageLog
from lsp_server.workspace import WorkspaceBoundary

#: One step of a long run, for the user ("Gathering context", "Embedding 3/9 chunks…").
Progress = Callable[[str], None]


@dataclass(frozen=True, slots=True)
class Document:
    """A snapshot of one file as the editor has it."""

    path: Path | None
    text: str
    version: int | None = None


class Runtime(Protocol):
    """What every pipeline uses: the settings, the models, token counting, labels."""

    @property
    def settings(self) -> Settings:
        """The settings in force."""
        ...

    @property
    def llm(self) -> LlmService:
        """The one door to the models (replaced when the settings change)."""
        ...

    @property
    def answers(self) -> AnswerCache:
        """The answer cache (replaced when its settings change)."""
        ...

    @property
    def usage_log(self) -> UsageLog:
        """Where every request's provider attempts and cache answers are recorded."""
        ...

    async def counter(self, model: str) -> TokenCounter:
        """The token counter for ``model``."""
        ...

    def display_path(self, path: Path | None) -> str:
        """A workspace-relative path for labels and prompts."""
        ...

    def may_send(self, path: Path | None) -> bool:
        """Whether the workspace boundary lets this document's text go to a model."""
        ...


class MemoryRuntime(Runtime, Protocol):
    """A runtime whose multi-turn runs keep their summaries (conversation memory)."""

    def summaries(self) -> SummaryCache:
        """Conversation summaries, shared by every run."""
        ...


class HoverRuntime(Runtime, Protocol):
    """What a hover needs: jedi's static facts and the context assembler."""

    @property
    def symbols(self) -> SymbolIndex:
        """Static facts about a position (jedi in a child process)."""
        ...

    @property
    def assembler(self) -> Assembler:
        """Context packs under a token budget."""
        ...

    @property
    def workspace(self) -> WorkspaceBoundary:
        """Which files may be read (a kept hover checks the files its pack quotes)."""
        ...


class ActionRuntime(MemoryRuntime, Protocol):
    """What Explain and Fix need: context, the agent's tools and the request queue."""

    @property
    def assembler(self) -> Assembler:
        """Context packs under a token budget."""
        ...

    def in_workspace(self, path: Path) -> bool:
        """Whether ``path`` lies inside the workspace root."""
        ...

    def agent_tools(self) -> ToolRegistry:
        """The agent's workspace tools."""
        ...

    def request_queue(self) -> RequestQueue:
        """Where requests wait when no tier can answer."""
        ...


class HitPacker(Protocol):
    """Packs retrieved chunks under a token budget (`Assembler` is one)."""

    async def assemble_hits(
        self, hits: list[Hit], counter: TokenCounter, budget: int
    ) -> ContextPack: ...


class AskRuntime(MemoryRuntime, Protocol):
    """What workspace questions need: the boundary, its root and a packer for retrieved chunks."""

    @property
    def root(self) -> Path | None:
        """The workspace root (None: no folder open)."""
        ...

    @property
    def workspace(self) -> WorkspaceBoundary:
        """Which files belong to the workspace and may be read or sent."""
        ...

    @property
    def assembler(self) -> HitPacker:
        """Packs the best chunks for the question."""
        ...
