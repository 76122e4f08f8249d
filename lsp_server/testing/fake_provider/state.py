"""What the fake provider's HTTP side needs of its `FakeProvider`.

The provider builds the HTTP server (`handler.FakeServer`); the server sees
the provider only through this protocol, so neither module imports the other
both ways.
"""

from __future__ import annotations

import socket
import threading
from typing import Any, Protocol

from lsp_server.testing.fake_provider.steps import Endpoint, RecordedRequest, Step


class ProviderState(Protocol):
    """The scripting and recording state one `FakeProvider` shares with its handlers."""

    models: tuple[str, ...]
    _default: Step
    _stopping: threading.Event

    @property
    def requests(self) -> list[RecordedRequest]: ...

    def script(self, *steps: Step, model: str | None = None, endpoint: Endpoint = "chat") -> None:
        """Queue steps."""

    def set_default(self, step: Step) -> None:
        """The step used when none is queued."""

    def reset(self) -> None:
        """Clear steps, the default override and the recordings."""

    def _next_step(self, endpoint: Endpoint, model: str | None) -> Step: ...

    def _record(
        self, method: str, path: str, headers: dict[str, str], auth: str | None, body: Any
    ) -> RecordedRequest: ...

    def _update(self, record: RecordedRequest, **changes: Any) -> None: ...

    def _track(self, thread: threading.Thread, conn: socket.socket, add: bool) -> None: ...
