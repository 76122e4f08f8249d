"""The usage log written by a real server session, read back by `llm-lsp report` and `cost`.

A hover that retried once after a 429, the same hover again (a repeat), a fix the
editor applied (by command, and picked from the lightbulb), one the user typed over,
and the same lines explained twice (a regeneration): the log must hold
one attempt record per provider call, one summary per request and the quality signals;
the CLI tools, run as subprocesses on that log, must show the figures the log holds.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from lsprotocol import types

from lsp_server.llm.pricing import describe_price
from lsp_server.prompts import HOVER_PROMPT
from lsp_server.telemetry.variants import choose_variant
from lsp_server.testing.fake_provider import FakeProvider, Step
from tests.conftest import TEST_KEY, Session, copy_project, server_env, start_session

pytestmark = pytest.mark.asyncio(loop_scope="module")

APPLY_DISCOUNT = ("shop/basket.py", 18, 17)
STATS = "shop/stats.py"
GOOD_FIX = "    if not values:\n        return 0.0\n    return sum(values) / len(values)\n"
SHARE = "0.5"


def _cli(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "lsp_server", *args],
        env=server_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _propose_fix() -> dict[str, Any]:
    return {
        "name": "propose_fix",
        "arguments": {
            "path": STATS,
            "start_line": 6,
            "end_line": 6,
            "replacement": GOOD_FIX,
            "explanation": "Return 0.0 for an empty list.",
        },
    }


async def _fix_action(session: Session, uri: str) -> types.CodeAction:
    actions = await session.client.text_document_code_action_async(
        types.CodeActionParams(
            text_document=types.TextDocumentIdentifier(uri=uri),
            range=types.Range(types.Position(4, 0), types.Position(6, 0)),
            context=types.CodeActionContext(diagnostics=[]),
        )
    )
    assert actions is not None
    [fix] = [a for a in actions if isinstance(a, types.CodeAction) and a.title == "Fix this code"]
    return fix


async def _wait(session: Session, kind: str, count: int) -> list[dict[str, Any]]:
    deadline = time.monotonic() + 60.0
    while time.monotonic() < deadline:
        if len(session.records(kind)) >= count:
            break
        await asyncio.sleep(0.05)  # the log is written by another process: poll it
    return session.records(kind)


async def _session_log(tmp_path: Path, fake: FakeProvider) -> tuple[Path, Session]:
    env = server_env(
        tmp_path,
        OPENAI_API_KEY=TEST_KEY,
        OPENAI_BASE_URL=fake.base_url,
        LLM_LSP_PROMPT_VARIANT_SHARE=SHARE,
        LLM_RETRY_INITIAL_BACKOFF="0.05",
    )
    session = await start_session(copy_project(tmp_path), tmp_path, env=env)

    @session.client.feature(types.WORKSPACE_APPLY_EDIT)
    def apply_edit(params: types.ApplyWorkspaceEditParams) -> types.ApplyWorkspaceEditResult:
        return types.ApplyWorkspaceEditResult(applied=True)

    await session.warm(APPLY_DISCOUNT)  # jedi's cold start; its request is in the log too
    return Path(env["LLM_LSP_USAGE_LOG"]), session


async def test_session_log_feeds_report_and_cost(tmp_path: Path, fake: FakeProvider) -> None:
    log, session = await _session_log(tmp_path, fake)
    try:
        warm = len(session.records("request"))
        fake.script(
            Step(status=429, error_message="slow down", retry_after=0.05),
            Step(text="Applies the discount.", usage=(321, 45), cached_tokens=120),
            Step(text="Applies the discount, again.", usage=(300, 40)),
            Step(tool_calls=[_propose_fix()]),
        )
        assert await session.hover(*APPLY_DISCOUNT) is not None
        assert await session.hover(*APPLY_DISCOUNT) is not None
        result = await session.client.workspace_execute_command_async(
            types.ExecuteCommandParams(
                command="llmLsp.fix",
                arguments=[{"uri": session.uri(STATS), "start": 6, "end": 6, "diagnostic": None}],
            )
        )
        assert result["ok"] is True
        for answer in ("It totals the basket.", "It totals the basket, with VAT."):
            fake.script(Step(text=answer, usage=(500, 60)))
            explained = await session.client.workspace_execute_command_async(
                types.ExecuteCommandParams(
                    command="llmLsp.explain",
                    arguments=[{"uri": session.uri("shop/basket.py"), "start": 16, "end": 19}],
                )
            )
            assert explained["ok"] is True
        # Fixes picked from the lightbulb: the editor applies the edit, or the user types on.
        uri = session.open(STATS)
        original = (session.root / STATS).read_text()
        lines = original.splitlines(keepends=True)
        fixed = "".join([*lines[:5], GOOD_FIX, *lines[6:]])
        for version, texts in ((2, [fixed]), (3, ["# typed\n" + original] * 3)):
            session.client.text_document_did_change(  # (back to the original text)
                types.DidChangeTextDocumentParams(
                    text_document=types.VersionedTextDocumentIdentifier(uri=uri, version=version),
                    content_changes=[types.TextDocumentContentChangeWholeDocument(text=original)],
                )
            )
            fake.script(Step(tool_calls=[_propose_fix()]))
            resolved = await session.client.code_action_resolve_async(
                await _fix_action(session, uri)
            )
            assert resolved.edit is not None
            for n, text in enumerate(texts):
                session.client.text_document_did_change(
                    types.DidChangeTextDocumentParams(
                        text_document=types.VersionedTextDocumentIdentifier(
                            uri=uri, version=version * 10 + n
                        ),
                        content_changes=[types.TextDocumentContentChangeWholeDocument(text=text)],
                    )
                )
        requests = (await _wait(session, "request", warm + 7))[warm:]
        signals = await _wait(session, "signal", 6)
        attempts = session.records("attempt")
        system_prompts = [m["content"] for r in fake.requests for m in r.messages[:1]]
    finally:
        await session.stop()

    # The summaries: what each request was, from the pipeline and its attempts.
    hover, again, fix, explain, _, picked, typed_on = requests
    assert [r["feature"] for r in requests] == [
        *("hover", "hover", "fix", "explain", "explain", "fix", "fix")
    ]
    assert (hover["attempts"], hover["retries"], hover["outcome"]) == (2, 1, "ok")
    assert (hover["prompt_tokens"], hover["cached_tokens"]) == (321, 120)
    mine = [a for a in attempts if a["request_id"] == hover["request_id"]]
    assert [(a["outcome"], a["error_class"]) for a in mine] == [
        ("error", "rate_limited"),
        ("ok", None),
    ]
    assert hover["cost_usd"] == pytest.approx(sum(a["cost_usd"] for a in mine))
    assert hover["context"] and all(p["tokens"] > 0 for p in hover["context"])
    assert any(p["label"].startswith("shop/pricing.py:") for p in hover["context"])
    variant = choose_variant("shop.pricing.apply_discount", float(SHARE))
    assert hover["variant"] == again["variant"] == variant
    assert hover["prompt_version"] == HOVER_PROMPT.tag(variant)
    assert HOVER_PROMPT.text(variant).format(words=120) in system_prompts
    assert hover["answer_chars"] == len("Applies the discount.")
    assert fix["signals"] == {"fix_validated": True} and fix["prompt_version"] == "fix@1"
    # The signals point at the request they judge.
    assert {(s["signal"], s["request_id"]) for s in signals} >= {
        ("hover_repeated", hover["request_id"]),
        ("fix_applied", fix["request_id"]),
        ("regenerated", explain["request_id"]),
        ("fix_applied", picked["request_id"]),
        ("fix_discarded", typed_on["request_id"]),
    }
    assert explain["variant"] == choose_variant(explain["request_id"], float(SHARE))
    assert explain["answer_chars"] == len("It totals the basket.") and explain["context"]

    # A writer killed mid-line: the tools still read the log.
    with log.open("a") as handle:
        handle.write('{"kind":"attempt","request_id":"torn","cost_usd":9')

    out = tmp_path / "report.html"
    report = _cli(tmp_path, "report", "--since", "1d", "--out", str(out), "--usage-log", str(log))
    assert report.returncode == 0, report.stderr
    total = sum(a["cost_usd"] for a in attempts)
    first = report.stdout.splitlines()[0]
    assert f"{warm + 7} requests, {len(attempts)} provider attempts, ${total:.4f}" in first
    page = out.read_text()
    assert page.count("<svg") == 6
    assert f'id="req-{hover["request_id"]}"' in page and "torn" not in page

    cost = _cli(tmp_path, "cost", hover["request_id"][:10], "--usage-log", str(log))
    assert cost.returncode == 0, cost.stderr
    text = cost.stdout
    assert f"request {hover['request_id']}: hover" in text
    assert f"${hover['cost_usd']:.6f} over 2 attempt record(s), 1 retry" in text
    assert "error (rate_limited)" in text
    assert f"{hover['model']}: {describe_price(hover['model'])}" in text
    for piece in hover["context"]:
        assert piece["label"] in text
    assert f"prompt: {HOVER_PROMPT.tag(variant)}" in text
    assert "signals: hover_repeated" in text

    missing = _cli(tmp_path, "cost", "nosuchrequest", "--usage-log", str(log))
    assert missing.returncode == 1
    assert "no request 'nosuchrequest' in the usage log" in missing.stderr
    bad = _cli(tmp_path, "report", "--since", "last week", "--usage-log", str(log))
    assert bad.returncode == 2 and "expected 7d" in bad.stderr
    assert json.loads(log.read_text().splitlines()[0])  # the log itself is untouched
