"""`llmLsp.ask` through the real server: hybrid retrieval, follow-ups, saves, failures.

The workspace is the context fixture project (``app/retry.py`` holds
``with_retries``). The fake provider's vectors are hashes of the text, so the
embedding ranking is noise here; the keyword ranking is what finds the
retry code, and the tests check what the fused answer carries, what the fake
received, and how many texts were embedded.
"""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from lsprotocol import types

from lsp_server.context.tokens import counter_for_model
from lsp_server.prompts import ASK_CODE_HEADER, ASK_QUESTION_HEADER
from lsp_server.testing.fake_provider import FakeProvider, RecordedRequest, Step
from tests.conftest import TEST_KEY, Session, server_env, start_session

pytestmark = pytest.mark.asyncio(loop_scope="module")

FIXTURE = Path(__file__).parent.parent / "fixtures" / "context" / "proj"
QUESTION = "Where do we handle retries?"
RETRY_LABEL = "app/retry.py:6-14"
BUDGET = 600


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def shared_session(
    tmp_path_factory: pytest.TempPathFactory, fake_provider: FakeProvider
) -> AsyncIterator[Session]:
    tmp_path = tmp_path_factory.mktemp("ask")
    root = tmp_path / "proj"
    shutil.copytree(FIXTURE, root)
    env = server_env(tmp_path, OPENAI_API_KEY=TEST_KEY, OPENAI_BASE_URL=fake_provider.base_url)
    session = await start_session(
        root, tmp_path, env=env, init_options={"llmLsp": {"askContextTokens": BUDGET}}
    )
    yield session
    await session.stop()


@pytest.fixture
def session(shared_session: Session, fake: FakeProvider) -> Session:
    shared_session.client.shown_documents.clear()
    return shared_session.begin()


async def ask(session: Session, *arguments: Any) -> dict[str, Any]:
    result = await session.client.workspace_execute_command_async(
        types.ExecuteCommandParams(command="llmLsp.ask", arguments=list(arguments))
    )
    assert isinstance(result, dict)
    return result


def chats(fake: FakeProvider) -> list[RecordedRequest]:
    return [r for r in fake.requests if r.path == "/v1/chat/completions"]


def embedded_inputs(fake: FakeProvider) -> list[list[str]]:
    return [r.body["input"] for r in fake.requests if r.path == "/v1/embeddings"]


def pack_of(request: RecordedRequest) -> str:
    user = [m for m in request.messages if m["role"] == "user"][-1]["content"]
    start = user.index(ASK_CODE_HEADER) + len(ASK_CODE_HEADER)
    return str(user[start : user.rindex(ASK_QUESTION_HEADER)])


async def test_ask_answers_from_the_retrieved_chunk_within_budget(
    session: Session, fake: FakeProvider, tmp_path: Path
) -> None:
    fake.script(Step(text="Retries live in `with_retries` (app/retry.py:6-14)."))
    result = await ask(session, {"question": QUESTION, "conversation": None})

    assert result["ok"] is True and result["answered"] is True
    assert result["ranking"] == "hybrid"
    assert "Retries live in `with_retries`" in result["markdown"]
    assert result["sources"][0] == {"path": "app/retry.py", "start": 6, "end": 14}
    assert isinstance(result["conversation"], str)
    # shown like Explain: a markdown document beside the code
    [shown] = session.client.shown_documents
    document = Path(shown.uri.removeprefix("file://")).read_text()
    assert document == result["markdown"]
    assert f"`{RETRY_LABEL}`" in document
    # the model saw the question and the retry code, labelled, within the budget
    [chat] = chats(fake)
    pack = pack_of(chat)
    assert f"### {RETRY_LABEL} (definition: function `with_retries`)" in pack
    assert "def with_retries(call, attempts: int = 3, delay: float = 0.1):" in pack
    assert chat.messages[-1]["content"].endswith(QUESTION)
    counter = counter_for_model("gpt-4o", tmp_path / "tiktoken")
    assert counter.count(pack) <= BUDGET
    # the workspace was embedded once, in one batch, then the question
    inputs = embedded_inputs(fake)
    assert len(inputs) == 2 and inputs[1] == [QUESTION]
    assert any("with_retries" in text for text in inputs[0])
    reports = [
        getattr(p, "message", None) for t in session.client.progress_reports.values() for p in t
    ]
    assert "Indexing 8 files…" in reports
    records = session.usage()
    assert [r["feature"] for r in records] == ["embed", "embed", "ask"]
    assert all(r["outcome"] == "ok" and r["cost_usd"] > 0 for r in records)
    assert {r["request_id"] for r in records} == {records[0]["request_id"]}


