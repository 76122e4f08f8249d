"""The server's stdin framing: resynchronising after garbage, refusing huge bodies, quiet logs."""

from __future__ import annotations

import io
import json
import logging

import pytest
from pygls.exceptions import JsonRpcInvalidParams

from lsp_server.framing import MAX_MESSAGE_BYTES, NotJsonFilter, ResyncingReader


def test_a_header_glued_to_garbage_starts_at_content_length() -> None:
    reader = ResyncingReader(io.BytesIO(b'{"x": 1}garbageContent-Length: 2\r\n\r\n{}'))
    assert reader.readline() == b"Content-Length: 2\r\n"
    assert reader.readline() == b"\r\n"
    assert reader.read(2) == b"{}"


def test_plain_lines_pass_unchanged() -> None:
    reader = ResyncingReader(io.BytesIO(b"Content-Length: 2\r\nX: y\r\n"))
    assert reader.readline() == b"Content-Length: 2\r\n"
    assert reader.readline() == b"X: y\r\n"


def test_a_body_larger_than_the_cap_ends_the_stream(caplog: pytest.LogCaptureFixture) -> None:
    reader = ResyncingReader(io.BytesIO(b"{}"))
    assert reader.read(MAX_MESSAGE_BYTES + 1) == b""
    assert "ending the session" in caplog.text


def _record(msg: str, error: BaseException | None) -> logging.LogRecord:
    exc_info = (type(error), error, None) if error else None
    return logging.LogRecord("pygls.server", logging.ERROR, "", 0, msg, (), exc_info)


def test_a_body_that_is_not_json_is_one_warning_line() -> None:
    try:
        json.loads(b"not{}")
    except ValueError as exc:
        record = _record("Unable to handle message", exc)
    assert NotJsonFilter().filter(record) is True
    assert record.levelname == "WARNING" and record.exc_info is None
    assert record.getMessage().startswith("dropped a message that is not JSON: Expecting value")


def test_undecodable_params_are_left_to_the_protocol_and_other_errors_kept() -> None:
    assert (
        NotJsonFilter().filter(_record("Unable to deserialize message\nTraceback", None)) is False
    )
    other = _record("Unable to handle message", RuntimeError("bug"))
    assert NotJsonFilter().filter(other) is True
    assert other.levelname == "ERROR" and other.exc_info is not None


def test_an_error_pygls_answers_on_purpose_is_one_warning_line() -> None:
    error = JsonRpcInvalidParams.of('Command name "x" is not defined')
    record = _record('Exception occurred for message "%s"', error)
    record.args = ("218",)
    assert NotJsonFilter().filter(record) is True
    assert record.levelname == "WARNING" and record.exc_info is None
    assert record.getMessage().startswith("answered request 218 with an error: ")
