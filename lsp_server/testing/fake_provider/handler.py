"""The fake provider's HTTP side: the threading server and its request handler.

`FakeServer` tracks each connection's thread with its `FakeProvider` so ``stop()`` can
abort and join them. `FakeHandler` routes the OpenAI endpoints and the ``/_fake/`` admin
endpoints, plays the scripted `Step` (delay, reset, error, malformed or raw body) and
writes the bodies built by `lsp_server.testing.fake_provider.responses`.
"""

from __future__ import annotations

import contextlib
import json
import logging
import select
import socket
import socketserver
import struct
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, cast
from urllib.parse import unquote, urlsplit

from lsp_server.testing.fake_provider.responses import (
    MALFORMED_JSON,
    chat_answer,
    completion_body,
    embeddings_body,
    error_body,
    model_list,
    step_error_body,
    stream_events,
)
from lsp_server.testing.fake_provider.state import ProviderState
from lsp_server.testing.fake_provider.steps import (
    ENDPOINTS,
    POLL_INTERVAL,
    RESET_GRACE,
    Endpoint,
    RecordedRequest,
    Step,
)

logger = logging.getLogger(__name__)


class FakeServer(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], provider: ProviderState) -> None:
        self.provider = provider
        super().__init__(address, FakeHandler)

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


class FakeHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "FakeProvider/1.0"
    # The headers and the body are two writes: with Nagle's algorithm the body waits for
    # the client's delayed ACK of the headers, 40 ms on Linux, which made the "0 ms"
    # provider answer in 44 ms (a real provider's server sends no such pause).
    disable_nagle_algorithm = True

    @property
    def _provider(self) -> ProviderState:
        return cast(FakeServer, self.server).provider

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
                models = model_list(provider.models)
                self._send_json(record, 200, {"object": "list", "data": models})
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

    def _model(self, record: RecordedRequest, model_id: str) -> None:
        for entry in model_list(self._provider.models):
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
            self._send_json(record, step.status, step_error_body(step), step)
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
            self._send_raw(record, 200, MALFORMED_JSON.encode(), "application/json", step)
            return
        answer = chat_answer(record, step, self._provider._default.text)
        if record.stream:
            self._stream(record, step, stream_events(record, step, answer))
            return
        if step.truncate_stream:  # announce the whole body, send half of it, close
            data = json.dumps(completion_body(answer)).encode()
            self._send_raw(record, 200, data[: len(data) // 2], "application/json", step, len(data))
            self.close_connection = True
            return
        self._send_json(record, 200, completion_body(answer), step)

    def _stream(self, record: RecordedRequest, step: Step, events: list[str]) -> None:
        reset_at = max(2, len(events) // 2) if step.reset_mid_stream else None
        end_at = max(2, len(events) // 2) if step.truncate_stream else None
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
                if self._wait(RESET_GRACE, record):
                    self._reset()
                return
            if i == end_at:
                break
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
            self._send_raw(record, 200, MALFORMED_JSON.encode(), "application/json", step)
            return
        self._send_json(record, 200, embeddings_body(record, step), step)

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
                if endpoint not in ENDPOINTS:
                    raise ValueError(f"endpoint must be one of {ENDPOINTS}")
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
                self._send_admin(404, error_body(f"Unknown admin URL: {method} {path}."))
        except (ValueError, TypeError) as exc:
            self._send_admin(400, error_body(str(exc)))

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

    def _send_error_body(
        self, record: RecordedRequest, status: int, message: str, *, code: str | None = None
    ) -> None:
        self._send_json(record, status, error_body(message, "invalid_request_error", code))

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
        length: int | None = None,
    ) -> None:
        try:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(length or len(data)))
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
            if self._client_gone(max(0.0, min(POLL_INTERVAL, remaining))):
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
