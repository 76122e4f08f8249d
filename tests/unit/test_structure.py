"""The package's shape: no import cycle inside `lsp_server/`, no module over 400 lines,
and jedi (with parso) imported only by `lsp_server/context/jedi/`.

Imports are read with `ast` from every module, wherever they are written (under
``if TYPE_CHECKING:`` and inside functions too: a cycle through a type-only import
is still a cycle for a reader). Relative imports are resolved against the module's
package; ``from a import b`` counts as an import of ``a.b`` when that is a module,
else of ``a``.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "lsp_server"
MAX_LINES = 400


def module_name(path: Path, package: Path = PACKAGE) -> str:
    """``lsp_server/context/jedi/queries.py`` → ``lsp_server.context.jedi.queries``."""
    parts = list(path.relative_to(package.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def modules(package: Path = PACKAGE) -> dict[str, Path]:
    """Every module of the package by dotted name."""
    return {module_name(p, package): p for p in sorted(package.rglob("*.py"))}


def imported(name: str, path: Path, known: dict[str, Path]) -> Iterator[str]:
    """The dotted names ``path`` (module ``name``) imports, anywhere in its code."""
    is_package = path.name == "__init__.py"
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = name.split(".")
                anchor = anchor if is_package else anchor[:-1]
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                yield sub if sub in known else base


def import_graph(package: Path = PACKAGE) -> dict[str, set[str]]:
    """Module → the package's modules it imports (a module importing itself is ignored)."""
    known = modules(package)
    graph: dict[str, set[str]] = {}
    for name, path in known.items():
        targets = {t for t in imported(name, path, known) if t in known and t != name}
        graph[name] = targets
    return graph


def cycles(graph: dict[str, set[str]]) -> list[frozenset[str]]:
    """The strongly connected components with more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[frozenset[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph.get(node, ())):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component: set[str] = set()
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.add(top)
                if top == node:
                    break
            if len(component) > 1:
                found.append(frozenset(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def path_through(graph: dict[str, set[str]], component: frozenset[str]) -> list[str]:
    """One cycle inside ``component``, as the chain of imports a reader would follow."""
    start = min(component)
    seen = {start: [start]}
    queue = [start]
    while queue:
        node = queue.pop(0)
        for target in sorted(graph[node] & component):
            if target == start:
                return [*seen[node], start]
            if target not in seen:
                seen[target] = [*seen[node], target]
                queue.append(target)
    return sorted(component)


def test_no_new_import_cycle() -> None:
    graph = import_graph()
    found = set(cycles(graph))
    shown = [" -> ".join(path_through(graph, c)) for c in found]
    assert not shown, "import cycles inside lsp_server/:\n" + "\n".join(shown)


def test_the_cycle_check_sees_type_checking_relative_and_submodule_imports(
    tmp_path: Path,
) -> None:
    package = tmp_path / "pkg"
    (package / "sub").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "sub" / "__init__.py").write_text("")
    (package / "a.py").write_text("from pkg.sub import b\n")
    (package / "sub" / "b.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from .. import a\n"
    )
    (package / "c.py").write_text("from pkg.sub import d\n")  # a name, not a module
    graph = import_graph(package)
    assert graph["pkg.a"] == {"pkg.sub.b"}
    assert graph["pkg.sub.b"] == {"pkg.a"}
    assert graph["pkg.c"] == {"pkg.sub"}
    assert cycles(graph) == [frozenset({"pkg.a", "pkg.sub.b"})]
    assert path_through(graph, cycles(graph)[0]) == ["pkg.a", "pkg.sub.b", "pkg.a"]


def test_no_module_over_the_line_limit() -> None:
    long = {
        name: n
        for name, path in modules().items()
        if (n := len(path.read_text(encoding="utf-8").splitlines())) > MAX_LINES
    }
    assert not long, f"modules over {MAX_LINES} lines (split them along a seam): {long}"


def test_only_the_jedi_package_imports_jedi() -> None:
    known = modules()
    outside = {
        name: sorted(
            target
            for target in imported(name, path, known)
            if target.split(".")[0] in ("jedi", "parso")
        )
        for name, path in known.items()
        if not name.startswith("lsp_server.context.jedi.")
    }
    assert {name: found for name, found in outside.items() if found} == {}
