"""The answer cache's pure parts: fingerprints, in-flight sharing, entries, stores."""

from __future__ import annotations

import asyncio
import json
import logging
from pathlib import Path

import pytest

from lsp_server.cache import AnswerCache, CachedAnswer, CacheOutcome, InFlight, keys_for
from lsp_server.cache.backends import DiskBackend, FallbackBackend, RedisBackend, redacted_url
from lsp_server.cache.fingerprint import code_fingerprint, structural_text
from lsp_server.context.pack.pieces import ContextPack, ContextPiece
from lsp_server.llm.types import Completion, Usage
from tests.services import free_port

CODE = '''def total(items, rate):
    """Sum with tax."""
    subtotal = sum(i.price for i in items)  # all lines
    return round(subtotal * (1 + rate), 2)
'''


@pytest.mark.parametrize(
    "variant",
    [
        CODE.replace("  # all lines", ""),  # comment removed
        CODE.replace("# all lines", "# every line, reworded"),
        CODE.replace("    ", "  "),  # indentation width
        CODE.replace("sum(i.price for i in items)", "sum(\n        i.price for i in items\n    )"),
        CODE.replace("round(subtotal * (1 + rate), 2)", "round(subtotal * (1 + rate), 2,)"),
        CODE.replace('"""Sum with tax."""', "'''Sum with tax.'''"),
        CODE.replace("(items, rate):\n", "(items, rate):\n\n"),  # blank line
        "    " + CODE.replace("\n", "\n    ").rstrip() + "\n",  # nested one level deeper
    ],
)
def test_formatting_and_comments_keep_the_fingerprint(variant: str) -> None:
    assert code_fingerprint(variant) == code_fingerprint(CODE)


@pytest.mark.parametrize(
    "variant",
    [
        CODE.replace("1 + rate", "1 - rate"),
        CODE.replace("2)", "3)"),
        CODE.replace('"""Sum with tax."""', '"""Sum without tax."""'),
        CODE.replace("    return round", "    if not items:\n        return 0.0\n    return round"),
        # the same tokens, but the return moved into a block: a different meaning
        CODE.replace("    return round", "    for _ in ():\n        pass\n    return round"),
    ],
)
def test_changes_to_the_code_change_the_fingerprint(variant: str) -> None:
    assert code_fingerprint(variant) != code_fingerprint(CODE)


def test_indentation_is_structure() -> None:
    a = "if x:\n    y()\n    z()\n"
    b = "if x:\n    y()\nz()\n"
    assert structural_text(a) != structural_text(b)


def test_code_that_does_not_tokenise_falls_back_to_words() -> None:
    broken = 'x = """never closed\n  y'
    assert code_fingerprint(broken) == code_fingerprint('x = """never closed\n y')


def _pack(target: str, definition: str = "def f():\n    return 1\n") -> ContextPack:
    pieces = (
        ContextPiece("a.py:1-2", "definition", "function `f`", definition, "full", "a.py", 1, 2),
        ContextPiece("b.py:5-9", "target", "function `total`", target, "full", "b.py", 5, 9),
    )
    return ContextPack(pieces, 100, 2000, True)


def _keys(target: str = CODE, definition: str = "def f():\n    return 1\n", where: int = 7):
    messages = [{"role": "user", "content": f"{target}{definition} at b.py:{where}"}]
    return keys_for(
        "hover",
        messages,
        models=["gpt-4o"],
        params=[400, 0.2],
        pack=_pack(target, definition),
        facts=["total"],
        scope=("b.py", "b.total"),
    )


def test_keys_structural_ignores_line_numbers_and_formatting_not_the_definitions() -> None:
    base = _keys()
    moved = _keys(where=9)
    assert moved.exact != base.exact and moved.structural == base.structural
    assert _keys(CODE.replace("# all lines", "")).structural == base.structural
    assert _keys(definition="def f():\n    return 2\n").structural != base.structural
    assert _keys(CODE.replace("1 + rate", "1 - rate")).structural != base.structural
    assert base.scope == _keys(CODE.replace("1 + rate", "2")).scope


def test_keys_never_hold_an_api_key() -> None:
    key = "sk-test-DO-NOT-LEAK-1234567890abcdef"
    keys = _keys()
    assert key not in json.dumps([keys.exact, keys.structural, keys.scope, dict(keys.pieces)])


def _completion(text: str = "An answer.", notice: str | None = None) -> Completion:
    return Completion(
        text=text,
        model="gpt-4o",
        provider="primary",
        usage=Usage(300, 40, 0),
        latency_ms=900.0,
        cost_usd=0.00115,
        request_id="r1",
        notice=notice,
    )


