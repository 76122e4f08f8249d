"""Protocol fuzz (hypothesis) on the server's stdio, with our own framing (`rawlsp.RawServer`).

Malformed params for every handler: a request gets a JSON-RPC error (InvalidParams when
lsprotocol cannot read its params) or a result, a notification is dropped, and the server
keeps answering. Garbage between messages and broken or oversized headers are survived,
or end the session cleanly (an exit without a traceback) when the stream cannot go on.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lsprotocol import types
from lsprotocol.converters import get_converter

from tests.conftest import copy_project, server_env
from tests.reliability.rawlsp import NO_PARAMS, RawServer

INVALID_PARAMS = -32602
FUZZ = settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RawServer]:
    tmp_path = tmp_path_factory.mktemp("fuzz")
    raw = RawServer(copy_project(tmp_path), tmp_path / "server-stderr.log", server_env(tmp_path))
    raw.initialize()
    yield raw
    assert raw.close() == 0
    log = raw.log.read_text(errors="replace")
    assert "Traceback" not in log, log[log.find("Traceback") - 300 :][:3000]


def _uri(server: RawServer, relative: str = "shop/basket.py") -> str:
    return (server.root / relative).as_uri()


def _valid(server: RawServer) -> dict[str, dict[str, Any]]:
    """A valid params object per method, the seed of the mutations."""
    doc = {"uri": _uri(server)}
    rng = {"start": {"line": 16, "character": 0}, "end": {"line": 19, "character": 0}}
    return {
        types.TEXT_DOCUMENT_HOVER: {"textDocument": doc, "position": {"line": 18, "character": 17}},
        types.TEXT_DOCUMENT_CODE_ACTION: {
            "textDocument": doc,
            "range": rng,
            "context": {"diagnostics": []},
        },
        types.CODE_ACTION_RESOLVE: {
            "title": "Fix this code",
            "kind": "quickfix.llm",
            "data": {"uri": doc["uri"], "start": 16, "end": 19},
        },
        types.WORKSPACE_EXECUTE_COMMAND: {
            "command": "llmLsp.explain",
            "arguments": [{"uri": doc["uri"], "start": 16, "end": 19}],
        },
        types.TEXT_DOCUMENT_DID_OPEN: {
            "textDocument": {
                "uri": _uri(server, "fuzz.py"),
                "languageId": "python",
                "version": 1,
                "text": "x = 1\n",
            }
        },
        types.TEXT_DOCUMENT_DID_CHANGE: {
            "textDocument": {"uri": _uri(server, "fuzz.py"), "version": 2},
            "contentChanges": [{"text": "y = 2\n"}],
        },
        types.TEXT_DOCUMENT_DID_CLOSE: {"textDocument": {"uri": _uri(server, "fuzz.py")}},
        types.TEXT_DOCUMENT_DID_SAVE: {"textDocument": doc},
        types.WORKSPACE_DID_CHANGE_WATCHED_FILES: {"changes": [{"uri": doc["uri"], "type": 2}]},
        types.WORKSPACE_DID_CHANGE_CONFIGURATION: {"settings": {"llmLsp": {}}},
        types.CANCEL_REQUEST: {"id": 999_999},
    }


PARAM_TYPES: dict[str, type] = {
    types.TEXT_DOCUMENT_HOVER: types.HoverParams,
    types.TEXT_DOCUMENT_CODE_ACTION: types.CodeActionParams,
    types.CODE_ACTION_RESOLVE: types.CodeAction,
    types.WORKSPACE_EXECUTE_COMMAND: types.ExecuteCommandParams,
}
NOTIFICATIONS = [
    types.TEXT_DOCUMENT_DID_OPEN,
    types.TEXT_DOCUMENT_DID_CHANGE,
    types.TEXT_DOCUMENT_DID_CLOSE,
    types.TEXT_DOCUMENT_DID_SAVE,
    types.WORKSPACE_DID_CHANGE_WATCHED_FILES,
    types.WORKSPACE_DID_CHANGE_CONFIGURATION,
    types.CANCEL_REQUEST,
]

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=8,
)


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix]
    if isinstance(value, dict):
        for key, item in value.items():
            out += _paths(item, (*prefix, key))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            out += _paths(item, (*prefix, i))
    return out


@st.composite
def mutated(draw: st.DrawFn, seed: dict[str, Any]) -> Any:
    """``seed`` with one to three members replaced by any JSON value or removed."""
    value = copy.deepcopy(seed)
    for _ in range(draw(st.integers(1, 3))):
        path = draw(st.sampled_from(_paths(value)))
        if not path:
            return draw(json_values)
        parent = value
        for step in path[:-1]:
            parent = parent[step]
        if isinstance(parent, dict) and draw(st.booleans()):
            del parent[path[-1]]
        else:
            parent[path[-1]] = draw(json_values)
    return value


def _params(server: RawServer, method: str) -> st.SearchStrategy[Any]:
    return st.one_of(mutated(_valid(server)[method]), json_values, st.just(NO_PARAMS))


def _readable(params: Any, kind: type) -> bool:
    if params is NO_PARAMS:
        return False
    try:
        get_converter().structure(params, kind)
    except Exception:  # cattrs raises several kinds; any of them means "cannot read"
        return False
    return True


def _still_serving(server: RawServer) -> None:
    reply = server.hover("shop/basket.py", 18, 17)
    assert "error" not in reply, reply


@pytest.mark.parametrize("method", list(PARAM_TYPES))
def test_malformed_request_params_get_an_error_and_the_server_answers_on(
    server: RawServer, method: str
) -> None:
    @FUZZ
    @given(data=st.data())
    def check(data: st.DataObject) -> None:
        params = data.draw(_params(server, method))
        reply = server.call(method, params)
        if not _readable(params, PARAM_TYPES[method]):
            assert reply.get("error", {}).get("code") == INVALID_PARAMS, (params, reply)
        else:
            assert "result" in reply or reply["error"]["code"] != -32603, (params, reply)
        _still_serving(server)

    check()


@pytest.mark.parametrize("method", NOTIFICATIONS)
def test_malformed_notifications_are_dropped_and_the_server_answers_on(
    server: RawServer, method: str
) -> None:
    @FUZZ
    @given(data=st.data())
    def check(data: st.DataObject) -> None:
        server.notify(method, data.draw(_params(server, method)))
        _still_serving(server)

    check()


def _frame(body: bytes, length: int | None = None) -> bytes:
    return b"Content-Length: %d\r\n\r\n%s" % (len(body) if length is None else length, body)


GARBAGE = {
    "a line": b"garbage\r\n",
    "blank lines": b"\r\n\r\n",
    "content-type only": b"Content-Type: application/vscode-jsonrpc; charset=utf-8\r\n\r\n",
    "not json": _frame(b"not{}"),
    "json array": _frame(b"[]"),
    "json number": _frame(b"1234"),
    "jsonrpc 1.0": _frame(b'{"jsonrpc": "1.0"}\n'),
    "object id, number method": _frame(b'{"jsonrpc":"2.0","id":{},"method":1}'),
    "request without method": _frame(b'{"jsonrpc":"2.0","id":77}'),
    "unknown method": _frame(b'{"jsonrpc":"2.0","id":78,"method":"no/such"}'),
    "negative length": b"Content-Length: -5\r\n\r\n",
    "length not a number": b"Content-Length: abc\r\n\r\n",
    "lower-case header": b"content-length: 2\r\n\r\n{}",
    "binary junk": b"\x00\xff\xfe" * 100 + b"\r\n",
    "binary body": _frame(b"\xff\xfe\x00\x01"),
    "1 MB header": b"X-Header: " + b"h" * 1_000_000 + b"\r\n\r\n",
    # the stream desynchronised: the next message's header lands inside a line
    "length too long": _frame(b"{}", length=10),
    "junk without newline": b"junk-without-newline",
}


@pytest.mark.parametrize("garbage", list(GARBAGE.values()), ids=list(GARBAGE))
def test_garbage_between_messages_is_survived(server: RawServer, garbage: bytes) -> None:
    server.send_bytes(garbage)
    # the message right after garbage may be lost to it; the one after that is answered
    server.notify(types.TEXT_DOCUMENT_DID_SAVE, {"textDocument": {"uri": _uri(server)}})
    _still_serving(server)


@pytest.mark.parametrize(
    "header",
    [b"Content-Length: 99999999999999\r\n\r\n{}", b"Content-Length: 4096\r\n\r\n{}"],
    ids=["huge", "longer-than-the-stream"],
)
def test_a_body_that_never_comes_ends_the_session_cleanly(tmp_path: Path, header: bytes) -> None:
    raw = RawServer(copy_project(tmp_path), tmp_path / "server-stderr.log", server_env(tmp_path))
    raw.initialize()
    _still_serving(raw)
    raw.send_bytes(header)
    code = raw.close()
    stderr = raw.stderr_text()
    log = raw.log.read_text(errors="replace")
    assert code == 0, (code, stderr, log[-2000:])
    assert "Traceback" not in stderr + log, (stderr, log[-3000:])
