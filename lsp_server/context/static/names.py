"""Which names a piece of code uses, and which of its module's imports bring them in.

The assembler asks jedi for the definitions of the names a target uses; this
module finds those names with the stdlib ``ast``, cheaply and without jedi:
plain names read (``apply_discount``) and attributes read (``self.total``,
``models.Q``), in order of first appearance, deduplicated by their dotted text.
Names bound inside the target itself (parameters, assignments, loop and
``with`` targets, nested defs, local imports) are skipped: a locally shadowed
name has its definition in the target already. Builtins are skipped unless the
module rebinds them.

A target is whole lines of a file, possibly indented (a method) or not whole
statements (an arbitrary range to explain). It is dedented by its first line's
indentation; when it still does not parse, ``tokenize`` finds the names
instead (no shadowing analysis then). Columns are converted from ast's UTF-8
byte offsets to code points, as jedi and LSP count them here.
"""

from __future__ import annotations

import ast
import builtins
import functools
import io
import keyword
import logging
import tokenize
import warnings
from dataclasses import dataclass, field

from lsp_server.context.source.chunker import MODULE_QUALNAME, ChunkedModule

logger = logging.getLogger(__name__)

_BUILTINS = frozenset(dir(builtins))
#: `local_types`' value for a name bound locally to something not evident.
UNKNOWN = "?"
#: Between the values of a name assigned several (``a = A() if c else B()``, in turn).
ALTERNATIVES = " | "
MAX_ALTERNATIVES = 3
_SKIP_AFTER = frozenset({"def", "class", "import", "as", "global", "nonlocal"})
_KEYWORDS_SOFT = frozenset({"match", "case", "type", "_"})


@dataclass(frozen=True, slots=True)
class NameUse:
    """A name read in the target: ``line`` 1-based in the file, ``column`` 0-based."""

    text: str  # "apply_discount", "self.total", "?.append" when the base is not dotted
    line: int
    column: int  # of the last component, where jedi resolves the whole expression
    is_attribute: bool
    #: the expression with calls kept (``get_site().domain`` where ``text`` is ``?.domain``)
    expr: str = ""


@dataclass(frozen=True, slots=True)
class ImportStmt:
    """One module-level import statement and the names it binds."""

    start_line: int
    end_line: int
    module: str  # "os.path", ".pricing" ("" for a plain ``import``)
    names: tuple[tuple[str, str], ...]  # (imported name, bound name)

    def render(self, used: frozenset[str]) -> str | None:
        """The statement cut down to the names in ``used``; None if it binds none of them."""
        kept = [(name, bound) for name, bound in self.names if bound in used]
        if not kept:
            return None
        parts = ", ".join(name if name == bound else f"{name} as {bound}" for name, bound in kept)
        return f"from {self.module} import {parts}" if self.module else f"import {parts}"


@dataclass(frozen=True, slots=True)
class ModuleFacts:
    """What a module binds at top level, and its imports (also those under if/try)."""

    imports: tuple[ImportStmt, ...]
    bound: frozenset[str]
    #: first line where a top-level def, class or assignment binds each name (not imports)
    defined: dict[str, int] = field(default_factory=dict)
    stars: tuple[str, ...] = ()  # modules of ``from m import *``, as written


def _parse(text: str) -> ast.Module:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SyntaxWarning)
        warnings.simplefilter("ignore", DeprecationWarning)
        return ast.parse(text)


def _char_col(line: str, byte_col: int) -> int:
    if line.isascii():
        return byte_col
    return len(line.encode("utf-8")[:byte_col].decode("utf-8", errors="replace"))


def _dotted(node: ast.expr) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return f"{_dotted(node.value)}.{node.attr}"
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "super":
        return "super()"
    return "?"


def expression(node: ast.expr, depth: int = 12) -> str:
    """A dotted expression with calls marked: ``self.get(x).name`` → ``self.get().name``,
    ``d[k]`` → ``d.__getitem__()``.

    Anything else (subscripts, literals, operators) is ``?``.
    """
    if depth <= 0:
        return "?"
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        base = expression(node.value, depth - 1)
        return "?" if "?" in base else f"{base}.{node.attr}"
    if isinstance(node, ast.Call):
        func = expression(node.func, depth - 1)
        return "?" if "?" in func else f"{func}()"
    if isinstance(node, ast.Subscript):  # `x[k]` is `x.__getitem__(k)`
        base = expression(node.value, depth - 1)
        return "?" if "?" in base else f"{base}.__getitem__()"
    return "?"


def _import_names(node: ast.Import | ast.ImportFrom) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    for alias in node.names:
        if alias.name == "*":
            continue
        if isinstance(node, ast.Import):
            out.append((alias.name, alias.asname or alias.name.split(".", 1)[0]))
        else:
            out.append((alias.name, alias.asname or alias.name))
    return out


_SCOPES = (
    ast.FunctionDef,
    ast.AsyncFunctionDef,
    ast.ClassDef,
    ast.Lambda,
    ast.ListComp,
    ast.SetComp,
    ast.DictComp,
    ast.GeneratorExp,
)


