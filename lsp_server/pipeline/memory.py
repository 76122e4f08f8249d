"""Conversation memory for multi-turn work: keep a chat within its token budget.

The agent loop and follow-up questions resend the whole conversation on every
turn. `ConversationMemory.fit` returns the messages to send, counted with the
model's `TokenCounter` (`count_messages`: chat overhead and tool calls
included) within ``budget``:

* **pinned**: the leading system message(s) and the first user message, as is;
* **recent**: the last ``keep_last`` *exchanges* verbatim, an exchange being a
  user or assistant message together with the tool results that follow it (a
  tool call is never separated from its results);
* **summary**: everything in between, replaced by one user message holding a
  summary written by the cheap model (the injected ``summarise``), only when
  the whole conversation would overflow.

Summaries are cached by a hash chain over the exchanges they cover, in memory
and, given a directory, in ``diskcache`` (shared by editor windows): when the
middle grows by a turn, the summary of its longest cached prefix is extended
with the new exchanges instead of summarising everything again. A summary is
cut to the room it has, so it never crosses the budget; when even the pinned
and recent messages do not fit, older recent exchanges move into the summary,
and as a last resort the longest contents are cut. If the summariser fails,
the middle is replaced by a one-line note (logged as a warning);
`asyncio.CancelledError` propagates.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from lsp_server.context.tokens import TokenCounter
from lsp_server.storage import SUMMARY_CACHE_BYTES, open_cache

logger = logging.getLogger(__name__)

Message = dict[str, Any]
Summarise = Callable[[list[Message]], Awaitable[str]]

SUMMARY_PREFIX = "Summary of the earlier part of this conversation:\n"
OMITTED = "[{n} earlier messages were left out to stay within the context window.]"
#: Smallest useful summary, in tokens; with less room the middle is only noted.
MIN_SUMMARY_TOKENS = 32


def _hash(previous: str, group: list[Message]) -> str:
    data = json.dumps(group, sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.sha256(f"{previous}\x00{data}".encode()).hexdigest()


def exchanges(messages: list[Message]) -> list[list[Message]]:
    """Group messages: each user or assistant message starts a group; tool results join it."""
    groups: list[list[Message]] = []
    for message in messages:
        if message.get("role") in ("tool", "function") and groups:
            groups[-1].append(message)
        else:
            groups.append([message])
    return groups


class SummaryCache:
    """Summaries by hash: an in-memory LRU, backed by ``diskcache`` when given a directory."""

    def __init__(self, directory: Path | None = None, size: int = 128) -> None:
        self._memory: OrderedDict[str, str] = OrderedDict()
        self._size = size
        self._disk = open_cache(directory, SUMMARY_CACHE_BYTES) if directory is not None else None

    async def get(self, key: str) -> str | None:
        found = self._memory.get(key)
        if found is not None:
            self._memory.move_to_end(key)
            return found
        if self._disk is None:
            return None
        value = await asyncio.to_thread(self._disk.get, f"summary:{key}")
        if isinstance(value, str):
            self._remember(key, value)
            return value
        return None

    async def put(self, key: str, summary: str) -> None:
        self._remember(key, summary)
        if self._disk is not None:
            await asyncio.to_thread(self._disk.set, f"summary:{key}", summary)

    def _remember(self, key: str, summary: str) -> None:
        self._memory[key] = summary
        self._memory.move_to_end(key)
        while len(self._memory) > self._size:
            self._memory.popitem(last=False)

    def close(self) -> None:
        if self._disk is not None:
            self._disk.close()


class ConversationMemory:
    """Fits a conversation into ``budget`` tokens; see the module docstring."""

    def __init__(
        self,
        counter: TokenCounter,
        budget: int,
        *,
        keep_last: int = 4,
        summarise: Summarise,
        cache: SummaryCache | None = None,
    ) -> None:
        self.counter = counter
        self.budget = budget
        self.keep_last = max(1, keep_last)
        self._summarise = summarise
        self.cache = cache or SummaryCache()
        self.summaries_made = 0  # calls to the cheap model, for tests and telemetry

    def _count(self, messages: list[Message]) -> int:
        return self.counter.count_messages(messages)

    async def fit(self, messages: list[Message]) -> list[Message]:
        """The messages to send: ``messages`` itself when it fits, else a fitted copy."""
        if self._count(messages) <= self.budget:
            return messages
        first_user = next((i for i, m in enumerate(messages) if m.get("role") == "user"), -1)
        pinned = messages[: first_user + 1]
        groups = exchanges(messages[first_user + 1 :])
        keep = min(self.keep_last, len(groups))
        while True:
            middle, recent = groups[: len(groups) - keep], groups[len(groups) - keep :]
            flat = [m for g in recent for m in g]
            room = self.budget - self._count([*pinned, *flat])
            if not middle:
                if room >= 0:
                    return [*pinned, *flat]
            else:
                note = await self._note(middle, room)
                if note is not None and self._count([*pinned, note, *flat]) <= self.budget:
                    return [*pinned, note, *flat]
            if keep <= 1:
                break
            keep -= 1
        return self._squeeze(pinned, [m for g in groups[-1:] for m in g])

    async def _note(self, middle: list[list[Message]], room: int) -> Message | None:
        """The message standing for ``middle`` within ``room`` tokens; None if none fits."""
        empty = {"role": "user", "content": ""}
        overhead = self._count([empty]) - self._count([])
        omitted = {"role": "user", "content": OMITTED.format(n=sum(len(g) for g in middle))}
        space = room - overhead - self.counter.count(SUMMARY_PREFIX) - 2  # 2: merges at the join
        if space >= MIN_SUMMARY_TOKENS:
            summary = await self._summary(middle)
            if summary is not None:
                text = self.counter.truncate(summary, space)
                if text:
                    return {"role": "user", "content": SUMMARY_PREFIX + text}
        if self._count([omitted]) - self._count([]) <= room:
            return omitted
        return None

    async def _summary(self, middle: list[list[Message]]) -> str | None:
        """The summary of ``middle``, extending the longest cached prefix's summary."""
        chain: list[str] = []
        previous = ""
        for group in middle:
            previous = _hash(previous, group)
            chain.append(previous)
        cached = await self.cache.get(chain[-1])
        if cached is not None:
            return cached
        start, base = 0, None
        for k in range(len(chain) - 2, -1, -1):
            base = await self.cache.get(chain[k])
            if base is not None:
                start = k + 1
                break
        todo = [m for g in middle[start:] for m in g]
        if base is not None:
            todo = [{"role": "user", "content": SUMMARY_PREFIX + base}, *todo]
        try:
            summary = (await self._summarise(todo)).strip()
        except Exception as exc:  # the cheap model is optional: classify, log, note instead
            logger.warning(
                "summarising %d messages failed (%s: %s); leaving them out",
                len(todo),
                type(exc).__name__,
                exc,
            )
            return None
        self.summaries_made += 1
        if summary:
            await self.cache.put(chain[-1], summary)
        return summary or None

    def _squeeze(self, pinned: list[Message], last: list[Message]) -> list[Message]:
        """Last resort: cut the longest text contents until pinned + last exchange fit."""
        out = [dict(m) for m in [*pinned, *last]]
        while self._count(out) > self.budget:
            texts = [
                (self.counter.count(m["content"]), i)
                for i, m in enumerate(out)
                if isinstance(m.get("content"), str) and m["content"]
            ]
            if not texts:
                break
            size, i = max(texts)
            over = self._count(out) - self.budget
            out[i]["content"] = self.counter.truncate(out[i]["content"], max(0, size - over - 1))
        if self._count(out) > self.budget:
            logger.warning("conversation does not fit in %d tokens even cut down", self.budget)
        return out