async def test_follow_up_carries_the_first_exchange(session: Session, fake: FakeProvider) -> None:
    fake.script(Step(text="In `with_retries`."), Step(text="It doubles: 0.1, 0.2, 0.4 s."))
    first = await ask(session, {"question": QUESTION, "conversation": None})
    follow = {"question": "How long does it wait between attempts?"}
    second = await ask(session, {**follow, "conversation": first["conversation"]})

    assert second["ok"] is True and second["conversation"] == first["conversation"]
    assert "It doubles" in second["markdown"]
    messages = chats(fake)[-1].messages
    assert [m["role"] for m in messages] == ["system", "user", "assistant", "user"]
    assert messages[1]["content"].endswith(QUESTION)
    assert messages[2]["content"] == "In `with_retries`."
    assert messages[3]["content"].endswith(follow["question"])
    # no re-embedding: only the two questions were embedded
    assert embedded_inputs(fake) == [[QUESTION], [follow["question"]]]


async def test_save_re_embeds_only_the_changed_chunk(session: Session, fake: FakeProvider) -> None:
    await ask(session, {"question": QUESTION, "conversation": None})
    fake.reset()
    target = session.root / "app/pricing.py"
    before = target.read_text()
    new_doc = '"""Add the sales tax (20 %) to an amount."""'
    target.write_text(before.replace('"""Add the sales tax to an amount."""', new_doc))
    session.client.text_document_did_save(
        types.DidSaveTextDocumentParams(
            text_document=types.TextDocumentIdentifier(uri=session.uri("app/pricing.py"))
        )
    )
    [request] = await fake.wait_for_requests_async(1, timeout=60, path="/v1/embeddings")
    [text] = request.body["input"]
    assert "apply_tax" in text and "(20 %)" in text
    await asyncio.sleep(0.5)
    assert len(embedded_inputs(fake)) == 1  # nothing else was re-embedded
    fake.script(Step(text="Taxes are added in `apply_tax`."))
    result = await ask(session, {"question": "Where is the sales tax added?"})
    assert "app/pricing.py" in {s["path"] for s in result["sources"]}
    assert new_doc in pack_of(chats(fake)[-1])
    assert embedded_inputs(fake)[1:] == [["Where is the sales tax added?"]]


async def test_embeddings_failing_fall_back_to_keywords(
    session: Session, fake: FakeProvider
) -> None:
    fake.script(*[Step(status=503)] * 3, endpoint="embeddings")
    fake.script(Step(text="See `with_retries`."))
    result = await ask(session, {"question": "Which function retries a call?"})

    assert result["ok"] is True and result["answered"] is True
    assert result["ranking"] == "keywords"
    assert "_Ranked by keyword match only: embeddings unavailable" in result["markdown"]
    assert "See `with_retries`." in result["markdown"]
    assert result["sources"][0]["path"] == "app/retry.py"
    assert "def with_retries(" in pack_of(chats(fake)[-1])
    embeds = [r for r in session.usage() if r["feature"] == "embed"]
    assert [r["outcome"] for r in embeds] == ["error"] * 3


