"""Health in the editor: the ``llmLsp.health`` command, the ``llmLsp/health`` notification,
and ``llmLsp.showReport``.

The command answers `Engine.health` (today's spend, budget left when a budget is
set, each provider's breaker, the queue depth, and a ready-made ``status`` line) to
any client. The notification carries the same payload whenever it changes (checked
every `INTERVAL` seconds) to a client that asks for it with the experimental client
capability ``{"llmLspHealth": true}``: clients that never heard of it get nothing.

``llmLsp.showReport`` writes the usage dashboard (the last 7 days) into the cache
directory and asks the editor to open it (``window/showDocument``, external).
The dashboard is rendered by `lsp_server.report` (`report_file`); a build without
it answers ``{"ok": false}`` with a one-line message.
"""

from __future__ import annotations

import asyncio
import importlib
import io
import logging
from pathlib import Path
from typing import Any

from lsprotocol import types

from lsp_server.features.base import FeatureServer, warn
from lsp_server.settings import Settings
from lsp_server.storage import private_dir

logger = logging.getLogger(__name__)

CMD_HEALTH = "llmLsp.health"
CMD_SHOW_REPORT = "llmLsp.showReport"
NOTIFICATION = "llmLsp/health"
CAPABILITY = "llmLspHealth"
"""The key in ``capabilities.experimental`` by which a client asks for the notification."""
INTERVAL = 2.0
"""Seconds between looks at the health (a ``stat`` of the usage log, breaker states)."""
REPORT_SINCE = "7d"
NO_REPORT = "llm-lsp: the usage report is not available in this build"


def wants_notifications(capabilities: types.ClientCapabilities) -> bool:
    """Whether the client asked for ``llmLsp/health`` notifications."""
    experimental = capabilities.experimental
    return isinstance(experimental, dict) and bool(experimental.get(CAPABILITY))


async def run_health_command(ls: FeatureServer, args: list[Any]) -> dict[str, Any]:
    """``llmLsp.health``: the health payload (``ok`` false before ``initialize``)."""
    engine = ls.engine
    if engine is None:
        return {"ok": False}
    health = await asyncio.to_thread(engine.health)
    return {"ok": True, **health.to_json()}


async def publish_health(ls: FeatureServer, interval: float = INTERVAL) -> None:
    """Send ``llmLsp/health`` now and whenever the payload changes (until cancelled)."""
    last: dict[str, Any] | None = None
    while True:
        engine = ls.engine
        if engine is not None:
            payload = (await asyncio.to_thread(engine.health)).to_json()
            if payload != last:
                ls.lsp_protocol.notify(NOTIFICATION, payload)
                last = payload
        await asyncio.sleep(interval)


def report_file(settings: Settings) -> Path | None:
    """Render the dashboard of the last `REPORT_SINCE` to a file; None if this build has
    no report generator or it failed (the reason is logged)."""
    try:
        commands = importlib.import_module("lsp_server.report.commands")
    except ImportError:
        return None
    out = settings.storage.cache_dir / "report" / "report.html"
    private_dir(out.parent, own=True)
    stdout, err = io.StringIO(), io.StringIO()
    code = commands.write_report(settings.storage.usage_log, REPORT_SINCE, out, stdout, err)
    if code != 0:
        logger.warning("report not written: %s", err.getvalue().strip())
        return None
    return out


async def run_show_report(ls: FeatureServer, args: list[Any]) -> dict[str, Any]:
    """``llmLsp.showReport``: write the dashboard and ask the editor to open it."""
    engine = ls.engine
    if engine is None:
        return {"ok": False}
    path = await asyncio.to_thread(report_file, engine.settings)
    if path is None:
        warn(ls, NO_REPORT)
        return {"ok": False, "message": NO_REPORT}
    uri = path.as_uri()
    shown = await ls.window_show_document_async(
        types.ShowDocumentParams(uri=uri, external=True, take_focus=True)
    )
    return {"ok": bool(shown.success), "uri": uri}
