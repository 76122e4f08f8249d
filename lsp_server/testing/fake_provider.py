"""An OpenAI-compatible test double of the LLM provider, owned by the project.

`FakeProvider` is a small HTTP server on 127.0.0.1 (standard library only) that speaks
enough of the OpenAI API for the real `openai` client to talk to it:

* ``POST /v1/chat/completions``: plain and streamed (SSE) answers, tool calls, usage
  (including ``stream_options.include_usage`` and ``prompt_tokens_details.cached_tokens``);
* ``GET /v1/models`` and ``GET /v1/models/{id}``;
* ``POST /v1/embeddings``: deterministic, normalised vectors (see `fake_embedding`),
  as floats or base64 as the client asks.

Tests script its behaviour per request with `Step` values queued by
`FakeProvider.script` (optionally per model and per endpoint): a delay, an HTTP error
with an OpenAI error body and ``Retry-After``/``retry-after-ms`` headers, a malformed
body, an abrupt TCP reset (before the response or in the middle of a stream), or a given
answer or tool call. Every request is recorded as a `RecordedRequest`, including
whether the client hung up while the server was still working on it.

The server runs in a background thread, so it serves sync tests, async tests and clients
in other processes alike. Another process (or a human) can script it over HTTP:

* ``POST /_fake/script`` with ``{"steps": [{...Step fields...}], "model": ..., "endpoint": ...}``
* ``POST /_fake/default`` with ``{"step": {...}}``
* ``GET /_fake/requests`` returns ``{"requests": [...]}``
* ``POST /_fake/reset`` clears the script, the default override and the recordings

Run it by hand with ``python -m lsp_server.testing.fake_provider --port 8765`` (or
``scripts/fake_provider``) for demos and benchmarks.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import hashlib
import itertools
import json
import logging
import math
import re
import select
import signal
import socket
import socketserver
import struct
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import FrameType, TracebackType
from typing import Any, Literal, Self, TypeVar, cast
from urllib.parse import unquote, urlsplit

logger = logging.getLogger(__name__)

__all__ = [
    "DEFAULT_TEXT",
    "EMBEDDING_DIMS",
    "Endpoint",
    "FakeProvider",
    "RecordedRequest",
    "Step",
    "fake_embedding",
    "main",
]

DEFAULT_TEXT = "This is a fake answer."
"""The assistant content when neither the step nor the default gives one."""

EMBEDDING_DIMS = 64
"""Length of the fake embedding vectors unless the request asks for ``dimensions``."""

_T = TypeVar("_T")

Endpoint = Literal["chat", "embeddings"]
"""Which endpoint a scripted step is meant for."""

_ENDPOINTS: tuple[Endpoint, ...] = ("chat", "embeddings")
_POLL_INTERVAL = 0.02
_RESET_GRACE = 0.1
_MALFORMED_JSON = '{"id": "chatcmpl-broken", "object": "chat.completion", "choices": [{'
_DEFAULT_ERROR: dict[int, tuple[str, str | None]] = {
    400: ("invalid_request_error", None),
    401: ("invalid_request_error", "invalid_api_key"),
    402: ("insufficient_quota", "insufficient_quota"),
    403: ("invalid_request_error", "unsupported_country_region_territory"),
    404: ("invalid_request_error", "model_not_found"),
    408: ("timeout", None),
    429: ("requests", "rate_limit_exceeded"),
}


@dataclass(slots=True)
class Step:
    """What the fake provider does for one request.

    With all defaults it answers `DEFAULT_TEXT` with status 200. Fields that make no
    sense for an endpoint are ignored there (e.g. ``text`` for embeddings).
    """

    text: str | None = None
    """Assistant content. None means `DEFAULT_TEXT`, or no content when ``tool_calls``."""
    tool_calls: list[dict[str, Any]] | None = None
    """``[{"name": ..., "arguments": {...} or "json", "id": optional}]``."""
    status: int = 200
    """HTTP status; >= 400 sends an OpenAI error body instead of a completion."""
    error_message: str | None = None
    error_type: str | None = None
    error_code: str | None = None
    """``error.code`` in the body, e.g. ``"insufficient_quota"`` with status 429."""
    retry_after: float | None = None
    """Seconds for the ``Retry-After`` header (any status)."""
    retry_after_ms: int | None = None
    """Milliseconds for the ``retry-after-ms`` header (any status)."""
    delay: float = 0.0
    """Seconds to wait before responding; a client hang-up meanwhile is noticed."""
    malformed: bool = False
    """Answer 200 with a body that is not valid JSON (or a broken SSE event)."""
    raw_body: str | None = None
    """Send exactly this body (with ``status``) instead of a generated one."""
    reset: bool = False
    """Abort the TCP connection (RST) without sending any response."""
    reset_mid_stream: bool = False
    """For streamed requests: send about half the chunks, then abort the connection."""
    usage: tuple[int, int] | None = None
    """(prompt_tokens, completion_tokens) to report; default: word counts."""
    cached_tokens: int = 0
    """``usage.prompt_tokens_details.cached_tokens``."""
    chunk_delay: float = 0.0
    """Seconds between streamed chunks."""
    finish_reason: str | None = None
    """Override ``finish_reason`` (default ``"stop"`` or ``"tool_calls"``)."""
    headers: dict[str, str] = field(default_factory=dict)
    """Extra response headers."""

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Step:
        """Build a step from its JSON form (the admin endpoint's format)."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown Step field(s): {', '.join(unknown)}")
        values = dict(data)
        usage = values.get("usage")
        if usage is not None:
            if not isinstance(usage, list | tuple) or len(usage) != 2:
                raise ValueError("usage must be [prompt_tokens, completion_tokens]")
            values["usage"] = (int(usage[0]), int(usage[1]))
        if values.get("headers") is None:
            values.pop("headers", None)
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        """The JSON form of this step (inverse of `from_dict`)."""
        out: dict[str, Any] = {f.name: getattr(self, f.name) for f in fields(self)}
        if self.usage is not None:
            out["usage"] = list(self.usage)
        out["headers"] = dict(self.headers)
        return out


@dataclass(slots=True)
class RecordedRequest:
    """One request the fake provider received, and what became of it.

    The fields after ``started_at`` are updated by the server thread while the request
    is in flight; `FakeProvider.wait_for_requests` waits until they are final.
    """

    index: int
    request_id: str
    method: str
    path: str
    headers: dict[str, str]
    """Lower-cased header names; ``authorization`` is redacted (see ``auth``)."""
    auth: str | None
    """The bearer token (API key) the client sent, if any."""
    body: Any
    """The parsed JSON body, or None when absent or not JSON."""
    started_at: float
    """`time.monotonic()` when the request was read."""
    finished_at: float | None = None
    client_disconnected: bool = False
    """True when the client hung up before the server finished responding."""
    status: int | None = None
    """Status sent; None when none was (reset, hang-up, server stopping)."""
    step: Step | None = None

    @property
    def has_auth(self) -> bool:
        return self.auth is not None

    @property
    def finished(self) -> bool:
        return self.finished_at is not None

    @property
    def model(self) -> str | None:
        value = self.body.get("model") if isinstance(self.body, dict) else None
        return value if isinstance(value, str) else None

    @property
    def messages(self) -> list[dict[str, Any]]:
        value = self.body.get("messages") if isinstance(self.body, dict) else None
        return cast(list[dict[str, Any]], value) if isinstance(value, list) else []

    @property
    def stream(self) -> bool:
        return isinstance(self.body, dict) and bool(self.body.get("stream"))

    @property
    def duration(self) -> float | None:
        return None if self.finished_at is None else self.finished_at - self.started_at

    def to_dict(self) -> dict[str, Any]:
        """JSON form, as ``GET /_fake/requests`` returns it."""
        return {
            "index": self.index,
            "request_id": self.request_id,
            "method": self.method,
            "path": self.path,
            "headers": dict(self.headers),
            "auth": self.auth,
            "has_auth": self.has_auth,
            "body": self.body,
            "model": self.model,
            "stream": self.stream,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
            "client_disconnected": self.client_disconnected,
            "status": self.status,
            "step": None if self.step is None else self.step.to_dict(),
        }


def fake_embedding(text: str, dims: int = EMBEDDING_DIMS) -> list[float]:
    """The deterministic unit vector the fake provider returns for ``text``."""
    values: list[float] = []
    for counter in itertools.count():
        if len(values) >= dims:
            break
        digest = hashlib.sha256(f"{counter}:{text}".encode()).digest()
        for i in range(0, len(digest), 4):
            values.append(int.from_bytes(digest[i : i + 4], "little") / 2**31 - 1.0)
    values = values[:dims]
    norm = math.sqrt(sum(v * v for v in values)) or 1.0
    return [v / norm for v in values]


def _count_words(value: Any) -> int:
    """A deterministic stand-in for a token count: whitespace-separated words."""
    if isinstance(value, str):
        return len(value.split())
    if isinstance(value, list):
        return sum(_count_words(item) for item in value)
    if isinstance(value, dict):
        if "text" in value:
            return _count_words(value["text"])
        if "content" in value:
            return _count_words(value["content"])
    return 0


class FakeProvider:
    """An OpenAI-compatible HTTP server whose behaviour tests script per request.

    Use as a (sync or async) context manager, or call `start` and `stop`::

        with FakeProvider() as fp:
            fp.script(Step(status=429, retry_after=2), Step(text="hello"))
            client = openai.AsyncOpenAI(base_url=fp.base_url, api_key="sk-test")
            ...
            assert fp.requests[0].client_disconnected is False
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        default: Step | None = None,
        models: Sequence[str] = ("gpt-4o", "gpt-4o-mini"),
    ) -> None:
        self._host = host
        self._requested_port = port
        self._initial_default = default if default is not None else Step()
        self._default = self._initial_default
        self.models: tuple[str, ...] = tuple(models)
        self._cond = threading.Condition()
        self._queues: dict[tuple[Endpoint, str | None], deque[Step]] = {}
        self._records: list[RecordedRequest] = []
        self._ids = itertools.count(1)
        self._stopping = threading.Event()
        self._server: _Server | None = None
        self._serve_thread: threading.Thread | None = None
        self._handler_threads: set[threading.Thread] = set()
        self._connections: set[socket.socket] = set()

    # -- lifecycle -------------------------------------------------------------------

    def start(self) -> Self:
        """Bind and serve in a background thread. Returns self."""
        if self._server is not None:
            raise RuntimeError("FakeProvider already started")
        self._stopping.clear()
        server = _Server((self._host, self._requested_port), self)
        self._server = server
        self._serve_thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"fake-provider:{self.port}",
            daemon=True,
        )
        self._serve_thread.start()
        logger.debug("fake provider listening on %s", self.base_url)
        return self

    def stop(self, timeout: float = 5.0) -> None:
        """Stop serving, abort delays and open connections, and join every thread."""
        server = self._server
        if server is None:
            return
        self._stopping.set()
        server.shutdown()
        with self._cond:
            connections = list(self._connections)
            threads = list(self._handler_threads)
            self._cond.notify_all()
        for conn in connections:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        server.server_close()
        deadline = time.monotonic() + timeout
        if self._serve_thread is not None:
            self._serve_thread.join(max(0.0, deadline - time.monotonic()))
        for thread in threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        alive = [t.name for t in threads if t.is_alive()]
        if alive:
            logger.warning("fake provider: handler threads still running: %s", alive)
        self._server = None
        self._serve_thread = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    async def __aenter__(self) -> Self:
        return self.start()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- addresses -------------------------------------------------------------------

    @property
    def host(self) -> str:
        return self._host

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("FakeProvider not started")
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        """Root URL, e.g. ``http://127.0.0.1:PORT`` (admin endpoints live under it)."""
        return f"http://{self._host}:{self.port}"

    @property
    def base_url(self) -> str:
        """What to give the OpenAI client: ``http://127.0.0.1:PORT/v1``."""
        return f"{self.url}/v1"

    # -- scripting -------------------------------------------------------------------

    def script(self, *steps: Step, model: str | None = None, endpoint: Endpoint = "chat") -> None:
        """Queue steps, consumed one per request in order.

        With ``model`` the steps apply only to requests for that model; such a queue
        is consulted before the model-less one. When no step is queued the default
        step applies. Only chat completions and embeddings consume steps, each from
        its own ``endpoint`` queue.
        """
        if endpoint not in _ENDPOINTS:
            raise ValueError(f"endpoint must be one of {_ENDPOINTS}, not {endpoint!r}")
        with self._cond:
            self._queues.setdefault((endpoint, model), deque()).extend(steps)

    def set_default(self, step: Step) -> None:
        """The step used when no scripted step is queued."""
        with self._cond:
            self._default = step

    def pending(self, *, model: str | None = None, endpoint: Endpoint = "chat") -> int:
        """How many scripted steps are still queued for ``(endpoint, model)``."""
        with self._cond:
            return len(self._queues.get((endpoint, model), ()))

    def reset(self) -> None:
        """Clear queued steps, the default override and the recorded requests."""
        with self._cond:
            self._queues.clear()
            self._records.clear()
            self._default = self._initial_default

    def _next_step(self, endpoint: Endpoint, model: str | None) -> Step:
        with self._cond:
            for key in ((endpoint, model), (endpoint, None)):
                queue = self._queues.get(key)
                if queue:
                    return queue.popleft()
            return self._default

    # -- recordings ------------------------------------------------------------------

    @property
    def requests(self) -> list[RecordedRequest]:
        """A snapshot of the recorded requests (admin requests are not recorded)."""
        with self._cond:
            return list(self._records)

    def wait_for_requests(
        self,
        n: int,
        timeout: float = 5.0,
        *,
        path: str | None = None,
        finished: bool = True,
    ) -> list[RecordedRequest]:
        """Block until ``n`` requests (to ``path``, if given) arrived and, by default,
        finished; return those matching. Raises `TimeoutError` otherwise."""
        matched = self._wait_until(lambda: self._matching(n, path, finished), timeout)
        if matched is None:
            raise TimeoutError(
                f"fake provider: expected {n} request(s) to {path or 'any path'}, "
                f"got {len(self._select(path, finished))} within {timeout}s"
            )
        return matched

    def wait_for_disconnect(self, timeout: float = 5.0) -> RecordedRequest | None:
        """Block until a request whose client hung up has finished; None on timeout."""
        return self._wait_until(self._first_disconnected, timeout)

    async def wait_for_requests_async(
        self,
        n: int,
        timeout: float = 5.0,  # noqa: ASYNC109 - same signature as the sync variant
        *,
        path: str | None = None,
        finished: bool = True,
    ) -> list[RecordedRequest]:
        """`wait_for_requests` without blocking the event loop."""
        matched = await self._wait_until_async(lambda: self._matching(n, path, finished), timeout)
        if matched is None:
            raise TimeoutError(
                f"fake provider: expected {n} request(s) to {path or 'any path'}, "
                f"got {len(self._select(path, finished))} within {timeout}s"
            )
        return matched

    async def wait_for_disconnect_async(
        self,
        timeout: float = 5.0,  # noqa: ASYNC109 - same signature as the sync variant
    ) -> RecordedRequest | None:
        """`wait_for_disconnect` without blocking the event loop."""
        return await self._wait_until_async(self._first_disconnected, timeout)

    def _select(self, path: str | None, finished: bool) -> list[RecordedRequest]:
        with self._cond:
            return [
                r
                for r in self._records
                if (path is None or r.path == path) and (not finished or r.finished)
            ]

    def _matching(self, n: int, path: str | None, finished: bool) -> list[RecordedRequest] | None:
        selected = self._select(path, finished)
        return selected if len(selected) >= n else None

    def _first_disconnected(self) -> RecordedRequest | None:
        with self._cond:
            return next((r for r in self._records if r.client_disconnected and r.finished), None)

    def _wait_until(self, probe: Callable[[], _T | None], timeout: float) -> _T | None:
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                result = probe()
                remaining = deadline - time.monotonic()
                if result is not None or remaining <= 0:
                    return result
                self._cond.wait(remaining)

    async def _wait_until_async(self, probe: Callable[[], _T | None], limit: float) -> _T | None:
        deadline = time.monotonic() + limit
        while True:
            result = probe()
            if result is not None or time.monotonic() >= deadline:
                return result
            await asyncio.sleep(_POLL_INTERVAL)

    def _record(
        self, method: str, path: str, headers: dict[str, str], auth: str | None, body: Any
    ) -> RecordedRequest:
        with self._cond:
            index = next(self._ids)
            record = RecordedRequest(
                index=index,
                request_id=f"req_fake_{index:06d}",
                method=method,
                path=path,
                headers=headers,
                auth=auth,
                body=body,
                started_at=time.monotonic(),
            )
            self._records.append(record)
            self._cond.notify_all()
            return record

    def _update(self, record: RecordedRequest, **changes: Any) -> None:
        with self._cond:
            for name, value in changes.items():
                setattr(record, name, value)
            self._cond.notify_all()

    def _track(self, thread: threading.Thread, conn: socket.socket, add: bool) -> None:
        with self._cond:
            if add:
                self._handler_threads.add(thread)
                self._connections.add(conn)
            else:
                self._handler_threads.discard(thread)
                self._connections.discard(conn)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], provider: FakeProvider) -> None:
        self.provider = provider
        super().__init__(address, _Handler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind would call socket.getfqdn(), a possibly slow DNS lookup.
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name = str(host)
        self.server_port = int(port)

    def process_request(self, request: Any, client_address: Any) -> None:
        thread = threading.Thread(
            target=self.process_request_thread,
            args=(request, client_address),
            name=f"fake-provider-conn:{client_address[1]}",
            daemon=True,
        )
        self.provider._track(thread, request, add=True)
        thread.start()

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self.provider._track(threading.current_thread(), request, add=False)

    def handle_error(self, request: Any, client_address: Any) -> None:
        if isinstance(sys.exc_info()[1], OSError):  # the client went away, or stop()
            logger.debug("fake provider: connection error with %s", client_address, exc_info=True)
        else:
            logger.exception("fake provider: error serving %s", client_address)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "FakeProvider/1.0"

    @property
    def _provider(self) -> FakeProvider:
        return cast(_Server, self.server).provider

    def log_message(self, format: str, *args: Any) -> None:
        logger.debug("fake provider: %s " + format, self.address_string(), *args)

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")

    # -- dispatch --------------------------------------------------------------------

    def _dispatch(self, method: str) -> None:
        raw = self._read_body()
        path = urlsplit(self.path).path
        body: Any = None
        bad_json = False
        if raw:
            try:
                body = json.loads(raw)
            except ValueError:
                bad_json = True
        if path.startswith("/_fake/"):
            self._admin(method, path, body, bad_json)
            return
        headers = {k.lower(): v for k, v in self.headers.items()}
        auth: str | None = None
        if "authorization" in headers:
            value = headers["authorization"]
            auth = value[7:] if value.lower().startswith("bearer ") else value
            headers["authorization"] = "<redacted>"
        provider = self._provider
        record = provider._record(method, path, headers, auth, body)
        try:
            if bad_json:
                self._send_error_body(record, 400, "We could not parse the JSON body.")
            elif method == "POST" and path == "/v1/chat/completions":
                self._chat(record)
            elif method == "POST" and path == "/v1/embeddings":
                self._embeddings(record)
            elif method == "GET" and path == "/v1/models":
                self._send_json(record, 200, {"object": "list", "data": self._model_list()})
            elif method == "GET" and path.startswith("/v1/models/"):
                self._model(record, unquote(path.removeprefix("/v1/models/")))
            else:
                self._send_error_body(record, 404, f"Unknown request URL: {method} {path}.")
        finally:
            provider._update(record, finished_at=time.monotonic())
            logger.info(
                "fake provider: %s %s model=%s -> %s%s",
                method,
                path,
                record.model,
                record.status if record.status is not None else "no response",
                " (client disconnected)" if record.client_disconnected else "",
            )

    def _read_body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    # -- OpenAI endpoints ------------------------------------------------------------

    def _model_list(self) -> list[dict[str, Any]]:
        return [
            {"id": m, "object": "model", "created": 0, "owned_by": "fake-provider"}
            for m in self._provider.models
        ]

    def _model(self, record: RecordedRequest, model_id: str) -> None:
        for entry in self._model_list():
            if entry["id"] == model_id:
                self._send_json(record, 200, entry)
                return
        self._send_error_body(
            record, 404, f"The model '{model_id}' does not exist.", code="model_not_found"
        )

    def _begin(self, record: RecordedRequest, endpoint: Endpoint) -> Step | None:
        """Pick the step, apply its delay/reset/error; return it if a body is still due."""
        step = self._provider._next_step(endpoint, record.model)
        self._provider._update(record, step=step)
        if not self._wait(step.delay, record):
            return None
        if step.reset:
            self._reset()
            return None
        if step.raw_body is not None:
            stream = record.stream and step.status < 400
            content_type = "text/event-stream; charset=utf-8" if stream else "application/json"
            self._send_raw(record, step.status, step.raw_body.encode(), content_type, step)
            return None
        if step.status >= 400:
            self._send_step_error(record, step)
            return None
        return step

    def _chat(self, record: RecordedRequest) -> None:
        if not isinstance(record.body, dict):
            self._send_error_body(record, 400, "A JSON object body is required.")
            return
        step = self._begin(record, "chat")
        if step is None:
            return
        if step.malformed and not record.stream:
            self._send_raw(record, 200, _MALFORMED_JSON.encode(), "application/json", step)
            return
        model = record.model or "gpt-4o"
        text = step.text
        if text is None and not step.tool_calls:
            text = self._provider._default.text or DEFAULT_TEXT
        tool_calls = [
            _tool_call(tc, i, record.request_id) for i, tc in enumerate(step.tool_calls or [])
        ]
        finish = step.finish_reason or ("tool_calls" if tool_calls else "stop")
        if step.usage is not None:
            prompt_tokens, completion_tokens = step.usage
        else:
            prompt_tokens = _count_words(record.messages)
            completion_tokens = _count_words(text or "") + sum(
                _count_words(tc["function"]["arguments"]) for tc in tool_calls
            )
        usage = {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
            "prompt_tokens_details": {"cached_tokens": step.cached_tokens, "audio_tokens": 0},
            "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0},
        }
        head = {
            "id": f"chatcmpl-{record.request_id}",
            "created": int(time.time()),
            "model": model,
            "system_fingerprint": "fp_fake",
        }
        if record.stream:
            self._stream(record, step, head, text, tool_calls, finish, usage)
            return
        message: dict[str, Any] = {"role": "assistant", "content": text, "refusal": None}
        if tool_calls:
            message["tool_calls"] = tool_calls
        completion = {
            **head,
            "object": "chat.completion",
            "choices": [
                {"index": 0, "message": message, "logprobs": None, "finish_reason": finish}
            ],
            "usage": usage,
        }
        self._send_json(record, 200, completion, step)

    def _stream(
        self,
        record: RecordedRequest,
        step: Step,
        head: dict[str, Any],
        text: str | None,
        tool_calls: list[dict[str, Any]],
        finish: str,
        usage: dict[str, Any],
    ) -> None:
        def chunk(delta: dict[str, Any], finish_reason: str | None = None) -> str:
            choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}
            return json.dumps({**head, "object": "chat.completion.chunk", "choices": [choice]})

        events: list[str] = [chunk({"role": "assistant", "content": "" if text else None})]
        if step.malformed:
            events.append('{"id": "chatcmpl-broken", "choices": [{"delta": ')
        events.extend(chunk({"content": piece}) for piece in re.findall(r"\S+\s*|\s+", text or ""))
        for i, tc in enumerate(tool_calls):
            first = {**tc, "index": i, "function": {"name": tc["function"]["name"]}}
            first["function"]["arguments"] = ""
            events.append(chunk({"tool_calls": [first]}))
            args: str = tc["function"]["arguments"]
            half = len(args) // 2
            for piece in (args[:half], args[half:]):
                if piece:
                    delta = {"tool_calls": [{"index": i, "function": {"arguments": piece}}]}
                    events.append(chunk(delta))
        events.append(chunk({}, finish))
        options = record.body.get("stream_options") if isinstance(record.body, dict) else None
        if isinstance(options, dict) and options.get("include_usage"):
            events.append(
                json.dumps(
                    {**head, "object": "chat.completion.chunk", "choices": [], "usage": usage}
                )
            )
        events.append("[DONE]")
        reset_at = max(2, len(events) // 2) if step.reset_mid_stream else None

        try:
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream; charset=utf-8")
            self.send_header("Cache-Control", "no-cache")
            self.send_header("Transfer-Encoding", "chunked")
            self._common_headers(record, step)
            self.end_headers()
        except OSError:
            self._provider._update(record, client_disconnected=True)
            self.close_connection = True
            return
        self._provider._update(record, status=200)
        for i, event in enumerate(events):
            if i > 0 and not self._wait(step.chunk_delay, record):
                return
            if i == reset_at:
                # Let the client read what was sent: an RST can discard unread data.
                if self._wait(_RESET_GRACE, record):
                    self._reset()
                return
            if not self._write_chunk(f"data: {event}\n\n".encode(), record):
                return
        self._write_chunk(b"", record)

    def _embeddings(self, record: RecordedRequest) -> None:
        body = record.body
        if not isinstance(body, dict) or "input" not in body:
            self._send_error_body(record, 400, "'input' is a required property.")
            return
        step = self._begin(record, "embeddings")
        if step is None:
            return
        if step.malformed:
            self._send_raw(record, 200, _MALFORMED_JSON.encode(), "application/json", step)
            return
        raw_input = body["input"]
        if isinstance(raw_input, str) or (
            isinstance(raw_input, list) and raw_input and isinstance(raw_input[0], int)
        ):
            raw_input = [raw_input]
        inputs = [i if isinstance(i, str) else json.dumps(i) for i in raw_input]
        dims = body.get("dimensions")
        dims = dims if isinstance(dims, int) and dims > 0 else EMBEDDING_DIMS
        as_base64 = body.get("encoding_format") == "base64"
        data: list[dict[str, Any]] = []
        for index, text in enumerate(inputs):
            vector = fake_embedding(text, dims)
            embedding: Any = (
                base64.b64encode(struct.pack(f"<{dims}f", *vector)).decode()
                if as_base64
                else vector
            )
            data.append({"object": "embedding", "index": index, "embedding": embedding})
        tokens = step.usage[0] if step.usage is not None else _count_words(inputs)
        response = {
            "object": "list",
            "data": data,
            "model": record.model or "text-embedding-3-small",
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
        }
        self._send_json(record, 200, response, step)

    # -- admin endpoints -------------------------------------------------------------

    def _admin(self, method: str, path: str, body: Any, bad_json: bool) -> None:
        provider = self._provider
        try:
            if bad_json:
                raise ValueError("body is not valid JSON")
            if method == "POST" and path == "/_fake/script":
                if not isinstance(body, dict) or not isinstance(body.get("steps"), list):
                    raise ValueError('expected {"steps": [...], "model"?, "endpoint"?}')
                steps = [Step.from_dict(s) for s in body["steps"]]
                endpoint = body.get("endpoint", "chat")
                if endpoint not in _ENDPOINTS:
                    raise ValueError(f"endpoint must be one of {_ENDPOINTS}")
                provider.script(*steps, model=body.get("model"), endpoint=endpoint)
                self._send_admin(200, {"queued": len(steps)})
            elif method == "POST" and path == "/_fake/default":
                if not isinstance(body, dict) or not isinstance(body.get("step"), dict):
                    raise ValueError('expected {"step": {...}}')
                provider.set_default(Step.from_dict(body["step"]))
                self._send_admin(200, {"ok": True})
            elif method == "GET" and path == "/_fake/requests":
                self._send_admin(200, {"requests": [r.to_dict() for r in provider.requests]})
            elif method == "POST" and path == "/_fake/reset":
                provider.reset()
                self._send_admin(200, {"ok": True})
            else:
                self._send_admin(404, _error_body(f"Unknown admin URL: {method} {path}."))
        except (ValueError, TypeError) as exc:
            self._send_admin(400, _error_body(str(exc)))

    def _send_admin(self, status: int, obj: Any) -> None:
        data = json.dumps(obj).encode()
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
        except OSError:
            self.close_connection = True

    # -- low-level I/O ---------------------------------------------------------------

    def _send_step_error(self, record: RecordedRequest, step: Step) -> None:
        default_type, default_code = _DEFAULT_ERROR.get(
            step.status, ("server_error" if step.status >= 500 else "invalid_request_error", None)
        )
        message = step.error_message or _default_message(step)
        body = _error_body(
            message,
            step.error_type or default_type,
            step.error_code if step.error_code is not None else default_code,
        )
        self._send_json(record, step.status, body, step)

    def _send_error_body(
        self, record: RecordedRequest, status: int, message: str, *, code: str | None = None
    ) -> None:
        self._send_json(record, status, _error_body(message, "invalid_request_error", code))

    def _send_json(
        self, record: RecordedRequest, status: int, obj: Any, step: Step | None = None
    ) -> None:
        self._send_raw(record, status, json.dumps(obj).encode(), "application/json", step)

    def _send_raw(
        self,
        record: RecordedRequest,
        status: int,
        data: bytes,
        content_type: str,
        step: Step | None = None,
    ) -> None:
        try:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(data)))
            self._common_headers(record, step)
            self.end_headers()
            self.wfile.write(data)
        except OSError:
            self._provider._update(record, client_disconnected=True)
            self.close_connection = True
            return
        self._provider._update(record, status=status)

    def _common_headers(self, record: RecordedRequest, step: Step | None) -> None:
        self.send_header("x-request-id", record.request_id)
        if step is None:
            return
        if step.retry_after is not None:
            self.send_header("Retry-After", f"{step.retry_after:g}")
        if step.retry_after_ms is not None:
            self.send_header("retry-after-ms", str(step.retry_after_ms))
        for name, value in step.headers.items():
            self.send_header(name, value)

    def _write_chunk(self, data: bytes, record: RecordedRequest) -> bool:
        """Write one HTTP/1.1 chunk (empty data: the terminating chunk)."""
        try:
            self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        except OSError:
            self._provider._update(record, client_disconnected=True)
            self.close_connection = True
            return False
        return True

    def _wait(self, seconds: float, record: RecordedRequest) -> bool:
        """Wait, watching the socket. False if the client hung up or the server stops."""
        stopping = self._provider._stopping
        deadline = time.monotonic() + seconds
        while True:
            if stopping.is_set():
                self.close_connection = True
                return False
            remaining = deadline - time.monotonic()
            if self._client_gone(max(0.0, min(_POLL_INTERVAL, remaining))):
                # stop() shuts sockets down after setting `stopping`: not a client hang-up.
                if not stopping.is_set():
                    self._provider._update(record, client_disconnected=True)
                self.close_connection = True
                return False
            if remaining <= 0:
                return True

    def _client_gone(self, timeout: float) -> bool:
        """Whether the peer closed the connection (polls for up to ``timeout`` seconds)."""
        sock = self.connection
        try:
            readable, _, _ = select.select([sock], [], [], timeout)
            if not readable:
                return False
            if sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) == b"":
                return True
        except BlockingIOError:
            return False
        except (OSError, ValueError):
            return True
        # The client sent more bytes (e.g. a pipelined request): it is still there.
        self._provider._stopping.wait(timeout)
        return False

    def _reset(self) -> None:
        """Abort the connection with a TCP RST (SO_LINGER 0) instead of a FIN."""
        self.close_connection = True
        sock = self.connection
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.rfile.close()  # drop the makefile() reference so close() really closes
        sock.close()


