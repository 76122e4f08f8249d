"""`FakeProvider`: start and stop the fake server, script its steps, wait for requests.

The server and its request handler live in `lsp_server.testing.fake_provider.handler`;
they call back into the provider's private helpers (``_next_step``, ``_record``,
``_update``, ``_track``) under the provider's lock.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import socket
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from types import TracebackType
from typing import Any, Self, TypeVar

from lsp_server.testing.fake_provider.handler import FakeServer
from lsp_server.testing.fake_provider.steps import (
    ENDPOINTS,
    POLL_INTERVAL,
    Endpoint,
    RecordedRequest,
    Step,
)

logger = logging.getLogger(__name__)

_T = TypeVar("_T")


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
        self._server: FakeServer | None = None
        self._serve_thread: threading.Thread | None = None
        self._handler_threads: set[threading.Thread] = set()
        self._connections: set[socket.socket] = set()

    # -- lifecycle -------------------------------------------------------------------

    def start(self) -> Self:
        """Bind and serve in a background thread. Returns self."""
        if self._server is not None:
            raise RuntimeError("FakeProvider already started")
        self._stopping.clear()
        server = FakeServer((self._host, self._requested_port), self)
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
        if endpoint not in ENDPOINTS:
            raise ValueError(f"endpoint must be one of {ENDPOINTS}, not {endpoint!r}")
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
            await asyncio.sleep(POLL_INTERVAL)

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
