"""`llm-lsp report` and `llm-lsp cost`: read the usage log, write the answers.

Both read the log the settings name (or ``--log``), including its rotated files,
and write to the streams the CLI hands them; bad input (an unknown request id,
a malformed ``--since``, no log) is one line on ``err`` and a non-zero exit code.
"""

from __future__ import annotations

import logging
from datetime import datetime
from pathlib import Path
from typing import TextIO

from lsp_server.report.data import Figures, Request, load, parse_since
from lsp_server.report.html import render
from lsp_server.report.terminal import cost_breakdown, find, summary_table
from lsp_server.telemetry.usage import UsageLog

logger = logging.getLogger(__name__)


def _requests(
    log: Path | None, since: str | None, err: TextIO
) -> tuple[list[Request], datetime | None] | None:
    """The requests in the usage log (the settings' one unless ``log``) since ``since``."""
    if log is None:
        from lsp_server.settings import build_settings

        settings, _ = build_settings()
        log = settings.storage.usage_log
    try:
        start = parse_since(since) if since else None
    except ValueError as exc:
        err.write(f"llm-lsp: {exc}\n")
        return None
    usage = UsageLog(log)
    if not usage.files():
        err.write(f"llm-lsp: no usage log at {log}\n")
        return None
    return load(usage.read(), start), start


def write_report(log: Path | None, since: str, out: Path, stdout: TextIO, err: TextIO) -> int:
    """Write the HTML dashboard to ``out`` and the summary table to ``stdout``."""
    found = _requests(log, since, err)
    if found is None:
        return 2
    requests, start = found
    figures = Figures.build(requests, start)
    try:
        out.write_text(render(figures), encoding="utf-8")
    except OSError as exc:
        err.write(f"llm-lsp: cannot write {out}: {exc.strerror or exc}\n")
        return 2
    stdout.write(summary_table(figures) + f"\n\nreport: {out.resolve()}\n")
    return 0


def explain_cost(log: Path | None, request_id: str, stdout: TextIO, err: TextIO) -> int:
    """Write why request ``request_id`` (or the one id starting so) cost what it did."""
    found = _requests(log, None, err)
    if found is None:
        return 2
    matches = find(found[0], request_id)
    if not matches:
        err.write(f"llm-lsp: no request {request_id!r} in the usage log\n")
        return 1
    if len(matches) > 1:
        ids = ", ".join(r.request_id for r in matches[:10])
        err.write(f"llm-lsp: {request_id!r} is ambiguous: {ids}\n")
        return 1
    stdout.write(cost_breakdown(matches[0]) + "\n")
    return 0
