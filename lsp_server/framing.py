"""The server's stdin as pygls reads it, made robust against a broken message stream.

pygls reads LSP headers line by line and takes a line as a ``Content-Length`` header only
when it is exactly that header. One message whose ``Content-Length`` is wrong, or stray
bytes written between messages, glue the next header to the end of a body; pygls then
never sees a header again and the session hangs, every later request unanswered (found
by `tests/reliability/test_protocol_fuzz.py`). `ResyncingReader` starts a header line at
the ``Content-Length:`` it contains, so the stream resynchronises at the next message.

A header announcing more than `MAX_MESSAGE_BYTES` is not read at all (Python would try
to allocate it): the session ends there, as if the editor had closed the stream.

pygls logs a traceback for a body that is not JSON and for params it cannot read (both
answered or dropped cleanly); `NotJsonFilter` makes that one warning line, see `install`.
"""

from __future__ import annotations

import logging
from typing import BinaryIO

from pygls.exceptions import JsonRpcException

logger = logging.getLogger(__name__)

HEADER = b"Content-Length:"
MAX_MESSAGE_BYTES = 256 * 1024 * 1024
"""Larger than any document an editor sends (a 5 MB file is about 5 MB of JSON)."""


class NotJsonFilter(logging.Filter):
    """pygls' tracebacks for messages it could not read, as one line or none.

    "Unable to handle message" with a decoding error (the body is not JSON) becomes one
    warning; "Unable to deserialize message" is dropped: `LlmProtocol` answers such a
    request with InvalidParams and logs one warning line of its own; a JSON-RPC error
    pygls answers on purpose (an unknown command) is one warning line.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if str(record.msg).startswith("Unable to deserialize message"):
            return False
        error = record.exc_info[1] if record.exc_info else None
        if str(record.msg).startswith("Exception occurred for message") and isinstance(
            error, JsonRpcException
        ):  # an error pygls answered on purpose (e.g. an unknown command): one line
            record.msg = "answered request %s with an error: %s"
            msg_id = record.args[0] if isinstance(record.args, tuple) and record.args else "?"
            record.args = (msg_id, str(error)[:200])
            record.levelno, record.levelname = logging.WARNING, "WARNING"
            record.exc_info = record.exc_text = None
            return True
        if record.msg == "Unable to handle message" and isinstance(error, ValueError):
            record.msg = "dropped a message that is not JSON: %s"
            record.args = (str(error)[:200],)
            record.levelno, record.levelname = logging.WARNING, "WARNING"
            record.exc_info = record.exc_text = None
        return True


def install() -> None:
    """Filter pygls' loggers for stdin (`pygls.server`) and decoding (`json_rpc`)."""
    for name in ("pygls.server", "pygls.protocol.json_rpc"):
        logging.getLogger(name).addFilter(NotJsonFilter())


class ResyncingReader:
    """The ``readline``/``read`` pygls' stdin reader needs, over a binary stream."""

    def __init__(self, stream: BinaryIO) -> None:
        self._stream = stream

    def readline(self) -> bytes:
        line = self._stream.readline()
        start = line.find(HEADER)
        if start > 0:
            logger.warning("skipped %d bytes that were not an LSP message", start)
            return line[start:]
        return line

    def read(self, size: int = -1) -> bytes:
        if size > MAX_MESSAGE_BYTES:
            logger.error(
                "a message announced %d bytes (more than %d): ending the session",
                size,
                MAX_MESSAGE_BYTES,
            )
            return b""
        return self._stream.read(size)