async def test_cancelling_the_progress_closes_the_embeddings_call(
    session: Session, fake: FakeProvider
) -> None:
    await ask(session, {"question": QUESTION})  # the workspace is embedded by now
    session.begin()
    session.client.progress_reports.clear()
    fake.reset()
    fake.script(Step(delay=30.0), endpoint="embeddings")
    pending = asyncio.ensure_future(ask(session, {"question": "Who calls apply_tax?"}))
    await fake.wait_for_requests_async(1, 60.0, path="/v1/embeddings", finished=False)
    [token] = session.client.progress_reports
    session.client.protocol.notify(
        types.WINDOW_WORK_DONE_PROGRESS_CANCEL, types.WorkDoneProgressCancelParams(token=token)
    )
    assert await asyncio.wait_for(pending, 60) == {
        "ok": False,
        "cancelled": True,
        "error": "cancelled",
    }
    hung_up = await fake.wait_for_disconnect_async(60.0)
    assert hung_up is not None and hung_up.client_disconnected
    assert chats(fake) == []  # the model was never asked
    await session.wait_for_usage(1)
    assert [(r["feature"], r["outcome"]) for r in session.usage()] == [("embed", "cancelled")]
    # the server goes on answering
    fake.script(Step(text="Only `checkout` calls it."))
    result = await ask(session, {"question": "Who calls apply_tax?"})
    assert "Only `checkout` calls it." in result["markdown"]


@pytest.mark.parametrize(
    ("arguments", "error"),
    [
        ([{"question": "   "}], "the question is empty"),
        ([{"question": 42}], "the question must be a string, not int"),
        ([], "llmLsp.ask expects"),
        ([{"question": "why?", "conversation": "nope"}], "unknown conversation 'nope'"),
        ([{"question": "why?", "conversation": 3}], "conversation must be the id"),
    ],
)
async def test_bad_input_gets_a_clear_error(
    session: Session, fake: FakeProvider, arguments: list[Any], error: str
) -> None:
    result = await ask(session, *arguments)
    assert result["ok"] is False
    assert result["error"].startswith(error)
    assert fake.requests == []


async def test_offline_lists_where_to_look(tmp_path: Path, fake: FakeProvider) -> None:
    root = tmp_path / "proj"
    shutil.copytree(FIXTURE, root)
    session = await start_session(root, tmp_path)
    try:
        result = await ask(session, {"question": QUESTION, "conversation": None})
    finally:
        await session.stop()
    assert result["ok"] is True and result["answered"] is False
    assert result["conversation"] is None
    assert result["sources"][0] == {"path": "app/retry.py", "start": 6, "end": 14}
    assert "No AI answer: no model is configured (offline mode)" in result["markdown"]
    assert f"- `{RETRY_LABEL}` function `with_retries`" in result["markdown"]
    assert fake.requests == []


async def test_long_conversation_is_summarised_by_the_cheap_model(
    tmp_path: Path, fake: FakeProvider
) -> None:
    root = tmp_path / "proj"
    shutil.copytree(FIXTURE, root)
    env = server_env(tmp_path, OPENAI_API_KEY=TEST_KEY, OPENAI_BASE_URL=fake.base_url)
    options = {"askContextTokens": BUDGET, "memoryKeepLast": 1, "memoryWindowTokens": 1500}
    session = await start_session(root, tmp_path, env=env, init_options={"llmLsp": options})
    fake.script(Step(text="- asked about retries and taxes"), model="gpt-4o-mini")
    try:
        first = await ask(session, {"question": QUESTION})
        conversation = first["conversation"]
        await ask(
            session, {"question": "Where is the sales tax added?", "conversation": conversation}
        )
        third = await ask(
            session, {"question": "What does an order sum up?", "conversation": conversation}
        )
    finally:
        await session.stop()
    assert third["ok"] is True and third["conversation"] == conversation
    [summary] = [r for r in chats(fake) if r.model == "gpt-4o-mini"]
    assert "Where is the sales tax added?" in summary.messages[-1]["content"]  # the middle
    last = [r for r in chats(fake) if r.model == "gpt-4o"][-1].messages
    assert last[1]["content"].endswith(QUESTION)  # the first question stays pinned
    assert any("asked about retries and taxes" in str(m["content"]) for m in last)
    assert last[-1]["content"].endswith("What does an order sum up?")
    assert "Earlier exchanges summarised by gpt-4o-mini" in third["markdown"]
    records = [r for r in session.usage() if r["feature"] == "summary"]
    assert len(records) == 1 and records[0]["cost_usd"] > 0
