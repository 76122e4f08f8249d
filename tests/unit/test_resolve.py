"""The import map and evident types, without jedi: known answers on a small fixture project."""

from __future__ import annotations

from pathlib import Path

import pytest

from lsp_server.context.model import Definition
from lsp_server.context.static.modules import Module, ModuleCache
from lsp_server.context.static.names import NameUse, local_types, used_names
from lsp_server.context.static.resolver import StaticResolver
from lsp_server.workspace import WorkspaceBoundary

FIXTURE = Path(__file__).parent.parent / "fixtures" / "context" / "infer"


@pytest.fixture
def resolver() -> StaticResolver:
    root = FIXTURE.resolve()
    return StaticResolver(root, ModuleCache(WorkspaceBoundary(root)))


def _first(
    found: dict[tuple[int, int], list[Definition]],
) -> dict[tuple[int, int], Definition]:
    """Each use's first definition (the one jedi's goto would give)."""
    return {position: definitions[0] for position, definitions in found.items()}


def _resolve(
    resolver: StaticResolver, function: str, *, guess: bool = True
) -> dict[str, tuple[str, int] | None]:
    """What each name used in ``function`` of app.py resolves to: (file, line text)."""
    module = resolver.modules.file(FIXTURE / "app.py")
    assert module is not None
    chunk = module.chunks.by_qualname(function)
    assert chunk is not None
    uses = used_names(module.lines, chunk.start_line, chunk.end_line, module.facts.bound)
    types = local_types(module.lines, chunk.start_line, chunk.end_line)
    found = _first(resolver.resolve_all(module, uses, None, types, guess=guess))
    return {u.text: _where(found.get((u.line, u.column))) for u in uses}


def _where(d: Definition | None) -> tuple[str, int] | None:
    if d is None or d.path is None:
        return None
    return d.path.name, d.line


def _line(name: str, needle: str) -> int:
    text = (FIXTURE / "shop" / name).read_text()
    return text.count("\n", 0, text.index(needle)) + 1


def test_star_import_and_reexport(resolver: StaticResolver) -> None:
    found = _resolve(resolver, "star_and_reexport")
    assert found["Order"] == ("models.py", _line("models.py", "class Order"))
    assert found["Mailer"] == ("services.py", _line("services.py", "class Mailer"))
    assert found["?.send"] == ("services.py", _line("services.py", "def send"))


def test_base_class_in_another_file_and_self_attribute(resolver: StaticResolver) -> None:
    found = _resolve(resolver, "base_class_in_other_file")
    assert found["order.save"] == ("base.py", _line("base.py", "def save"))
    assert found["order.ledger"] == ("models.py", _line("models.py", "self.ledger ="))
    assert found["order.ledger.record"] == ("models.py", _line("models.py", "def record"))


def test_return_annotations_properties_and_conditional_values(resolver: StaticResolver) -> None:
    found = _resolve(resolver, "self_attribute_and_return")
    assert found["order.first"] == ("models.py", _line("models.py", "def first"))
    assert found["item.total"] == ("models.py", _line("models.py", "def total"))
    assert found["order.owner.greet"] == ("models.py", _line("models.py", "def greet"))
    assert found["order.mailer.send"] == ("services.py", _line("services.py", "def send"))


def test_call_result_through_returned_constructor(resolver: StaticResolver) -> None:
    found = _resolve(resolver, "call_result")
    assert found["?.send"] == ("services.py", _line("services.py", "def send"))


def test_shadowed_name_gets_no_wrong_definition(resolver: StaticResolver) -> None:
    found = _resolve(resolver, "shadowed")
    assert "Order" not in found  # a parameter: bound in the target itself
    assert found["Order.save"] is None  # not the module-level class's method


def test_module_attribute_reexported_by_package(resolver: StaticResolver) -> None:
    found = _resolve(resolver, "module_attribute")
    assert found["shop.Mailer"] == ("services.py", _line("services.py", "class Mailer"))


def test_odd_code_never_raises(resolver: StaticResolver, tmp_path: Path) -> None:
    module = resolver.modules.get(
        tmp_path / "odd.py",
        "class A(A):\n    def f(self):\n        self.x = self.x.y()\n        return self.x.z\n"
        "a = a.b()\n",
    )
    uses = used_names(module.lines, 1, 5, module.facts.bound)
    types = local_types(module.lines, 2, 4)
    found = resolver.resolve_all(module, uses, "A", types)
    # `self.x` is its own assignment; the self-referencing rest resolves to nothing
    assert {at: [(d.name, d.kind, d.line) for d in defs] for at, defs in found.items()} == {
        (3, 22): [("x", "statement", 3)]
    }


