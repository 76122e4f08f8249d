"""`llmLsp.doctor`: a tiny real prompt to every configured provider, reported in the editor."""

from __future__ import annotations

from typing import Any

from lsprotocol import types

from lsp_server.features.base import FeatureServer


async def run_doctor_command(ls: FeatureServer, args: list[Any]) -> dict[str, Any]:
    """The report goes to the log, its verdict to a message; `ok` says whether all answered."""
    from lsp_server.llm.doctor import format_report, run_doctor

    engine = ls.engine
    if engine is None:
        return {"ok": False}
    report = await run_doctor(engine.settings.llm, service=engine.llm, usage_log=engine.usage_log)
    text = format_report(report)
    ls.window_log_message(types.LogMessageParams(type=types.MessageType.Info, message=text))
    verdict = text.strip().splitlines()[-1]
    kind = types.MessageType.Info if report.ok else types.MessageType.Error
    ls.window_show_message(types.ShowMessageParams(type=kind, message=verdict))
    return {"ok": report.ok, "report": text}
