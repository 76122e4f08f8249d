"""The answer cache for workspace questions: exact, structural and semantic layers.

Only a conversation's first question is cached (a follow-up depends on the
whole conversation). `lookup_question` builds the keys (the retrieved pack is
the code scope; the normalised question is the structural fact), checks the
exact and structural layers, and then the semantic one: the question is
embedded with the provider and model the retrieval uses, and an earlier
question at least `store.SEMANTIC_THRESHOLD` similar about the *same* retrieved
code answers it. `remember` indexes a new answer's question for later.
Without embeddings (off, offline, failing) only the first two layers apply.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from lsp_server.cache import CacheKeys, CacheLookup, CacheOutcome
from lsp_server.context.pack.pieces import ContextPack
from lsp_server.llm.types import ProviderFailure
from lsp_server.pipeline.cached import cache_keys
from lsp_server.pipeline.runtime import AskRuntime

logger = logging.getLogger(__name__)


async def question_vector(rt: AskRuntime, question: str, request_id: str) -> list[float] | None:
    """The question's embedding from the first embedding provider that answers; None without."""
    settings = rt.settings
    model = settings.context.embedding_model
    if model is None:
        return None
    for provider in rt.llm.embedding_providers():
        if not rt.llm.viable(provider):
            continue
        try:
            result = await rt.llm.embed(
                [question],
                model=model,
                provider=provider,
                deadline=time.monotonic() + min(settings.agent.deadline, 10.0),
                request_id=request_id,
                dimensions=settings.context.embedding_dimensions,
            )
        except ProviderFailure as failure:
            logger.info("question embedding from %s failed: %s", provider, failure.message)
            continue
        if result.vectors:
            return result.vectors[0]
    return None


async def lookup_question(
    rt: AskRuntime,
    question: str,
    messages: list[dict[str, Any]],
    pack: ContextPack,
    max_tokens: int,
    request_id: str,
) -> tuple[CacheKeys, CacheLookup, list[float] | None]:
    """Keys, what the cache has for the question, and its embedding (for `remember`)."""
    keys = cache_keys(
        rt.settings,
        "ask",
        messages,
        params=[max_tokens],
        pack=pack,
        facts=[" ".join(question.lower().split())],
    )
    found = await rt.answers.lookup(keys)
    if found.outcome is not CacheOutcome.MISS:
        return keys, found, None
    vector = await question_vector(rt, question, request_id)
    if vector is None:
        return keys, found, None
    semantic = await rt.answers.semantic_lookup(keys, vector)
    return keys, semantic if semantic.entry is not None else found, vector
