"""A pack never exceeds its budget, even where the joins between pieces cost tokens.

`build_pack` charges each piece its own rendering plus `JOIN_SLACK` while it
fills the budget; a tokenizer may charge more where two renderings meet (merges
across the separator and the next header). Only the last step, which counts the
rendered pack and drops the lowest-priority piece until it fits, keeps such a
pack within budget. These tests use a counter that charges for every join, so
they fail when that safety net is skipped or loosened.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import pytest_asyncio

from lsp_server.context.jedi.symbols import SymbolIndex
from lsp_server.context.pack.assembler import Assembler, ContextTask, TaskKind
from lsp_server.context.pack.pieces import JOIN_SLACK, Candidate, Role, build_pack, piece
from lsp_server.context.tokens import TokenCounter, counter_for_model
from lsp_server.workspace import WorkspaceBoundary

#: Where one rendered piece ends and the next begins in `ContextPack.render`.
JOIN = "```\n\n### "
#: What the test tokenizer charges per join: far more than `JOIN_SLACK`.
JOIN_COST = 40


@dataclass(frozen=True)
class JoinChargingCounter(TokenCounter):
    """A real counter, plus `JOIN_COST` tokens wherever two rendered pieces meet."""

    join_cost: int = JOIN_COST

    def count(self, text: str) -> int:
        return super().count(text) + self.join_cost * text.count(JOIN)


@pytest.fixture(scope="module")
def plain(tmp_path_factory: pytest.TempPathFactory) -> TokenCounter:
    return counter_for_model("gpt-4o", tmp_path_factory.mktemp("tiktoken"))


@pytest.fixture(scope="module")
def joins(plain: TokenCounter) -> JoinChargingCounter:
    return JoinChargingCounter(plain.encoding_name, plain.exact, plain.margin, plain.encoding)


def _definitions(n: int) -> list[Candidate]:
    """``n`` small definitions from other files, highest priority first."""
    out = []
    for i in range(n):
        body = "\n".join(f"    total_{i} += step_{j} * {j}" for j in range(12))
        head = f"def helper_{i}(step_0: int) -> int:\n    total_{i} = 0"
        text = f"{head}\n{body}\n    return total_{i}"
        p = piece(f"pkg/mod_{i}.py", 1, 15, Role.DEFINITION, f"function `helper_{i}`", text)
        out.append(Candidate(p, Role.DEFINITION))
    return out


def test_joins_that_cost_tokens_never_push_a_pack_over_budget(
    plain: TokenCounter, joins: JoinChargingCounter
) -> None:
    candidates = _definitions(5)
    # Room for every piece with the slack the filling step keeps per piece, not for the joins.
    budget = sum(joins.count(c.piece.render()) + JOIN_SLACK for c in candidates)
    everything = build_pack(candidates, plain, budget)
    assert len(everything.pieces) == 5  # with free joins all five fit ...
    assert joins.count(everything.render()) > budget  # ... but these joins do not

    pack = build_pack(candidates, joins, budget)

    assert pack.tokens == joins.count(pack.render()) <= budget
    assert 0 < len(pack.pieces) < 5
    # the lowest priority goes first: what is left is the head of the priority order
    kept = [p.label for p in pack.pieces]
    assert kept == [c.piece.label for c in candidates[: len(kept)]]
    assert set(pack.dropped) == {c.piece.label for c in candidates[len(kept) :]}


def test_budget_exactly_at_the_rendered_count_keeps_every_piece(
    joins: JoinChargingCounter,
) -> None:
    """The net drops only what it must: a budget equal to the real count keeps all."""
    candidates = _definitions(3)
    full = build_pack(candidates, joins, 10_000)
    exact = joins.count(full.render())
    pack = build_pack(candidates, joins, exact)
    assert [p.label for p in pack.pieces] == [p.label for p in full.pieces]
    assert pack.tokens == exact
    one_less = build_pack(candidates, joins, exact - 1)
    assert one_less.tokens == joins.count(one_less.render()) <= exact - 1
    assert len(one_less.pieces) == 2


@pytest_asyncio.fixture
async def asm(root: Path) -> AsyncIterator[Assembler]:
    index = SymbolIndex(WorkspaceBoundary(root))
    yield Assembler(index)
    index.close()


async def test_assembled_packs_stay_within_budget_when_joins_cost_tokens(
    asm: Assembler, root: Path, joins: JoinChargingCounter
) -> None:
    """The assembler's packs on the fixture project (target, definitions, class, imports,
    callers) under a counter that charges for the joins: never over any budget."""
    path = root / "app/service.py"
    text = path.read_text()
    line = text.count("\n", 0, text.index("taxed = apply_tax")) + 1
    task = ContextTask(TaskKind.EXPLAIN, text, path, line, line)
    full = await asm.assemble(task, joins, 5000, deadline=30)
    assert len(full.pieces) >= 4, [p.label for p in full.pieces]
    exact = joins.count(full.render())
    over = 0
    for budget in range(exact - 3 * JOIN_COST, exact + 1, 7):
        pack = await asm.assemble(task, joins, budget, deadline=30)
        assert pack.tokens == joins.count(pack.render()) <= budget, budget
        assert any(p.role == "target" for p in pack.pieces), budget
        over += len(pack.pieces) < len(full.pieces)
    assert over > 0  # some of these budgets really were too small for every piece