async def test_store_then_hit_exact_structural_and_stale_with_what_changed(tmp_path: Path) -> None:
    cache = AnswerCache(DiskBackend(tmp_path / "c", 1 << 20), ttl=60)
    keys = _keys()
    assert (await cache.lookup(keys)).outcome is CacheOutcome.MISS
    await cache.store(keys, _completion())
    hit = await cache.lookup(keys)
    assert (hit.outcome, hit.layer) == (CacheOutcome.HIT, "exact")
    assert hit.entry is not None and hit.entry.text == "An answer."
    assert (await cache.lookup(_keys(where=12))).layer == "structural"
    changed = _keys(CODE.replace("1 + rate", "1 - rate"))
    assert (await cache.lookup(changed)).outcome is CacheOutcome.MISS
    stale = await cache.fallback(changed)
    assert stale.outcome is CacheOutcome.STALE
    assert stale.changed == ("target: function `total`",)
    assert (await cache.lookup(keys, bypass=True)).outcome is CacheOutcome.BYPASS
    await cache.aclose()


async def test_a_later_tier_answer_serves_only_the_fallback_tier(tmp_path: Path) -> None:
    cache = AnswerCache(DiskBackend(tmp_path / "c", 1 << 20), ttl=60)
    keys = _keys()
    await cache.store(keys, _completion(notice="gpt-4o unavailable; answered by local q"))
    assert (await cache.lookup(keys)).outcome is CacheOutcome.MISS
    assert (await cache.fallback(keys)).outcome is CacheOutcome.STALE
    await cache.aclose()


async def test_entries_expire(tmp_path: Path) -> None:
    backend = DiskBackend(tmp_path / "c", 1 << 20)
    await backend.set("k", "v", ttl=60)
    await backend.set("short", "v", ttl=0.05)
    await asyncio.sleep(0.2)
    assert await backend.get("k") == "v"
    assert await backend.get("short") is None
    await backend.aclose()


@pytest.mark.parametrize(
    "raw",
    ["not json", "[]", '{"text": 1}', json.dumps({"text": "x"}), '{"text": "x", "model": 3}'],
)
def test_unreadable_entries_are_refused(raw: str) -> None:
    with pytest.raises(ValueError):
        CachedAnswer.from_json(raw)


async def test_an_unreadable_entry_is_a_miss_and_is_dropped(tmp_path: Path) -> None:
    backend = DiskBackend(tmp_path / "c", 1 << 20)
    cache = AnswerCache(backend, ttl=60)
    keys = _keys()
    await backend.set(f"e:{keys.exact}", '{"pickle": "no"}', 60)
    assert (await cache.lookup(keys)).outcome is CacheOutcome.MISS
    assert await backend.get(f"e:{keys.exact}") is None
    await cache.aclose()


