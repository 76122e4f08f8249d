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

import asyncio
import hashlib
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lsprotocol import types

from lsp_server.ask import AskError, AskOutcome
from lsp_server.atomic import write_document
from lsp_server.features.progress import ActionProgress, UserCancelled

if TYPE_CHECKING:
    from lsp_server.server import LlmLanguageServer

logger = logging.getLogger(__name__)

CMD_ASK = "llmLsp.ask"


def answer_path(cache_dir: Path, outcome: AskOutcome, question: str) -> Path:
    """Where an answer's document goes: one file per conversation turn or question."""
    if outcome.conversation is not None:
        name = f"ask-{outcome.conversation}.md"
    else:
        name = f"ask-{hashlib.sha256(question.encode()).hexdigest()[:12]}.md"
    return cache_dir / "answers" / name


def _fail(ls: LlmLanguageServer, message: str) -> dict[str, Any]:
    text = f"llm-lsp: {message}"
    ls.window_show_message(types.ShowMessageParams(type=types.MessageType.Warning, message=text))
    return {"ok": False, "error": message}


async def _show(ls: LlmLanguageServer, target: Path, message: str) -> None:
    """Open ``target`` beside the code; say where it is when the editor cannot."""
    window = ls.client_capabilities.window
    if window is not None and window.show_document is not None and window.show_document.support:
        params = types.ShowDocumentParams(uri=target.as_uri(), take_focus=True)
        if (await ls.window_show_document_async(params)).success:
            return
    info = types.ShowMessageParams(type=types.MessageType.Info, message=f"{message}: {target}")
    ls.window_show_message(info)


async def run_ask_command(ls: LlmLanguageServer, args: list[Any]) -> dict[str, Any]:
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
    target = answer_path(engine.settings.cache_dir, outcome, question)
    await asyncio.to_thread(write_document, target, outcome.markdown)
    await _show(ls, target, outcome.message)
    return {
        "ok": True,
        "markdown": outcome.markdown,
        "conversation": outcome.conversation,
        "sources": [s.to_json() for s in outcome.sources],
        "answered": outcome.answered,
        "ranking": outcome.ranking,
        "uri": target.as_uri(),
    }
