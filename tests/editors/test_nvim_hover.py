"""The hover that never waits for the model, in a real headless Neovim (issue 16).

jedi-language-server and llm-lsp are attached side by side, as a user has them; Neovim
asks both and opens one float when both have answered, one part per server headed
`# <client name>`. `tests/editors/nvim/hover.lua` hovers like `K` and records the float.

- The plugin's `llmLsp/explanationReady` handler, fed by hand (the notification's
  params as the protocol fixes them): our part of the open float is replaced and
  jedi's part kept; a closed float reopens while the cursor is on the symbol; a moved
  cursor or another document version drops it. Needs only the plugin.
- End to end with a slow provider (8 s): the float opens before the provider has
  answered, with jedi's part and our static facts and note, and then shows the
  explanation without another keypress. Needs the server side of issue 16
  (`hoverWait`, the notification): skipped until the server declares `hoverWait`.

Opening time: the issue asks for at most 1.1x jedi-language-server alone. On the shared
2-core machine jedi's own hover varies by more than 10 % between runs, so a ratio
assertion here would fail on noise; the test asserts what makes the difference (the
float is open before the provider answered: it cannot have waited for the model) and
`scripts/bench_nvim_hover.py` measures the ratio over medians of runs.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from lsp_server.settings import SPECS
from lsp_server.testing.fake_provider import FakeProvider, Step
from tests.conftest import TEST_KEY, copy_project, server_env
from tests.editors.nvim_hover import run_session

pytestmark = pytest.mark.timeout(600)

#: The fake's answer at once: it carries the words of the server's note, so the float looks
#: like a hover still waiting for its explanation (the state the handler acts on).
HOVER_ANSWER = "The explanation is on its way (the fake's answer, at once)."
FED = "**Fed by hand**: the explanation the server would send."
SLOW_ANSWER = "Applies the discount after VAT (answered by the fake after a delay)."
#: The slow provider: longer than a real model's 2 s, so that the wait below has room.
PROVIDER_DELAY = 8.0
#: Room for the hovers answered at once (the fed ones) to answer in full without a note,
#: even on a busy machine (1 s was not, with the suite running twice), and still well
#: under the provider's delay.
HOVER_WAIT = 4.0
SERVER_SIDE = "hoverWait" in {spec.declaration.key for spec in SPECS}
JEDI = "# jedi_language_server"
OURS = "# llm_lsp"


def _text(lines: list[str] | None) -> str:
    return "\n".join(lines or [])


def _part(lines: list[str], header: str) -> list[str]:
    """One server's part of a multi-server float: the lines after its header, up to the
    rule before the next server's header (a part may hold rules of its own)."""
    start = lines.index(header) + 1
    stop = next((i - 1 for i in range(start, len(lines)) if lines[i] in (JEDI, OURS)), None)
    return lines[start:stop]