async def test_a_damaged_store_is_rebuilt_with_one_log_line(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    folder = tmp_path / "c"
    folder.mkdir()
    (folder / "cache.db").write_bytes(b"garbage" * 1000)
    backend = DiskBackend(folder, 1 << 20)
    with caplog.at_level(logging.WARNING, logger="lsp_server.cache.backends"):
        assert await backend.get("k") is None
        await backend.set("k", "v", 60)
        assert await backend.get("k") == "v"
    assert [r.message.count("is damaged") for r in caplog.records] == [1]
    await backend.aclose()


async def test_unreachable_redis_falls_back_once_and_the_url_password_is_not_shown(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    url = f"redis://user:s3cret@127.0.0.1:{free_port()}/0"
    backend = FallbackBackend(RedisBackend(url), DiskBackend(tmp_path / "c", 1 << 20))
    with caplog.at_level(logging.WARNING, logger="lsp_server.cache.backends"):
        await backend.set("k", "v", 60)
        assert await backend.get("k") == "v"
        await backend.set("k2", "v2", 60)
    notice = backend.take_notice()
    assert notice is not None and "redis://127.0.0.1:" in notice and "s3cret" not in notice
    assert backend.take_notice() is None
    assert len(caplog.records) == 1 and "s3cret" not in caplog.records[0].getMessage()
    assert backend.name == "disk"
    await backend.aclose()


def test_redacted_url() -> None:
    assert redacted_url("redis://u:p@host:6380/1") == "redis://host:6380/1"


async def test_redis_backend_round_trip(redis_url: str) -> None:
    backend = RedisBackend(redis_url, prefix="unit-test:cache:")
    await backend.set("k", "v", 60)
    assert await backend.get("k") == "v"
    await backend.delete("k")
    assert await backend.get("k") is None
    await backend.aclose()


async def test_identical_concurrent_calls_share_one() -> None:
    flight: InFlight[str] = InFlight()
    calls = 0
    release = asyncio.Event()

    async def work() -> str:
        nonlocal calls
        calls += 1
        await release.wait()
        return "shared"

    tasks = [asyncio.ensure_future(flight.run("k", work)) for _ in range(5)]
    await asyncio.sleep(0)
    assert flight.waiters("k") == 5
    for task in tasks[:4]:
        task.cancel()
    await asyncio.sleep(0)
    assert flight.waiters("k") == 1
    release.set()
    assert await tasks[4] == "shared"
    assert calls == 1 and "k" not in flight


async def test_the_last_waiter_leaving_cancels_the_call() -> None:
    flight: InFlight[str] = InFlight()
    cancelled = asyncio.Event()

    async def work() -> str:
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            cancelled.set()
            raise
        return "never"

    tasks = [asyncio.ensure_future(flight.run("k", work)) for _ in range(2)]
    await asyncio.sleep(0)
    tasks[0].cancel()
    await asyncio.sleep(0.01)
    assert not cancelled.is_set()
    tasks[1].cancel()
    await asyncio.wait_for(cancelled.wait(), 5)
    with pytest.raises(asyncio.CancelledError):
        await tasks[1]


async def test_a_detached_call_finishes_after_its_last_waiter_left() -> None:
    flight: InFlight[str] = InFlight()
    stored: list[str] = []
    release = asyncio.Event()

    async def work() -> str:
        await release.wait()
        stored.append("in the cache")
        return "done"

    waiter = asyncio.ensure_future(flight.run("k", work, detach=True))
    await asyncio.sleep(0)
    waiter.cancel()
    await asyncio.sleep(0)
    release.set()
    for _ in range(100):
        if stored:
            break
        await asyncio.sleep(0.01)
    assert stored == ["in the cache"]


async def test_a_failure_reaches_every_waiter_and_frees_the_key() -> None:
    flight: InFlight[str] = InFlight()

    async def work() -> str:
        await asyncio.sleep(0.01)
        raise RuntimeError("provider down")

    results = await asyncio.gather(
        *(flight.run("k", work) for _ in range(3)), return_exceptions=True
    )
    assert [str(r) for r in results] == ["provider down"] * 3
    assert flight.started == 1 and "k" not in flight


def _ask_keys(question: str, code: str) -> object:
    pack = ContextPack(
        (ContextPiece("s.py:1-4", "retrieved", "function `total`", code, "full", "s.py", 1, 4),),
        50,
        3000,
        True,
    )
    messages = [{"role": "user", "content": f"{code}\nQuestion: {question}"}]
    return keys_for("ask", messages, models=["gpt-4o"], params=[800], pack=pack, facts=[question])


async def test_semantic_layer_needs_a_close_question_about_the_same_code(tmp_path: Path) -> None:
    cache = AnswerCache(DiskBackend(tmp_path / "c", 1 << 20), ttl=60)
    first = _ask_keys("how is tax added?", CODE)
    await cache.store(first, _completion("Tax is added by multiplying."))
    await cache.remember_question(first, [1.0, 0.0, 0.1])
    reworded = _ask_keys("where does tax get added?", CODE)
    assert (await cache.lookup(reworded)).outcome is CacheOutcome.MISS  # other words
    hit = await cache.semantic_lookup(reworded, [0.99, 0.01, 0.1])
    assert (hit.outcome, hit.layer) == (CacheOutcome.HIT, "semantic")
    assert hit.entry is not None and hit.entry.text == "Tax is added by multiplying."
    # a different question about the same code: no
    far = await cache.semantic_lookup(reworded, [0.0, 1.0, 0.0])
    assert far.outcome is CacheOutcome.MISS
    # the very same wording and vector about other code: never
    other_code = _ask_keys("how is tax added?", CODE.replace("1 + rate", "1 + 2 * rate"))
    crossed = await cache.semantic_lookup(other_code, [1.0, 0.0, 0.1])
    assert crossed.outcome is CacheOutcome.MISS
    # the hover never uses the semantic layer
    assert (await cache.semantic_lookup(_keys(), [1.0, 0.0, 0.1])).outcome is CacheOutcome.OFF
    await cache.aclose()
