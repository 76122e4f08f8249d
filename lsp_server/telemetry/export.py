"""Where traces and metrics go: nowhere (the default), the console, a JSON-lines file, OTLP/HTTP.

`configure(ExportConfig)` builds an SDK `TracerProvider` and `MeterProvider` for the
chosen exporter and hands their tracer and meter to `tracing.install` and
`metrics.install`. With ``exporter="none"`` nothing of the SDK is imported or set up:
a server that exports nothing pays nothing. The providers are ours (not installed as
OpenTelemetry's globals), so a settings change swaps them: the old ones are flushed
and shut down.

- ``console``: the SDK's console exporters, written to stderr (stdout is the LSP stream).
- ``file``: one JSON object per line per span (``"signal": "span"``) and per metrics
  export (``"signal": "metrics"``), appended to a private (0600) file.
- ``otlp``: the official OTLP/HTTP exporters (``opentelemetry-exporter-otlp-proto-http``),
  configured by the standard variables: ``OTEL_EXPORTER_OTLP_ENDPOINT`` (or the
  per-signal ``..._TRACES_ENDPOINT`` / ``..._METRICS_ENDPOINT``), headers, timeout,
  compression. The endpoint is where data goes, so it is read from the environment
  only, never from a repository's settings.

``OTEL_SERVICE_NAME`` and ``OTEL_RESOURCE_ATTRIBUTES`` name the resource (default
service name ``llm-lsp``). Spans leave through a `BatchSpanProcessor`
(``OTEL_BSP_*``) and metrics through a `PeriodicExportingMetricReader`
(``OTEL_METRIC_EXPORT_INTERVAL``): a request never waits for an export. A dead
collector costs one warning (`_Quiet`), and one info line when it answers again.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lsp_server.telemetry import metrics, tracing

if TYPE_CHECKING:
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.trace import TracerProvider

logger = logging.getLogger(__name__)

EXPORTERS = ("none", "console", "file", "otlp")
SERVICE_NAME = "llm-lsp"
SHUTDOWN_TIMEOUT_MS = 3000


@dataclass(frozen=True, slots=True)
class ExportConfig:
    """What to export where (`settings.telemetry` turns into one of these)."""

    exporter: str = "none"
    """One of `EXPORTERS`; anything else exports nothing (with a warning)."""
    file: Path | None = None
    record_content: bool = False
    version: str = ""


class _Active:
    def __init__(self, config: ExportConfig, traces: TracerProvider, meters: MeterProvider):
        self.config = config
        self.traces = traces
        self.meters = meters

    def shutdown(self) -> None:
        for provider in (self.traces, self.meters):
            try:
                provider.force_flush(SHUTDOWN_TIMEOUT_MS)
                provider.shutdown()
            except Exception as exc:  # never fail a shutdown over telemetry
                logger.warning("telemetry shutdown: %s", exc)


_lock = threading.Lock()
_active: _Active | None = None


def active_config() -> ExportConfig:
    """The configuration in force ("none" when nothing is exported)."""
    current = _active
    return current.config if current is not None else ExportConfig()


def configure(config: ExportConfig) -> None:
    """Export as ``config`` says from now on; the previous exporters are flushed and closed.

    Never raises: an exporter that cannot be built is logged and tracing stays off.
    """
    global _active
    with _lock:
        if config == active_config():
            return
        old, _active = _active, None
        tracing.install(None)
        metrics.install(None)
        if old is not None:
            old.shutdown()
        if config.exporter == "none":
            return
        if config.exporter not in EXPORTERS:
            logger.warning("telemetry: unknown exporter %r; exporting nothing", config.exporter)
            return
        try:
            _active = _build(config)
        except Exception as exc:
            logger.warning("telemetry: cannot export to %s: %s", config.exporter, exc)
            return
        tracing.install(
            _active.traces.get_tracer("lsp_server", config.version),
            record_content=config.record_content,
        )
        metrics.install(_active.meters.get_meter("lsp_server", config.version))
        logger.info("telemetry: exporting traces and metrics to %s", _where(config))


def shutdown() -> None:
    """Flush and stop exporting (at server shutdown)."""
    configure(ExportConfig())


def _where(config: ExportConfig) -> str:
    if config.exporter == "file":
        return str(config.file)
    if config.exporter == "otlp":
        return os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT", "the OTLP endpoint")
    return "stderr"


def _build(config: ExportConfig) -> _Active:
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    attrs: dict[str, str] = {"service.version": config.version} if config.version else {}
    if not os.environ.get("OTEL_SERVICE_NAME"):
        attrs["service.name"] = SERVICE_NAME
    resource = Resource.create(attrs)
    span_exporter, metric_exporter = _exporters(config)
    traces = TracerProvider(resource=resource)
    traces.add_span_processor(BatchSpanProcessor(span_exporter))
    reader = PeriodicExportingMetricReader(metric_exporter)
    meters = MeterProvider(resource=resource, metric_readers=[reader])
    return _Active(config, traces, meters)


def _exporters(config: ExportConfig) -> tuple[Any, Any]:
    from lsp_server.telemetry.sinks import JsonLinesFile, quiet_metrics, quiet_spans

    if config.exporter == "console":
        from opentelemetry.sdk.metrics.export import ConsoleMetricExporter
        from opentelemetry.sdk.trace.export import ConsoleSpanExporter

        return ConsoleSpanExporter(out=sys.stderr), ConsoleMetricExporter(out=sys.stderr)
    if config.exporter == "file":
        if config.file is None:
            raise ValueError("no telemetry file configured")
        sink = JsonLinesFile(config.file)
        return quiet_spans(sink.spans(), str(config.file)), quiet_metrics(
            sink.metrics(), str(config.file)
        )
    from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    # The exporters log every failed export themselves; `_Quiet` logs one line instead.
    logging.getLogger("opentelemetry.exporter.otlp").setLevel(logging.CRITICAL)
    where = _where(config)
    return quiet_spans(OTLPSpanExporter(), where), quiet_metrics(OTLPMetricExporter(), where)
