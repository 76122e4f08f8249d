"""A pygls protocol that answers requests whose params fail to deserialize.

pygls 2.1.1 raises `JsonRpcInvalidParams` while decoding such a message,
logs it and sends nothing, so the client waits forever (e.g. a hover with
`line: -1`). Here the failure is caught where the message is structured: a
request gets an InvalidParams (-32602) error naming the method, a
notification is logged and dropped, and the server keeps serving.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterator
from typing import Any

from lsprotocol.types import ResponseError
from pygls.exceptions import JsonRpcException, JsonRpcInvalidParams
from pygls.protocol import LanguageServerProtocol

logger = logging.getLogger(__name__)


class _Answered:
    """Placeholder for a message that was already answered while being decoded."""

    jsonrpc = "answered"


_ANSWERED = _Answered()


class LlmProtocol(LanguageServerProtocol):
    """LanguageServerProtocol that never leaves a malformed request unanswered,
    and whose `$/cancelRequest` reaches the task running a command.

    pygls runs a `workspace/executeCommand` handler as a separate task behind a
    generator; cancelling the request only cancels the generator's future, so
    the command (and its provider call) would keep running. Commands register
    their task with `track_request_task` and are cancelled here too. An editor's
    late answer to a server request nobody waits for any more is dropped quietly.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._request_tasks: dict[Any, asyncio.Task[Any]] = {}

    @contextlib.contextmanager
    def track_request_task(self) -> Iterator[None]:
        """While inside, a cancel for the current request cancels the current task."""
        msg_id = self.msg_id
        task = asyncio.current_task()
        if msg_id is None or task is None:
            yield
            return
        self._request_tasks[msg_id] = task
        try:
            yield
        finally:
            self._request_tasks.pop(msg_id, None)

    def _handle_cancel_notification(self, msg_id: Any) -> None:
        if not isinstance(msg_id, int | str):  # lsprotocol lets any JSON through here
            logger.warning("ignoring $/cancelRequest for an id that is not one: %.100r", msg_id)
            return
        task = self._request_tasks.pop(msg_id, None)
        if task is not None:
            logger.info("cancelling the task of request %r", msg_id)
            task.cancel()
        super()._handle_cancel_notification(msg_id)

    def structure_message(self, data: dict[str, Any]) -> Any:
        try:
            return super().structure_message(data)
        except JsonRpcException as exc:
            method = data.get("method")
            if "id" in data and isinstance(method, str):
                code = (
                    JsonRpcInvalidParams.CODE if isinstance(exc, JsonRpcInvalidParams) else exc.code
                )
                detail = _detail(exc)
                logger.warning("invalid params for %s (id %r): %s", method, data["id"], detail)
                self._send_response(
                    data["id"],
                    error=ResponseError(
                        code=code, message=f"Invalid params for {method}: {detail}"
                    ),
                )
            else:
                logger.warning("dropping undecodable message %r: %s", method, _detail(exc))
            return _ANSWERED

    def handle_message(self, message: Any) -> None:
        if message is _ANSWERED:
            return
        if not hasattr(message, "jsonrpc"):  # JSON, but not a JSON-RPC message
            logger.warning("dropping a message that is not JSON-RPC: %.100r", message)
            return
        super().handle_message(message)

    def _handle_response(self, msg_id: Any, result: Any = None, error: Any = None) -> None:
        # The editor's answer to one of our requests (showDocument, progress create)
        # can arrive after the request that was waiting for it was cancelled; pygls
        # would then set a result on a cancelled future and log a traceback.
        future = self._request_futures.get(msg_id)
        if future is not None and future.done():
            self._request_futures.pop(msg_id, None)
            logger.debug("dropping the answer to %r: nobody waits for it any more", msg_id)
            return
        super()._handle_response(msg_id, result, error)


def _detail(exc: BaseException) -> str:
    """A short reason from cattrs' validation error tree, without values."""
    cause = exc.__cause__
    if cause is None:
        return "could not decode"
    try:
        from cattrs import transform_error

        messages = transform_error(cause)
    except (TypeError, AttributeError, ValueError):
        messages = []
    if messages:
        text = "; ".join(messages[:3])
    else:
        text = str(cause).splitlines()[0] if str(cause) else type(cause).__name__
    return text if len(text) <= 200 else text[:197] + "..."