def _module_scope(tree: ast.AST) -> list[ast.AST]:
    """The nodes of ``tree`` in module scope: a def or class itself, not what it binds inside
    (a method of a class defined under ``try:`` is not a module-level name)."""
    out: list[ast.AST] = []
    stack: list[ast.AST] = [tree]
    while stack:
        node = stack.pop()
        out.append(node)
        if node is tree or not isinstance(node, _SCOPES):
            stack.extend(reversed(list(ast.iter_child_nodes(node))))
    return out


def module_facts(module: ChunkedModule) -> ModuleFacts:
    """Top-level bindings and imports of a chunked module (its module-level runs parsed)."""
    bound: set[str] = set()
    imports: list[ImportStmt] = []
    defined: dict[str, int] = {}
    stars: list[str] = []
    for chunk in module.chunks:
        if chunk.parent is None and chunk.kind.value in ("function", "class"):
            bound.add(chunk.qualname)
            defined.setdefault(chunk.qualname, chunk.start_line)
        if chunk.qualname != MODULE_QUALNAME:
            continue
        try:
            tree = _parse(chunk.source)
        except (SyntaxError, ValueError, RecursionError, MemoryError, SystemError) as exc:
            logger.debug("module run at %d does not parse: %s", chunk.start_line, exc)
            continue
        off = chunk.start_line - 1
        for node in _module_scope(tree):
            if isinstance(node, ast.Import | ast.ImportFrom):
                names = _import_names(node)
                bound.update(b for _, b in names)
                module_name = ""
                if isinstance(node, ast.ImportFrom):
                    module_name = "." * node.level + (node.module or "")
                end = (node.end_lineno or node.lineno) + off
                if any(alias.name == "*" for alias in node.names):
                    stars.append(module_name)
                imports.append(ImportStmt(node.lineno + off, end, module_name, tuple(names)))
            elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
                bound.add(node.id)
                defined.setdefault(node.id, node.lineno + off)
            elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                bound.add(node.name)
                defined.setdefault(node.name, node.lineno + off)
    imports.sort(key=lambda i: i.start_line)
    return ModuleFacts(tuple(imports), frozenset(bound), defined, tuple(stars))


def _dedent(lines: list[str]) -> tuple[str, list[int]]:
    """Strip the first non-blank line's indentation from every line; per-line amounts."""
    first = next((ln for ln in lines if ln.strip()), "")
    indent = len(first) - len(first.lstrip(" \t"))
    removed: list[int] = []
    out: list[str] = []
    for line in lines:
        k = 0
        while k < indent and k < len(line) and line[k] in " \t":
            k += 1
        removed.append(k)
        out.append(line[k:])
    return "\n".join(out), removed


def _local_bindings(tree: ast.Module) -> set[str]:
    bound: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store | ast.Del):
            bound.add(node.id)
        elif isinstance(node, ast.arg):
            bound.add(node.arg)
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            bound.add(node.name)
        elif isinstance(node, ast.Import | ast.ImportFrom):
            bound.update(b for _, b in _import_names(node))
        elif isinstance(node, ast.ExceptHandler | ast.MatchAs | ast.MatchStar) and node.name:
            bound.add(node.name)
    return bound


def used_names(
    lines: list[str],
    start_line: int,
    end_line: int,
    module_bound: frozenset[str] = frozenset(),
    *,
    limit: int = 40,
) -> list[NameUse]:
    """Names read in 1-based lines ``start_line..end_line`` of ``lines``, first use first."""
    region = lines[start_line - 1 : end_line]
    text, removed = _dedent(region)
    try:
        tree = _parse(text)
    except (SyntaxError, ValueError, RecursionError, MemoryError, SystemError) as exc:
        logger.debug("target does not parse alone (%s); scanning tokens", exc)
        return _token_names(region, start_line, module_bound, limit)
    local = _local_bindings(tree)
    text_lines = text.split("\n")
    found: dict[str, NameUse] = {}
    for node in ast.walk(tree):
        use: NameUse | None = None
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load):
            if node.id in local or (node.id in _BUILTINS and node.id not in module_bound):
                continue
            row = node.lineno - 1
            col = _char_col(text_lines[row], node.col_offset)
            use = NameUse(node.id, start_line + row, col + removed[row], False)
        elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Load):
            row = (node.end_lineno or node.lineno) - 1
            line = text_lines[row]
            col = _char_col(line, node.end_col_offset or 0) - len(node.attr)
            if line[col : col + len(node.attr)] != node.attr:  # `a . b` or a comment between
                continue
            use = NameUse(
                _dotted(node), start_line + row, col + removed[row], True, expression(node)
            )
        if use is not None:
            known = found.get(use.text)
            if known is None or (use.line, use.column) < (known.line, known.column):
                found[use.text] = use
    ordered = sorted(found.values(), key=lambda u: (u.line, u.column, u.text))
    return ordered[:limit]


