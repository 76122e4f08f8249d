"""Questions about the workspace ("where do we handle retries?"), independent of LSP.

`Asker.ask` answers a question that is not about the code under the cursor:

1. the workspace's retrieval index (`context.retrieval.hybrid.Retriever`) is brought up
   to date, reporting "Indexing N files…" (chunks are re-read only for files
   that changed since the last question, in this or an earlier session);
2. the question is ranked against every chunk by keywords (BM25) and, when an
   embedding model is configured and a provider can embed, by embedding
   similarity, the two fused; the workspace is embedded only here, when the
   user asks, and only chunks without a stored vector;
3. the best files' chunks are packed within ``askContextTokens``
   (`Assembler.assemble_hits`), each labelled ``path:start-end``;
4. the model answers the question and pack; a follow-up passes the returned
   conversation id and sees the earlier exchanges through `ConversationMemory`
   (summarised by the cheap tier when the window would overflow).

With no embeddings (off, offline, provider failing, breaker open) the ranking is
by keywords alone and the answer says so. With no provider at all, or when none
answers, the answer is the ranked list of places to look. Bad input raises
`AskError` with a message for the user. Conversations live in memory (the most
recent `MAX_CONVERSATIONS`).
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lsp_server.context.retrieval.embeddings import ChunkRef, Embed
from lsp_server.context.retrieval.hybrid import Retriever, select
from lsp_server.llm.types import ChatRequest, Completion, ProviderFailure
from lsp_server.pipeline.accounting import summarize
from lsp_server.pipeline.ask_cache import lookup_question
from lsp_server.pipeline.ask_sources import Source, answer_title, listing, sources_of
from lsp_server.pipeline.cached import hit_footer, record_cache_use
from lsp_server.pipeline.conversation import run_memory
from lsp_server.pipeline.memory import Message
from lsp_server.pipeline.runtime import AskRuntime, Progress
from lsp_server.prompts import ASK_PROMPT_VERSION, ask_message, ask_system
from lsp_server.render import answer_notes, footer
from lsp_server.safe_markdown import sanitize

logger = logging.getLogger(__name__)

MAX_QUESTION_CHARS = 4000
MAX_CONVERSATIONS = 64
ANSWER_MAX_TOKENS = 800


class AskError(ValueError):
    """A question that cannot be asked; the message is for the user."""


@dataclass(frozen=True, slots=True)
class AskOutcome:
    """What a question produced, ready to show."""

    markdown: str
    message: str  # one line: what happened
    conversation: str | None  # pass it back to ask a follow-up
    sources: tuple[Source, ...]
    answered: bool  # whether a model answered (else: a list of places to look)
    ranking: str  # "hybrid" or "keywords"
    completion: Completion | None = None
    prompt_tokens: int = 0  # of the context pack
    cache: str = "off"  # what the answer cache did: hit, miss or off (a follow-up, off)


@dataclass
class Conversation:
    """The messages of one question and its follow-ups, as the model saw them."""

    id: str
    messages: list[Message] = field(default_factory=list)
    turns: int = 0


def validate(question: object, conversation: object) -> tuple[str, str | None]:
    """The question and conversation id, or `AskError` saying what is wrong."""
    if not isinstance(question, str):
        raise AskError(f"the question must be a string, not {type(question).__name__}")
    text = question.strip()
    if not text:
        raise AskError("the question is empty")
    if len(text) > MAX_QUESTION_CHARS:
        raise AskError(f"the question is longer than {MAX_QUESTION_CHARS} characters")
    if conversation is not None and not isinstance(conversation, str):
        raise AskError("conversation must be the id a previous answer returned, or null")
    return text, conversation or None


class Asker:
    """Workspace questions for one runtime (workspace); see the module docstring."""

    def __init__(self, runtime: AskRuntime) -> None:
        self.runtime = runtime
        self._retriever: Retriever | None = None
        self._conversations: OrderedDict[str, Conversation] = OrderedDict()

    def close(self) -> None:
        if self._retriever is not None:
            self._retriever.close()
            self._retriever = None

    def retriever(self) -> Retriever:
        """The workspace's retrieval index (rebuilt when the cache directory moves)."""
        root = self.runtime.root
        if root is None:
            raise AskError("open a workspace folder first: questions are answered from its files")
        cache_dir = self.runtime.settings.storage.cache_dir
        current = self._retriever
        if current is None or current.root != root or current.cache_dir != cache_dir:
            if current is not None:
                current.close()
            self._retriever = current = Retriever(self.runtime.workspace, cache_dir)
        return current

    async def file_saved(self, path: Path) -> int:
        """Keep the index current after a save; a no-op until a question built it."""
        retriever = self._retriever
        if retriever is None:
            return 0
        rel = retriever.workspace.relative(path)
        if rel is None or not rel.endswith(".py"):
            return 0
        return await retriever.file_saved(rel)

    def _conversation(self, conversation_id: str | None) -> Conversation | None:
        if conversation_id is None:
            return None
        found = self._conversations.get(conversation_id)
        if found is None:
            raise AskError(
                f"unknown conversation {conversation_id!r} (it expired or the server "
                "restarted); ask again without it"
            )
        self._conversations.move_to_end(conversation_id)
        return found

    def _embedder(
        self, provider: str, model: str, dimensions: int | None, request_id: str
    ) -> Embed:
        rt = self.runtime

        async def embed(texts: list[str]) -> list[list[float]]:
            result = await rt.llm.embed(
                texts,
                model=model,
                provider=provider,
                deadline=time.monotonic() + rt.settings.agent.deadline,
                request_id=request_id,
                dimensions=dimensions,
            )
            return result.vectors

        return embed

    async def _semantic(
        self, retriever: Retriever, question: str, report: Progress, request_id: str
    ) -> tuple[list[ChunkRef] | None, str | None]:
        """The embedding ranking, or None and why there is none."""
        settings = self.runtime.settings
        llm = self.runtime.llm
        model = settings.context.embedding_model
        if not model:
            return None, "embeddings are off (`embeddingModel` is empty)"
        providers = llm.embedding_providers()
        if not providers:
            return None, "no provider is configured (offline mode)"
        reasons: list[str] = []
        dims = settings.context.embedding_dimensions
        for provider in providers:
            if not llm.viable(provider):
                reasons.append(f"{provider} circuit {llm.breaker_states().get(provider, '')}")
                continue
            space = f"{provider}/{model}" + (f"/{dims}" if dims else "")

            def progress(done: int, total: int) -> None:
                report(f"Embedding {done}/{total} chunks…")

            try:
                refs, embedded = await retriever.semantic(
                    space, self._embedder(provider, model, dims, request_id), question, progress
                )
            except ProviderFailure as failure:
                logger.info("embeddings from %s failed: %s", provider, failure.message)
                reasons.append(failure.message)
                continue
            logger.info("ranked by %s (%d chunks embedded now)", space, embedded)
            return refs, None
        return None, "embeddings unavailable: " + "; ".join(reasons)

    async def ask(
        self, question: object, conversation: object = None, progress: Progress | None = None
    ) -> AskOutcome:
        """Answer ``question`` (a follow-up in ``conversation``); `AskError` on bad input."""
        text, conversation_id = validate(question, conversation)
        previous = self._conversation(conversation_id)
        report: Progress = progress or (lambda _message: None)
        retriever = self.retriever()
        request_id = uuid.uuid4().hex[:16]
        log, started = self.runtime.llm.usage_log, time.monotonic()
        try:
            outcome = await self._ask(retriever, text, previous, report, request_id)
        except BaseException as exc:  # summarized, then raised as it was
            failed = "cancelled" if isinstance(exc, asyncio.CancelledError) else "error"
            summarize(log, request_id, "ask", started, failed, prompt_version=ASK_PROMPT_VERSION)
            raise
        cached: dict[str, Any] = {"tier": "cache"} if outcome.cache == "hit" else {}
        summarize(
            log,
            request_id,
            "ask",
            started,
            "ok" if outcome.answered else "fallback",
            completion=outcome.completion,
            context_tokens=outcome.prompt_tokens,
            prompt_version=ASK_PROMPT_VERSION,
            cache=outcome.cache,
            **cached,
        )
        return outcome

    async def _ask(
        self,
        retriever: Retriever,
        question: str,
        previous: Conversation | None,
        report: Progress,
        request_id: str,
    ) -> AskOutcome:
        rt = self.runtime
        settings = rt.settings
        files = await retriever.refresh(report)
        if files == 0:
            raise AskError("the workspace has no Python files to answer from")
        report("Ranking the workspace's code…")
        semantic, why = await self._semantic(retriever, question, report, request_id)
        hits = select(await retriever.lexical(question), semantic)
        ranking = "keywords" if semantic is None else "hybrid"
        counter = await rt.counter(settings.llm.model)
        pack = await rt.assembler.assemble_hits(hits, counter, settings.context.ask_tokens)
        sources = sources_of(hits, pack)
        keyword_note = f"_Ranked by keyword match only: {why}._" if why else None
        conversation_id = previous.id if previous else None
        if not rt.llm.available:
            reason = "no model is configured (offline mode)"
            markdown = self._places(question, sources, reason, keyword_note)
            return AskOutcome(
                markdown, "offline: listed where to look", None, sources, False, ranking
            )
        report("Asking the model…")
        history = previous.messages if previous else [ask_system()]
        messages = [*history, ask_message(question, pack)]
        deadline = time.monotonic() + settings.agent.deadline
        summaries: list[Completion] = []
        memory = run_memory(
            rt,
            counter,
            tools=None,
            answer_tokens=ANSWER_MAX_TOKENS,
            deadline=lambda: deadline,
            request_id=request_id,
            purpose="ask",
            on_completion=summaries.append,
        )
        request = ChatRequest(
            messages=await memory.fit(messages),
            feature="ask",
            max_tokens=ANSWER_MAX_TOKENS,
            metadata={"context_tokens": str(pack.tokens)},
        )
        keys = vector = None
        if previous is None and rt.answers.enabled:
            started = time.perf_counter()
            keys, found, vector = await lookup_question(
                rt, question, messages, pack, ANSWER_MAX_TOKENS, request_id
            )
            if found.entry is not None:
                elapsed = (time.perf_counter() - started) * 1000
                record_cache_use(rt.usage_log, request_id, "ask", found, elapsed)
                conversation = self._new_conversation()
                answer = {"role": "assistant", "content": found.entry.text}
                conversation.messages = [*messages, answer]
                conversation.turns += 1
                parts = [
                    f"# {answer_title(question)}",
                    sanitize(found.entry.text.strip()),
                    "**Sources**\n\n" + listing(sources),
                    *([keyword_note] if keyword_note else []),
                    hit_footer(found, elapsed),
                ]
                message = f"answered from the cache ({found.layer})"
                joined = "\n\n".join(parts)
                return AskOutcome(
                    joined, message, conversation.id, sources, True, ranking, cache="hit"
                )
        try:
            if keys is not None:
                completion = await rt.answers.call(
                    keys,
                    lambda: rt.llm.complete(request, deadline=deadline, request_id=request_id),
                )
                if vector is not None:
                    await rt.answers.remember_question(keys, vector)
            else:
                completion = await rt.llm.complete(
                    request, deadline=deadline, request_id=request_id
                )
        except ProviderFailure as failure:
            reason = f"the model did not answer ({failure.message})"
            markdown = self._places(question, sources, reason, keyword_note)
            message = "no model answered: listed where to look"
            cache = "miss" if keys is not None else "off"
            return AskOutcome(
                markdown, message, conversation_id, sources, False, ranking, cache=cache
            )
        conversation = previous or self._new_conversation()
        conversation.messages = [*messages, {"role": "assistant", "content": completion.text}]
        conversation.turns += 1
        notes = answer_notes(completion.notice, rt.llm.breaker_states())
        if keyword_note:
            notes.insert(0, keyword_note)
        if summaries:
            cost = sum(c.cost_usd for c in summaries)
            notes.append(f"_Earlier exchanges summarised by {summaries[-1].model} (${cost:.4f})._")
        parts = [
            f"# {answer_title(question)}",
            sanitize(completion.text.strip()),
            "**Sources**\n\n" + listing(sources),
            *notes,
            footer(completion, completion.tier, pack.tokens),
        ]
        message = f"answered from {len(sources)} pieces of code ({ranking} ranking)"
        return AskOutcome(
            "\n\n".join(parts),
            message,
            conversation.id,
            sources,
            True,
            ranking,
            completion,
            pack.tokens,
            "miss" if keys is not None else "off",
        )

    def _new_conversation(self) -> Conversation:
        conversation = Conversation(uuid.uuid4().hex[:12])
        self._conversations[conversation.id] = conversation
        while len(self._conversations) > MAX_CONVERSATIONS:
            self._conversations.popitem(last=False)
        return conversation

    def _places(
        self, question: str, sources: tuple[Source, ...], reason: str, note: str | None = None
    ) -> str:
        """The answer when no model answers: where to look, best first."""
        parts = [
            f"# {answer_title(question)}",
            f"_No AI answer: {reason}. The code that matches the question best:_",
            listing(sources),
        ]
        if note:
            parts.append(note)
        return "\n\n".join(parts)
