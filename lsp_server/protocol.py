"""A pygls protocol that answers requests whose params fail to deserialize.

pygls 2.1.1 raises `JsonRpcInvalidParams` while decoding such a message,
logs it and sends nothing, so the client waits forever (e.g. a hover with
`line: -1`). Here the failure is caught where the message is structured: a
request gets an InvalidParams (-32602) error naming the method, a
notification is logged and dropped, and the server keeps serving.
"""

from __future__ import annotations

import logging
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
    """LanguageServerProtocol that never leaves a malformed request unanswered."""

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
        super().handle_message(message)


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
