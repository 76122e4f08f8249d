"""A tiny OTLP/HTTP receiver on 127.0.0.1 for tests: decodes what the server exports.

`OtlpReceiver` answers ``POST /v1/traces`` and ``POST /v1/metrics`` (protobuf bodies,
gzip or not) with 200 and keeps what it decoded with `opentelemetry-proto`: spans as
`ReceivedSpan` (ids in hex, attributes as Python values) and metric names with their
data points. Nothing here belongs to the server: it is what a collector would see.
"""

from __future__ import annotations

import asyncio
import gzip
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status

KINDS = {
    Span.SPAN_KIND_INTERNAL: "internal",
    Span.SPAN_KIND_SERVER: "server",
    Span.SPAN_KIND_CLIENT: "client",
}


def value(v: AnyValue) -> Any:
    """A Python value for an OTLP attribute value."""
    which = v.WhichOneof("value")
    if which == "array_value":
        return [value(x) for x in v.array_value.values]
    return getattr(v, which) if which else None


def attributes(kvs: Iterator[KeyValue] | Any) -> dict[str, Any]:
    """OTLP key-values as a dict."""
    return {kv.key: value(kv.value) for kv in kvs}


@dataclass
class ReceivedSpan:
    """One exported span, as a collector decodes it."""

    name: str
    kind: str
    trace_id: str
    span_id: str
    parent_id: str
    attributes: dict[str, Any]
    status: str  # "unset" | "ok" | "error"
    events: list[tuple[str, dict[str, Any]]]
    resource: dict[str, Any]
    start: int
    children: list[ReceivedSpan] = field(default_factory=list)


@dataclass
class ReceivedMetric:
    """One metric of one export: its name, unit and its points' attributes and values."""

    name: str
    unit: str
    points: list[tuple[dict[str, Any], float]]


class OtlpReceiver:
    """An OTLP/HTTP collector stand-in; use as a context manager."""

    def __init__(self) -> None:
        self.spans: list[ReceivedSpan] = []
        self.metrics: list[ReceivedMetric] = []
        self.posts: list[str] = []
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if self.headers.get("Content-Encoding") == "gzip":
                    body = gzip.decompress(body)
                receiver._receive(self.path, body)
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                return

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def endpoint(self) -> str:
        """The base URL for ``OTEL_EXPORTER_OTLP_ENDPOINT``."""
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def __enter__(self) -> OtlpReceiver:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _receive(self, path: str, body: bytes) -> None:
        with self._lock:
            self.posts.append(path)
            if path == "/v1/traces":
                self._spans(body)
            elif path == "/v1/metrics":
                self._metrics(body)

    def _spans(self, body: bytes) -> None:
        request = ExportTraceServiceRequest.FromString(body)
        for rs in request.resource_spans:
            resource = attributes(rs.resource.attributes)
            for ss in rs.scope_spans:
                for s in ss.spans:
                    status = {Status.STATUS_CODE_OK: "ok", Status.STATUS_CODE_ERROR: "error"}
                    self.spans.append(
                        ReceivedSpan(
                            name=s.name,
                            kind=KINDS.get(s.kind, str(s.kind)),
                            trace_id=s.trace_id.hex(),
                            span_id=s.span_id.hex(),
                            parent_id=s.parent_span_id.hex(),
                            attributes=attributes(s.attributes),
                            status=status.get(s.status.code, "unset"),
                            events=[(e.name, attributes(e.attributes)) for e in s.events],
                            resource=resource,
                            start=s.start_time_unix_nano,
                        )
                    )

    def _metrics(self, body: bytes) -> None:
        request = ExportMetricsServiceRequest.FromString(body)
        for rm in request.resource_metrics:
            for sm in rm.scope_metrics:
                for m in sm.metrics:
                    kind = m.WhichOneof("data")
                    points: list[tuple[dict[str, Any], float]] = []
                    for p in getattr(m, kind).data_points if kind else ():
                        number = (
                            p.sum
                            if kind in ("histogram", "exponential_histogram")
                            else (p.as_double if p.HasField("as_double") else p.as_int)
                        )
                        points.append((attributes(p.attributes), float(number)))
                    self.metrics.append(ReceivedMetric(m.name, m.unit, points))

    def traces(self) -> dict[str, list[ReceivedSpan]]:
        """Spans by trace id, each span's children filled in (ordered by start)."""
        with self._lock:
            spans = list(self.spans)
        by_id = {s.span_id: s for s in spans}
        for s in spans:
            s.children = []
        for s in sorted(spans, key=lambda s: s.start):
            parent = by_id.get(s.parent_id)
            if parent is not None:
                parent.children.append(s)
        out: dict[str, list[ReceivedSpan]] = {}
        for s in spans:
            out.setdefault(s.trace_id, []).append(s)
        return out

    async def wait_for(self, found: Callable[[], Any], within: float = 60.0) -> Any:
        """Poll ``found()`` until it returns something truthy (or fail after ``within`` s)."""
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            result = found()
            if result:
                return result
            await asyncio.sleep(0.05)
        raise AssertionError(f"not received within {within} s; posts: {self.posts}")
