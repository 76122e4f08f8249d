"""Server-initiated, cancellable work-done progress around one piece of work.

`ActionProgress` creates a progress token (when the client supports it),
reports each step the agent announces, and ends with a final message. When the
user presses cancel in the editor (`window/workDoneProgress/cancel`), the task
doing the work is cancelled, which closes any in-flight provider request; the
request itself is still open (the editor cancelled the progress, not the
request), so the block ends with `UserCancelled` for the handler to answer
it. A ``$/cancelRequest`` stays a plain `asyncio.CancelledError` (pygls answers
RequestCancelled).
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from concurrent.futures import Future
from types import TracebackType
from typing import Any

from lsprotocol import types
from pygls.capabilities import get_capability

from lsp_server.features.base import FeatureServer

logger = logging.getLogger(__name__)


class UserCancelled(Exception):
    """The user pressed cancel on the progress: answer the request as cancelled."""


class ActionProgress:
    """`async with ActionProgress(ls, "Explain"): ...` with `report(text)` inside."""

    def __init__(self, ls: FeatureServer, title: str) -> None:
        self.ls = ls
        self.title = title
        self.token: str | None = None
        self.end_message = "Done"
        self.user_cancelled = False

    def _supported(self) -> bool:
        return get_capability(self.ls.client_capabilities, "window.work_done_progress", False)

    async def __aenter__(self) -> ActionProgress:
        if not self._supported():
            return self
        token = f"llm-lsp-{uuid.uuid4().hex[:12]}"
        try:
            await asyncio.wait_for(self.ls.work_done_progress.create_async(token), 5.0)
        except Exception as exc:  # progress is optional: log, go on without
            logger.info("client refused work done progress: %s", exc)
            return self
        self.token = token
        task = asyncio.current_task()
        future: Future[Any] | None = self.ls.work_done_progress.tokens.get(token)
        if future is not None and task is not None:
            loop = asyncio.get_running_loop()

            def on_cancel(f: Future[Any]) -> None:
                if f.cancelled():
                    logger.info("user cancelled %s", self.title)
                    self.user_cancelled = True
                    loop.call_soon_threadsafe(task.cancel)

            future.add_done_callback(on_cancel)
        self.ls.work_done_progress.begin(
            token, types.WorkDoneProgressBegin(title=self.title, cancellable=True)
        )
        return self

    def report(self, message: str) -> None:
        """Show one step ("Finding references of `x`", "Asking the model (step 2/6)")."""
        logger.debug("%s: %s", self.title, message)
        if self.token is not None:
            self.ls.work_done_progress.report(
                self.token, types.WorkDoneProgressReport(message=message)
            )

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self.token is None:
            return
        message = "Cancelled" if exc_type is asyncio.CancelledError else self.end_message
        self.ls.work_done_progress.end(self.token, types.WorkDoneProgressEnd(message=message))
        self.ls.work_done_progress.tokens.pop(self.token, None)
        task = asyncio.current_task()
        if (
            exc_type is asyncio.CancelledError
            and self.user_cancelled
            and task is not None
            and task.cancelling() == 1  # only our cancel: no $/cancelRequest, no shutdown
        ):
            task.uncancel()
            raise UserCancelled(self.title) from None
