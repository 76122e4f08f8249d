"""The `llmLsp.ask` command: a question about the workspace, answered in a document.

Arguments: ``[{"question": str, "conversation": str | null}]``. The work runs
with cancellable work-done progress ("Indexing N files…", "Embedding i/n
chunks…", "Asking the model…"); the answer is written as markdown under the
cache directory (`atomic.write_document`) and opened beside the code with
`window/showDocument`, as Explain does. The command's result is
``{"ok", "markdown", "conversation", "sources": [{"path", "start", "end"}], "uri"}``;
pass ``conversation`` back to ask a follow-up. Bad arguments get a warning and
``{"ok": false, "error": ...}``, never a stack trace. The progress's cancel
button closes the provider call and answers ``{"ok": false, "cancelled": true}``
(a ``$/cancelRequest`` is answered RequestCancelled by pygls).
"""

from __future__ import annotations

import logging
from typing import Any

from lsp_server.features.base import FeatureServer, warn
from lsp_server.features.documents import answer_path, publish
from lsp_server.features.progress import ActionProgress, UserCancelled
from lsp_server.pipeline.ask import AskError

logger = logging.getLogger(__name__)

CMD_ASK = "llmLsp.ask"


def _fail(ls: FeatureServer, message: str) -> dict[str, Any]:
    warn(ls, f"llm-lsp: {message}")
    return {"ok": False, "error": message}


async def run_ask_command(ls: FeatureServer, args: list[Any]) -> dict[str, Any]:
    """`llmLsp.ask`: answer the question and open the answer beside the code."""
    engine = ls.engine
    if engine is None:
        return _fail(ls, "the server is not initialized yet")
    raw = args[0] if args else None
    if not isinstance(raw, dict):
        return _fail(ls, 'llmLsp.ask expects [{"question": "...", "conversation": null}]')
    question = raw.get("question")
    try:
        async with ActionProgress(ls, "llm-lsp: Ask") as progress:
            outcome = await engine.asker().ask(question, raw.get("conversation"), progress.report)
            progress.end_message = outcome.message
    except AskError as exc:
        return _fail(ls, str(exc))
    except UserCancelled:
        # The progress's cancel button: the provider call is closed, the request still open.
        return {"ok": False, "cancelled": True, "error": "cancelled"}
    assert isinstance(question, str)  # validated by ask()
    target = answer_path(engine.settings.storage.cache_dir, outcome.conversation, question)
    await publish(ls, target, outcome.markdown, outcome.message)
    return {
        "ok": True,
        "markdown": outcome.markdown,
        "conversation": outcome.conversation,
        "sources": [s.to_json() for s in outcome.sources],
        "answered": outcome.answered,
        "ranking": outcome.ranking,
        "uri": target.as_uri(),
    }