def type_name(node: ast.expr | None) -> str | None:
    """``Foo``, ``mod.Foo``, ``Foo | None``, ``Optional[Foo]``, ``"Foo"`` → the class's name."""
    if node is None:
        return None
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        text = node.value.strip()
        return text if all(p.isidentifier() for p in text.split(".")) else None
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.BitOr):
        if isinstance(node.right, ast.Constant) and node.right.value is None:
            return type_name(node.left)
        return None
    if isinstance(node, ast.Subscript) and _dotted(node.value) in ("Optional", "typing.Optional"):
        return type_name(node.slice)
    dotted = _dotted(node)
    return None if "?" in dotted or "(" in dotted else dotted


def local_types(lines: list[str], start_line: int, end_line: int) -> dict[str, str]:
    """Names with an evident value in lines ``start_line..end_line`` (a function, say).

    Annotated parameters and variables (``order: Order``) and assignments of a
    call to a capitalised name (``q = Query(model)``, ``x = forms.Field()``)
    give a class; other assignments of a dotted expression with calls give that
    expression (``page = paginator.page()``), for `evident` to evaluate.
    A name given several values has them joined by `ALTERNATIVES`, in order.
    Other names bound there (parameters, loop targets) map to `UNKNOWN`: local,
    so never the module-level name they shadow.
    {} when the text does not parse.
    """
    text, _ = _dedent(lines[start_line - 1 : end_line])
    return dict(_local_types(text))


@functools.lru_cache(maxsize=1024)
def _local_types(text: str) -> tuple[tuple[str, str], ...]:
    try:
        tree = _parse(text)
    except (SyntaxError, ValueError, RecursionError, MemoryError, SystemError):
        return ()
    found: dict[str, dict[str, None]] = {}  # values in order of appearance
    bound: set[str] = set()

    def note(name: str, cls: str | None) -> None:
        if cls is not None and cls.rsplit(".", 1)[-1][:1].isupper():
            found.setdefault(name, {})[cls] = None

    for node in ast.walk(tree):
        if isinstance(node, ast.arg):
            note(node.arg, type_name(node.annotation))
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            note(node.target.id, type_name(node.annotation))
        elif (
            isinstance(node, ast.Assign)
            and len(node.targets) == 1
            and isinstance(node.targets[0], ast.Name)
            and isinstance(node.value, ast.Call | ast.Attribute | ast.Name | ast.Subscript)
        ):
            value = expression(node.value)
            if "?" in value or value.split(".", 1)[0].rstrip("()") == node.targets[0].id:
                continue
            cls = type_name(node.value.func) if isinstance(node.value, ast.Call) else None
            if cls is not None and cls.rsplit(".", 1)[-1][:1].isupper():
                note(node.targets[0].id, cls)
            else:
                found.setdefault(node.targets[0].id, {})[value] = None
        elif isinstance(node, ast.withitem) and isinstance(node.optional_vars, ast.Name):
            value = expression(node.context_expr)  # `with x as y`: y = x.__enter__()
            if "?" not in value:
                found.setdefault(node.optional_vars.id, {})[f"{value}.__enter__()"] = None
        if isinstance(node, ast.arg):
            bound.add(node.arg)
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            bound.add(node.id)
    known = {n: ALTERNATIVES.join(v) for n, v in found.items() if len(v) <= MAX_ALTERNATIVES}
    return tuple(sorted((n, known.get(n, UNKNOWN)) for n in bound | set(known)))


def _token_names(
    region: list[str], start_line: int, module_bound: frozenset[str], limit: int
) -> list[NameUse]:
    """Fallback for text that does not parse: NAME tokens, attributes after a dot."""
    found: dict[str, NameUse] = {}
    previous = ""
    chain = ""  # the dotted names read so far (``self.field``), "" after anything else
    readline = io.StringIO("\n".join(region) + "\n").readline
    try:
        for tok in tokenize.generate_tokens(readline):
            if tok.type in (tokenize.NL, tokenize.NEWLINE, tokenize.COMMENT):
                continue
            if tok.type == tokenize.NAME and not keyword.iskeyword(tok.string):
                chain = f"{chain}.{tok.string}" if previous == "." and chain else tok.string
                chain = "" if previous == "." and chain == tok.string else chain
            elif tok.string != ".":
                chain = ""
            if tok.type == tokenize.NAME and previous not in _SKIP_AFTER:
                word = tok.string
                is_attr = previous == "."
                keyword_like = word in _KEYWORDS_SOFT or not word.isidentifier()
                builtin = word in _BUILTINS and word not in module_bound
                if not keyword_like and (is_attr or not builtin) and not keyword.iskeyword(word):
                    name = f"?.{word}" if is_attr else word
                    line = start_line + tok.start[0] - 1
                    use = NameUse(name, line, tok.start[1], is_attr, chain if is_attr else "")
                    found.setdefault(name, use)
            previous = tok.string
    except (tokenize.TokenError, SyntaxError) as exc:  # IndentationError is a SyntaxError
        logger.debug("token scan stopped early: %s", exc)
    ordered = sorted(found.values(), key=lambda u: (u.line, u.column, u.text))
    return ordered[:limit]
