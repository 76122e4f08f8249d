"""Exporter pieces of our own: a JSON-lines file, and wrappers that fail quietly.

Imported only once an exporter is configured (it imports the OpenTelemetry SDK).
`JsonLinesFile` appends one JSON object per line (``{"signal": "span", ...}`` in the
SDK's own span JSON, ``{"signal": "metrics", ...}`` per metrics export) with one
``write(2)`` on an ``O_APPEND`` file opened 0600, like the usage log. `quiet_spans`
and `quiet_metrics` wrap an exporter so that an unreachable collector (or a full
disk) costs one warning while it lasts and one info line when it recovers; an
exception from the wrapped exporter becomes a failed export, never a crash of the
export thread.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from opentelemetry.sdk.metrics.export import MetricExporter, MetricExportResult, MetricsData
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from lsp_server.storage import private_dir

logger = logging.getLogger(__name__)


class _Outage:
    """Logs the first failure of a run of failures, and the recovery."""

    def __init__(self, where: str) -> None:
        self.where = where
        self.failing = False
        self._lock = threading.Lock()

    def result(self, ok: bool, detail: str = "") -> None:
        with self._lock:
            if not ok and not self.failing:
                self.failing = True
                why = f": {detail}" if detail else ""
                logger.warning(
                    "telemetry export to %s failed%s (retrying quietly)", self.where, why
                )
            elif ok and self.failing:
                self.failing = False
                logger.info("telemetry export to %s works again", self.where)


class JsonLinesFile:
    """Appends JSON lines to ``path`` (made private); one file for spans and metrics."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()

    def append(self, lines: Sequence[str]) -> None:
        """Write ``lines`` at once; raises OSError (the wrapper logs it)."""
        if not lines:
            return
        data = "".join(line + "\n" for line in lines).encode("utf-8")
        with self._lock:
            private_dir(self.path.parent, own=False)
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            try:
                os.write(fd, data)
            finally:
                os.close(fd)

    def spans(self) -> SpanExporter:
        """A span exporter writing to this file."""
        return _FileSpans(self)

    def metrics(self) -> MetricExporter:
        """A metric exporter writing to this file."""
        return _FileMetrics(self)


class _FileSpans(SpanExporter):
    def __init__(self, sink: JsonLinesFile) -> None:
        self.sink = sink

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        lines = [
            json.dumps({"signal": "span", **json.loads(s.to_json(indent=None))}, sort_keys=True)
            for s in spans
        ]
        self.sink.append(lines)
        return SpanExportResult.SUCCESS


class _FileMetrics(MetricExporter):
    def __init__(self, sink: JsonLinesFile) -> None:
        super().__init__()
        self.sink = sink

    def export(
        self, metrics_data: MetricsData, timeout_millis: float = 10_000, **kwargs: Any
    ) -> MetricExportResult:
        body = json.loads(metrics_data.to_json(indent=None))
        self.sink.append([json.dumps({"signal": "metrics", **body}, sort_keys=True)])
        return MetricExportResult.SUCCESS

    def force_flush(self, timeout_millis: float = 10_000) -> bool:
        return True

    def shutdown(self, timeout_millis: float = 30_000, **kwargs: Any) -> None:
        return None


class _QuietSpans(SpanExporter):
    def __init__(self, inner: SpanExporter, where: str) -> None:
        self.inner = inner
        self.outage = _Outage(where)

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        try:
            result = self.inner.export(spans)
        except Exception as exc:
            self.outage.result(False, type(exc).__name__)
            return SpanExportResult.FAILURE
        self.outage.result(result is SpanExportResult.SUCCESS)
        return result

    def shutdown(self) -> None:
        self.inner.shutdown()

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return self.inner.force_flush(timeout_millis)


class _QuietMetrics(MetricExporter):
    def __init__(self, inner: MetricExporter, where: str) -> None:
        super().__init__(
            preferred_temporality=inner._preferred_temporality,
            preferred_aggregation=inner._preferred_aggregation,
        )
        self.inner = inner
        self.outage = _Outage(where)

    def export(
        self, metrics_data: MetricsData, timeout_millis: float = 10_000, **kwargs: Any
    ) -> MetricExportResult:
        try:
            result = self.inner.export(metrics_data, timeout_millis=timeout_millis, **kwargs)
        except Exception as exc:
            self.outage.result(False, type(exc).__name__)
            return MetricExportResult.FAILURE
        self.outage.result(result is MetricExportResult.SUCCESS)
        return result

    def force_flush(self, timeout_millis: float = 10_000) -> bool:
        return self.inner.force_flush(timeout_millis)

    def shutdown(self, timeout_millis: float = 30_000, **kwargs: Any) -> None:
        self.inner.shutdown(timeout_millis=timeout_millis, **kwargs)


def quiet_spans(inner: SpanExporter, where: str) -> SpanExporter:
    """``inner`` failing with one log line per outage."""
    return _QuietSpans(inner, where)


def quiet_metrics(inner: MetricExporter, where: str) -> MetricExporter:
    """``inner`` failing with one log line per outage."""
    return _QuietMetrics(inner, where)
