"""A hover's pack: the hovered name's definition (as jedi's go-to-definition places it)
first and whole, its class skeleton, the cursor's lines, no same-named stand-in."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio

from lsp_server.context.jedi.symbols import SymbolIndex
from lsp_server.context.pack.assembler import Assembler, ContextPack, ContextTask, TaskKind
from lsp_server.context.tokens import TokenCounter, counter_for_model
from lsp_server.pipeline.hover_pack import hover_task
from lsp_server.pipeline.runtime import Document
from lsp_server.workspace import WorkspaceBoundary

FIXTURE = Path(__file__).resolve().parent.parent / "fixtures" / "grounding"
SERVICE = "pkg/service.py"


@pytest.fixture(scope="module")
def counter(tmp_path_factory: pytest.TempPathFactory) -> TokenCounter:
    return counter_for_model("gpt-4o", tmp_path_factory.mktemp("tiktoken"))


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def index() -> AsyncIterator[SymbolIndex]:
    symbols = SymbolIndex(WorkspaceBoundary(FIXTURE))
    yield symbols
    symbols.close()


def _at(needle: str, offset: int = 0) -> tuple[int, int]:
    """1-based line and 0-based column of ``needle`` (+ offset) in the service module."""
    text = (FIXTURE / SERVICE).read_text()
    at = text.index(needle) + offset
    line = text.count("\n", 0, at) + 1
    return line, at - (text.rfind("\n", 0, at) + 1)


async def _hover_pack(
    index: SymbolIndex,
    counter: TokenCounter,
    needle: str,
    budget: int,
    offset: int = 0,
    assembler: Assembler | None = None,
) -> ContextPack:
    """The pack a hover at ``needle`` gets: its focus found by jedi and its task built as
    the pipeline does (`pipeline.hover_pack.hover_task`)."""
    path = FIXTURE / SERVICE
    source = path.read_text()
    line, column = _at(needle, offset)
    symbol = await index.symbol_at(source, path, line, column, deadline=120)
    assert symbol is not None
    task = hover_task(Document(path, source), line, column, symbol)
    pack = await (assembler or Assembler(index)).assemble(task, counter, budget, deadline=0.0)
    assert pack.tokens == counter.count(pack.render()) <= budget
    return pack


pytestmark = pytest.mark.asyncio(loop_scope="module")


async def test_imported_function_not_a_same_named_method(
    index: SymbolIndex, counter: TokenCounter
) -> None:
    # `from .text import normalize`, called inside a class that has a `normalize` method
    pack = await _hover_pack(index, counter, "normalize(value)", 2000)
    lead = pack.pieces[0]
    assert (lead.label, lead.role, lead.form) == (
        "pkg/text.py:4-7",
        "definition of the hovered name",
        "full",
    )
    text = pack.render()
    assert text.index("pkg/text.py:4-7") < text.index("pkg/service.py")
    assert "# text.normalize body" in text
    assert "# Cleaner.normalize body" not in text
    assert "cleaned = normalize(value)" in text  # the call site


async def test_definition_whole_before_large_skeletons_and_long_methods(
    index: SymbolIndex, counter: TokenCounter
) -> None:
    # the line also uses a 60-line method of a class with a large skeleton
    pack = await _hover_pack(index, counter, "scale(amount, 0.5)", 500)
    text = pack.render()
    scale = next(p for p in pack.pieces if p.path == "pkg/scaling.py")
    assert (scale.role, scale.form) == ("definition of the hovered name", "full")
    for body in ("# scale body: negative", "# scale body: above one", "# scale body: result"):
        assert body in text
    assert "return engine.process(amount) + scale(amount, 0.5)" in text
    # what is left went to the other name on the line, not to a skeleton of 60 methods
    assert "# process line 55" not in text


async def test_a_long_definition_keeps_its_first_lines_and_the_call_site(
    index: SymbolIndex, counter: TokenCounter
) -> None:
    pack = await _hover_pack(index, counter, "process(amount)", 500)
    lead = pack.pieces[0]
    assert (lead.path, lead.role, lead.form) == (
        "pkg/engine.py",
        "definition of the hovered name",
        "truncated",
    )
    assert lead.text.startswith("    def process(self, value: float) -> float:")
    assert "total = total * 1.0001 + 0  # process line 0" in lead.text
    assert "return engine.process(amount) + scale(amount, 0.5)" in pack.render()


async def test_a_hovered_class_too_large_to_show_keeps_its_own_attributes_whole(
    index: SymbolIndex, counter: TokenCounter
) -> None:
    pack = await _hover_pack(index, counter, "Codes().lookup(name)", 700)
    lead = pack.pieces[0]
    assert (lead.path, lead.role, lead.form) == (
        "pkg/codes.py",
        "definition of the hovered name",
        "skeleton",
    )
    # its attribute list whole (another class's skeleton shows `FIELDS = ...`)
    assert 'FIELDS = [\n        "alpha",' in lead.text and '"theta",' in lead.text
    assert "def lookup_29(self, name: str) -> int: ..." in lead.text
    assert "return Codes().lookup(name)" in pack.render()


async def test_method_definition_brings_its_class_skeleton(
    index: SymbolIndex, counter: TokenCounter
) -> None:
    needle = "serializer.dumps(data)"
    pack = await _hover_pack(index, counter, needle, 2000, offset=len("serializer."))
    roles = [(p.label, p.role, p.form) for p in pack.pieces[:2]]
    assert roles == [
        ("pkg/serial.py:5-7", "definition of the hovered name", "full"),
        ("pkg/serial.py:4-7", "definition of the hovered name", "skeleton"),
    ]


async def test_a_definition_outside_the_workspace_is_said_not_replaced(
    index: SymbolIndex, counter: TokenCounter
) -> None:
    pack = await _hover_pack(index, counter, "json.dumps(data)", 2000, offset=len("json."))
    text = pack.render()
    assert text.startswith("Note: the definition of the hovered name `dumps` is not shown")
    assert "is defined outside the workspace" in text
    assert "# Serializer.dumps body" not in text
    assert "return json.dumps(data)" in text


async def test_random_budgets_keep_the_call_site_and_never_overflow(
    index: SymbolIndex, counter: TokenCounter
) -> None:
    rng = random.Random(11)
    for budget in sorted(rng.randrange(120, 2500) for _ in range(12)):
        pack = await _hover_pack(index, counter, "scale(amount, 0.5)", budget)
        assert "scale(amount, 0.5)" in pack.render(), budget


async def test_import_map_prefers_the_import_over_a_method_in_module_code(
    index: SymbolIndex, counter: TokenCounter
) -> None:
    # Explain's import map (no jedi): `scale` is the imported function, not the method of a
    # class defined under a module-level `try`
    path = FIXTURE / SERVICE
    line, _ = _at("scale(amount, 0.5)")
    task = ContextTask(TaskKind.EXPLAIN, path.read_text(), path, line, line, infer=False)
    pack = await Assembler(index).assemble(task, counter, 3000, deadline=0.0)
    text = pack.render()
    assert "# scale body: result" in text
    assert "# _Fallback.scale body" not in text


async def test_the_line_s_modules_are_chunked_while_jedi_answers(
    index: SymbolIndex, counter: TokenCounter, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`Assembler.prepare_line` (the hover's prefetch) chunks the modules the hovered line
    imports from, so the pack built after jedi's answer parses none of them again."""
    import lsp_server.context.static.modules as modules_module

    loaded: list[str] = []
    real = modules_module.load_module

    def spy(path: Path | None, display: str, text: str) -> modules_module.Module:
        loaded.append(display)
        return real(path, display, text)

    monkeypatch.setattr(modules_module, "load_module", spy)
    assembler = Assembler(index)
    path = FIXTURE / SERVICE
    await assembler.prepare_line(path, path.read_text(), _at("scale(amount, 0.5)")[0])
    assert {"pkg/service.py", "pkg/scaling.py", "pkg/engine.py"} <= set(loaded)
    loaded.clear()
    pack = await _hover_pack(index, counter, "scale(amount, 0.5)", 2000, assembler=assembler)
    assert pack.pieces[0].path == "pkg/scaling.py"
    assert loaded == []  # every module the pack quotes was chunked ahead
