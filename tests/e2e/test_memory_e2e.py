"""A long Explain run through the real server: the conversation is kept within its window,
the middle summarised by the cheap model, and the summary's cost shown with the answer."""

from __future__ import annotations

import json
from pathlib import Path

from lsprotocol import types

from lsp_server.context.tokens import counter_for_model
from lsp_server.pipeline.memory import SUMMARY_PREFIX
from lsp_server.testing.fake_provider import FakeProvider, Step
from tests.conftest import TEST_KEY, server_env, start_session

WINDOW = 8000


def _read(path: str) -> Step:
    call = {"name": "read_file", "arguments": {"path": path, "start_line": 1, "end_line": 400}}
    return Step(tool_calls=[call], usage=(900, 30))


async def test_long_explain_is_summarised_by_the_cheap_model(
    workspace: Path, tmp_path: Path, fake: FakeProvider
) -> None:
    for name in ("alpha", "beta"):
        body = "\n".join(f"def {name}_{i}(x):\n    return x + {i}\n" for i in range(150))
        (workspace / "shop" / f"{name}.py").write_text(body)
    env = server_env(tmp_path, OPENAI_API_KEY=TEST_KEY, OPENAI_BASE_URL=fake.base_url)
    options = {"memoryWindowTokens": WINDOW, "memoryKeepLast": 1, "explainContextTokens": 400}
    session = await start_session(workspace, tmp_path, env=env, init_options={"llmLsp": options})
    summary = "- shop/alpha.py and shop/beta.py define alpha_* and beta_* adders"
    answer = "**Summary**: every `*_i` adds its index to `x`."
    fake.script(
        _read("shop/alpha.py"),
        _read("shop/beta.py"),
        Step(text=summary, usage=(2500, 60)),  # the summary, asked of the cheap model
        Step(text=answer, usage=(1000, 40)),
    )
    try:
        result = await session.client.workspace_execute_command_async(
            types.ExecuteCommandParams(
                command="llmLsp.explain",
                arguments=[{"uri": session.uri("shop/basket.py"), "start": 16, "end": 19}],
            )
        )
        usage = session.usage()
        [shown] = session.client.shown_documents
    finally:
        await session.stop()
    assert result["ok"] is True
    document = Path(shown.uri.removeprefix("file://")).read_text()
    assert answer in document
    # 2 tool steps + the answer + the summary: 5300 in / 160 out, with both models named
    assert "gpt-4o, gpt-4o-mini" in document or "gpt-4o-mini, gpt-4o" in document
    assert "5300 in / 160 out tokens" in document

    chats = [r for r in fake.requests if r.path.endswith("/chat/completions")]
    assert [r.model for r in chats] == ["gpt-4o"] * 2 + ["gpt-4o-mini", "gpt-4o"]
    summary_prompt = json.dumps(chats[2].messages)
    assert "alpha_0" in summary_prompt and "read_file" in summary_prompt
    last = chats[3].messages
    counter = counter_for_model("gpt-4o", tmp_path / "tiktoken")
    tools = chats[3].body.get("tools")
    assert counter.count_messages(last) + counter.count(json.dumps(tools)) <= WINDOW
    assert last[0]["role"] == "system" and "Explain lines 16-19" in last[1]["content"]
    assert any(str(m.get("content")).startswith(SUMMARY_PREFIX + summary) for m in last)
    assert last[-1]["role"] == "tool" and "beta_0" in last[-1]["content"]
    assert "alpha_0" not in json.dumps(last)  # the middle went into the summary

    features = [(u["feature"], u["tier"], u["outcome"]) for u in usage]
    assert ("summary", "cheap", "ok") in features
    assert sum(u["feature"] == "explain" for u in usage) == 3