@pytest.fixture(scope="module")
def seen(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    tmp_path = tmp_path_factory.mktemp("nvim-hover")
    root = copy_project(tmp_path)
    with FakeProvider() as fake:
        fake.set_default(Step(text=HOVER_ANSWER))
        env = server_env(
            tmp_path,
            OPENAI_API_KEY=TEST_KEY,
            OPENAI_BASE_URL=fake.base_url,
            LLM_LSP_ANSWER_CACHE=None,  # the answer arriving later goes through the cache
        )
        slow = json.dumps({"steps": [{"text": SLOW_ANSWER, "delay": PROVIDER_DELAY}]})
        extra = {"LLM_LSP_FED": FED, "LLM_LSP_FAKE": fake.url, "LLM_LSP_ANSWER": SLOW_ANSWER}
        if SERVER_SIDE:
            extra["LLM_LSP_SLOW"] = slow
        return run_session(
            "ready",
            root=root,
            state=tmp_path / "session",
            env=env,
            servers="both",
            settings={"hoverWait": HOVER_WAIT} if SERVER_SIDE else {},
            sites=((18, 21), (19, 17)),  # subtotal (fed by hand), apply_discount (2 s)
            extra=extra,
        )


def test_the_handler_replaces_our_part_of_the_open_float(seen: dict[str, Any]) -> None:
    ready = seen["ready"]
    before = ready["before"]
    # Neovim's float with both servers' parts, as rendered by the installed Neovim
    assert JEDI in before and OURS in before
    jedi_part = _part(before, JEDI)
    assert any("subtotal" in line for line in jedi_part)
    ours = _part(before, OURS)
    # static facts and the note (the server's, or the fake's answer that says the same:
    # the hover does not wait for the model, so either may be in the float by now)
    assert "subtotal" in ours[0] and "on its way" in _text(ours)
    # another symbol's explanation leaves the float alone
    other = ready["other"]
    assert (other["result"], other["floats"], other["lines"]) == ("dropped", 1, before)
    update = ready["update"]
    assert update["result"] == "updated" and update["floats"] == 1
    after = update["lines"]
    assert _part(after, JEDI) == jedi_part  # jedi's part untouched, rules included
    assert _part(after, OURS)[0] == ours[0]
    assert "**Fed by hand**" in _text(_part(after, OURS))
    assert HOVER_ANSWER not in _text(after)
    assert after.count(OURS) == 1 and after.count(JEDI) == 1
    # with our part first, it ends at the rule before jedi's header
    first = ["# llm_lsp", "facts", "---", "explained", "---", "# jedi_language_server", "types"]
    assert ready["first"] == first
    # an empty hover (a placeholder's name was nothing) takes our part out, header and rule
    assert ready["without_first"] == ["# jedi_language_server", "types"]
    assert ready["without_last"] == ["# jedi_language_server", "types"]
    assert ready["without_alone"] == []


def test_the_handler_reopens_a_closed_float_only_where_the_cursor_still_is(
    seen: dict[str, Any],
) -> None:
    ready = seen["ready"]
    reopen = ready["reopen"]
    assert reopen["result"] == "opened" and reopen["floats"] == 1
    assert "**Fed by hand**" in _text(reopen["lines"])
    assert JEDI not in reopen["lines"]
    # the cursor left the range, or the buffer changed since: nothing is shown
    assert (ready["moved"]["result"], ready["moved"]["floats"]) == ("dropped", 0)
    assert (ready["stale"]["result"], ready["stale"]["floats"]) == ("dropped", 0)


@pytest.mark.skipif(not SERVER_SIDE, reason="needs the server side of issue 16 (hoverWait)")
def test_the_float_opens_at_once_and_shows_the_explanation_by_itself(
    seen: dict[str, Any],
) -> None:
    slow = seen["ready"]["slow"]
    opened = _text(slow["opened"])
    # the float did not wait for the model: jedi's part, our static facts and the note
    assert slow["ms"] < PROVIDER_DELAY * 1000, slow["ms"]
    assert JEDI in slow["opened"] and OURS in slow["opened"]
    assert "on its way" in opened and SLOW_ANSWER not in opened
    assert "apply_discount" in _text(_part(slow["opened"], OURS)[:4])  # the static facts
    assert "apply_discount" in _text(_part(slow["opened"], JEDI))
    # then, without a keypress, the same float shows the explanation in place
    later = slow["later"]
    assert SLOW_ANSWER in _text(later), later
    assert "on its way" not in _text(later)
    assert _part(later, JEDI) == _part(slow["opened"], JEDI)
    assert slow["same_window"] is True
    assert "updated" in slow["results"]
    assert slow["later_ms"] >= PROVIDER_DELAY * 1000


def test_the_plugin_advertises_the_capability(seen: dict[str, Any]) -> None:
    """The capabilities Neovim sent in `initialize`: its defaults, and ours merged in."""
    sent = seen["capabilities"]
    assert sent["experimental"] == {"llmLspExplanationReady": {"inPlace": True}}
    assert sent["textDocument"]["hover"]["contentFormat"][0] == "markdown"