def _tool_call(spec: Mapping[str, Any], index: int, request_id: str) -> dict[str, Any]:
    arguments = spec.get("arguments", {})
    if not isinstance(arguments, str):
        arguments = json.dumps(arguments)
    return {
        "id": spec.get("id") or f"call_{request_id}_{index}",
        "type": "function",
        "function": {"name": str(spec["name"]), "arguments": arguments},
    }


def _error_body(
    message: str, error_type: str = "invalid_request_error", code: str | None = None
) -> dict[str, Any]:
    return {"error": {"message": message, "type": error_type, "param": None, "code": code}}


def _default_message(step: Step) -> str:
    if step.error_code == "insufficient_quota" or step.status == 402:
        return "You exceeded your current quota, please check your plan and billing details."
    if step.status == 429:
        return "Rate limit reached for requests (fake provider)."
    try:
        return f"{HTTPStatus(step.status).phrase} (fake provider)."
    except ValueError:
        return f"HTTP {step.status} (fake provider)."


def main(argv: Sequence[str] | None = None) -> int:
    """Run the fake provider in the foreground until Ctrl-C or SIGTERM."""
    parser = argparse.ArgumentParser(
        prog="fake_provider", description="OpenAI-compatible fake LLM provider for tests/demos."
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8765, help="0 picks a free port")
    parser.add_argument("--delay", type=float, default=0.0, help="seconds before each answer")
    parser.add_argument("--chunk-delay", type=float, default=0.0, help="seconds between chunks")
    parser.add_argument("--text", default=None, help=f"answer text (default: {DEFAULT_TEXT!r})")
    parser.add_argument(
        "--model", action="append", dest="models", help="model to list (repeatable)"
    )
    parser.add_argument("--log-level", default="INFO")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    default = Step(text=args.text, delay=args.delay, chunk_delay=args.chunk_delay)
    provider = FakeProvider(
        args.host, args.port, default=default, models=args.models or ("gpt-4o", "gpt-4o-mini")
    )
    try:
        provider.start()
    except OSError as exc:
        logger.error("fake provider: cannot listen on %s:%s: %s", args.host, args.port, exc)
        return 1
    done = threading.Event()

    def _on_signal(signum: int, frame: FrameType | None) -> None:
        done.set()

    signal.signal(signal.SIGTERM, _on_signal)
    logger.info(
        "fake provider: base_url %s (admin under %s/_fake/)", provider.base_url, provider.url
    )
    try:
        while not done.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        provider.stop()
    logger.info("fake provider: stopped")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
