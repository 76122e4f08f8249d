"""The `settings.telemetry` group: where traces and metrics go, and whether text is recorded.

Declared like every other group (see `settings_spec.setting`). Every setting here is
`Trust.USER`: each chooses where data goes (a file, a collector) or what it holds
(prompt text), which a repository must not decide. The OTLP endpoint is not a setting
at all: the standard ``OTEL_EXPORTER_OTLP_ENDPOINT`` variable (environment only) names
it, and when it is set the exporter defaults to ``otlp``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from lsp_server.settings_spec import Trust, setting
from lsp_server.settings_values import parse_bool, parse_path, parse_telemetry_exporter

USER = Trust.USER

_OTEL_NAMES = {"otlp": "otlp", "console": "console", "none": "none"}


def default_exporter(env: Mapping[str, str]) -> str:
    """``OTEL_TRACES_EXPORTER`` if it names one we have, else ``otlp`` when an OTLP
    endpoint is set in the environment, else ``none``."""
    named = env.get("OTEL_TRACES_EXPORTER", "").strip().lower()
    if named in _OTEL_NAMES:
        return _OTEL_NAMES[named]
    if env.get("OTEL_EXPORTER_OTLP_ENDPOINT") or env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"):
        return "otlp"
    return "none"


def _telemetry_file(env: Mapping[str, str]) -> Path:
    base = env.get("XDG_STATE_HOME") or str(Path(env.get("HOME") or Path.home()) / ".local/state")
    return Path(base) / "llm-lsp" / "telemetry.jsonl"


@dataclass(frozen=True)
class TelemetrySettings:
    """Traces and metrics: the exporter, its file, and the content opt-in."""

    exporter: str = setting(
        key="telemetryExporter",
        env="LLM_LSP_TELEMETRY_EXPORTER",
        parse=parse_telemetry_exporter,
        doc="where traces and metrics go: `none`, `console` (stderr), `file` (JSON lines) "
        "or `otlp` (OTLP/HTTP to `OTEL_EXPORTER_OTLP_ENDPOINT`)",
        trust=USER,
        env_default=default_exporter,
        shown_default="`none` (`otlp` when `OTEL_EXPORTER_OTLP_ENDPOINT` is set)",
    )
    file: Path = setting(
        key="telemetryFile",
        env="LLM_LSP_TELEMETRY_FILE",
        parse=parse_path,
        doc="the JSON-lines file of the `file` exporter",
        trust=USER,
        env_default=_telemetry_file,
        shown_default="`~/.local/state/llm-lsp/telemetry.jsonl`",
    )
    record_content: bool = setting(
        False,
        key="telemetryRecordContent",
        env="LLM_LSP_TELEMETRY_RECORD_CONTENT",
        parse=parse_bool,
        doc="put prompt and answer text on provider spans (secrets scrubbed)",
        trust=USER,
    )