def test_cut_target_name_bound_above_it_in_the_function(resolver: StaticResolver) -> None:
    module = resolver.modules.file(FIXTURE / "app.py")
    assert module is not None
    text = (FIXTURE / "app.py").read_text()
    line = text.count("\n", 0, text.index("return total")) + 1
    uses = used_names(module.lines, line, line, module.facts.bound)
    found = _first(resolver.resolve_all(module, uses, None, {}))
    assert [(u.text, _where(found.get((u.line, u.column)))) for u in uses] == [
        ("total", ("app.py", text.count("\n", 0, text.index("total = order.refresh")) + 1))
    ]


def test_subscript_and_with_statement(resolver: StaticResolver) -> None:
    found = _resolve(resolver, "subscript_and_with")
    assert found["b.checkout"] == ("models.py", _line("models.py", "def checkout"))
    assert found["?.total"] == ("models.py", _line("models.py", "def total"))


def _streams(needle: str) -> tuple[str, int]:
    return ("streams.py", _line("streams.py", needle))


def _method_uses(resolver: StaticResolver, qualname: str) -> tuple[Module, list[NameUse]]:
    """shop/streams.py and the names its function ``qualname`` uses."""
    module = resolver.modules.file(FIXTURE / "shop" / "streams.py")
    assert module is not None
    chunk = module.chunks.by_qualname(qualname)
    assert chunk is not None
    return module, used_names(module.lines, chunk.start_line, chunk.end_line, module.facts.bound)


def test_unannotated_names_typed_by_naming_convention(resolver: StaticResolver) -> None:
    found = _resolve(resolver, "by_convention")
    # a loop variable: `stream` is a LazyStream (not Downstream: no word boundary)
    assert found["stream.read"] == _streams("def read(self):\n        return b")
    assert found["stream.unget"] == _streams("def unget")
    # every `…FormSet` inherits `forms` from one base: the same definition
    assert found["formset.forms"] == _streams("self.forms =")
    # the class the module imports wins over another `…Order` in the workspace
    assert found["order.refresh"] == ("base.py", _line("base.py", "def refresh"))


def test_no_naming_convention_guesses_when_asked_for_none(resolver: StaticResolver) -> None:
    """A hover's pack (`guess=False`): no candidate module parsed for an unannotated name."""
    found = _resolve(resolver, "by_convention", guess=False)
    assert set(found.values()) == {None}  # each of them is placed with guesses (above)


def test_naming_convention_negative_cases(resolver: StaticResolver) -> None:
    found = _resolve(resolver, "by_convention")
    assert found["request.method"] is None  # two request classes assign it: ambiguous
    assert found["order.missing"] is None  # on no `…Order` class


def test_naming_convention_word_boundary_and_short_names(resolver: StaticResolver) -> None:
    index = resolver.classes
    assert index.matching("stream") == ["LazyStream"]
    assert index.matching("_formset") == ["BaseFormSet", "InlineFormSet", "OrderFormSet"]
    assert index.matching("qs") == []
    assert index.matching("nothing_here") == []


def test_naming_convention_through_a_self_attribute_set_from_a_parameter(
    resolver: StaticResolver,
) -> None:
    module, uses = _method_uses(resolver, "Reader.peek")
    found = _first(resolver.resolve_all(module, uses, "Reader", {}))
    placed = {u.text: _where(found.get((u.line, u.column))) for u in uses}
    assert placed["self.stream"] == _streams("self.stream = stream")
    assert placed["self.stream.read"] == _streams("def read(self):\n        return b")


def test_resolve_all_gives_each_value_of_a_conditional_assignment(
    resolver: StaticResolver,
) -> None:
    module, uses = _method_uses(resolver, "Runner.run")
    found = resolver.resolve_all(module, uses, "Runner", {})
    record = next(u for u in uses if u.text == "self.keeper.record")
    assert [_where(d) for d in found[(record.line, record.column)]] == [
        _streams("def record(self):\n        return 1"),
        _streams("def record(self):\n        return 0"),
    ]
    keeper = next(u for u in uses if u.text == "self.keeper")
    assert [_where(d) for d in found[(keeper.line, keeper.column)]] == [_streams("self.keeper =")]
