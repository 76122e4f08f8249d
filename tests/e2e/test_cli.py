"""The `llm-lsp` command line, run as a real process against the fake provider."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from lsp_server.testing.fake_provider import FakeProvider, Step
from tests.conftest import TEST_KEY, server_env

GOOD_FIX = "    if not values:\n        return 0.0\n    return sum(values) / len(values)\n"


def _run(
    tmp_path: Path, *args: str, fake: FakeProvider | None = None
) -> subprocess.CompletedProcess[str]:
    extra = {"OPENAI_API_KEY": TEST_KEY, "OPENAI_BASE_URL": fake.base_url} if fake else {}
    return subprocess.run(
        [sys.executable, "-m", "lsp_server", *args],
        env=server_env(tmp_path, **extra),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_version(tmp_path: Path) -> None:
    result = _run(tmp_path, "--version")
    assert result.returncode == 0
    assert result.stdout.strip().startswith("llm-lsp 0.")


def test_explain_symbol_offline(workspace: Path, tmp_path: Path) -> None:
    result = _run(tmp_path, "explain", f"{workspace}/shop/basket.py:19:18")
    assert result.returncode == 0, result.stderr
    assert "def apply_discount(total: float, percent: float) -> float" in result.stdout
    assert "offline mode" in result.stdout


def test_explain_range_with_the_agent(workspace: Path, tmp_path: Path, fake: FakeProvider) -> None:
    fake.script(Step(text="**Summary**: sums the basket, adds VAT, applies the discount."))
    result = _run(tmp_path, "explain", f"{workspace}/shop/basket.py:16-19", fake=fake)
    assert result.returncode == 0, result.stderr
    assert "# Explanation of `shop/basket.py:16-19`" in result.stdout
    assert "adds VAT" in result.stdout


@pytest.mark.parametrize("apply", [False, True])
def test_fix_prints_a_diff_and_writes_only_with_apply(
    workspace: Path, tmp_path: Path, fake: FakeProvider, apply: bool
) -> None:
    target = workspace / "shop/stats.py"
    before = target.read_text()
    fake.script(
        Step(
            tool_calls=[
                {
                    "name": "propose_fix",
                    "arguments": {
                        "path": "shop/stats.py",
                        "start_line": 6,
                        "end_line": 6,
                        "replacement": GOOD_FIX,
                        "explanation": "Guard the empty list.",
                    },
                }
            ]
        )
    )
    args = ["fix", f"{target}:6", *(["--apply"] if apply else [])]
    result = _run(tmp_path, *args, fake=fake)
    assert result.returncode == 0, result.stderr
    assert "--- a/shop/stats.py" in result.stdout
    assert "+    if not values:" in result.stdout
    if apply:
        assert target.read_text() == before.replace(
            "    return sum(values) / len(values)\n", GOOD_FIX
        )
    else:
        assert target.read_text() == before


@pytest.mark.parametrize(
    "location", ["nowhere.py:1", "shop/basket.py:999", "shop/basket.py:0", "shop/basket.py"]
)
def test_bad_locations_get_a_clear_error(workspace: Path, tmp_path: Path, location: str) -> None:
    result = _run(tmp_path, "explain", f"{workspace}/{location}")
    assert result.returncode == 2
    assert "llm-lsp" in result.stderr
    assert "Traceback" not in result.stderr


def test_ask_prints_the_answer_and_its_sources(tmp_path: Path, fake: FakeProvider) -> None:
    root = tmp_path / "proj"
    shutil.copytree(Path(__file__).parent.parent / "fixtures" / "context" / "proj", root)
    fake.script(Step(text="Retries are handled by `with_retries`."))
    question = "Where do we handle retries?"
    result = _run(tmp_path, "ask", question, "--root", str(root), fake=fake)
    assert result.returncode == 0, result.stderr
    assert "Retries are handled by `with_retries`." in result.stdout
    assert "- `app/retry.py:6-14` function `with_retries`" in result.stdout
    assert "Indexing 8 files…" in result.stderr
    [chat] = [r for r in fake.requests if r.path == "/v1/chat/completions"]
    assert "def with_retries(" in chat.messages[-1]["content"]
    offline = _run(tmp_path, "ask", question, "--root", str(root))
    assert offline.returncode == 0, offline.stderr
    assert "offline mode" in offline.stdout and "`app/retry.py:6-14`" in offline.stdout
    empty = _run(tmp_path, "ask", "  ", "--root", str(root))
    assert empty.returncode == 2
    assert "llm-lsp: the question is empty" in empty.stderr
    assert "Traceback" not in empty.stderr
    missing = _run(tmp_path, "ask", question, "--root", str(tmp_path / "nowhere"))
    assert missing.returncode == 2 and "is not a directory" in missing.stderr
