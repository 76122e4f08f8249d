"""Evident types for the import map: what ``a.b().c`` refers to, without jedi.

`StaticResolver` places names the imports and the enclosing class explain;
this module follows attribute chains through values whose class is evident
from the code itself, as jedi's inference would for the common cases:

* ``self`` / ``cls`` (the enclosing class), a local with an evident value
  (`names.local_types`: annotations, ``x = Cls(...)``, ``x = self.make()``);
* a class attribute or ``self.x`` assigned in a method (``self.x = Cls(...)``,
  ``self.x = param`` with an annotated parameter, ``x: Cls``), looked for
  through the base classes across files;
* a call: of a class (an instance), of a function or method (its return
  annotation, else the first ``return`` whose value is evident, ``return
  self`` included), and ``@property`` / ``@cached_property`` getters;
* a parameter or loop variable with no evident value (also behind
  ``self.x = param``): the class its name suggests, judged by the attribute
  read on it (`convention`).

Everything is bounded (`MAX_DEPTH` evaluations deep per name) and never
raises: an expression it cannot follow is simply unresolved, for jedi.
"""

from __future__ import annotations

import ast
import logging
from dataclasses import dataclass, field

from lsp_server.context.model import Definition
from lsp_server.context.source.chunker import Chunk, ChunkKind
from lsp_server.context.static.convention import ClassIndex, convention_class
from lsp_server.context.static.modules import Module
from lsp_server.context.static.names import (
    ALTERNATIVES,
    MAX_ALTERNATIVES,
    local_types,
    type_name,
)
from lsp_server.context.static.protocol import Resolver
from lsp_server.context.static.syntax import branches, chunk_tree, is_property, returns_of

logger = logging.getLogger(__name__)

#: How many values deep one name's evaluation may go (``a.b().c.d`` through assignments).
MAX_DEPTH = 16


@dataclass(frozen=True, slots=True)
class Value:
    """What an expression evaluates to: a module, a class, or an instance of a class."""

    kind: str  # "module" | "class" | "instance"
    module: Module = field(repr=False, compare=False)
    qualname: str = ""  # the class's, for "class" and "instance"


@dataclass(frozen=True, slots=True)
class _Part:
    name: str
    called: bool


def _parts(expr: str) -> list[_Part] | None:
    """``self.get().name`` → [self, get(), name]; None for anything not a plain chain."""
    out: list[_Part] = []
    for raw in expr.split("."):
        called = raw.endswith("()")
        name = raw[:-2] if called else raw
        if name.endswith("()"):  # `f()()`: not followed
            return None
        if not name.isidentifier():
            return None
        out.append(_Part(name, called))
    return out or None


class TypeEvaluator:
    """Evaluates dotted expressions to `Value` through a `Resolver` (per request)."""

    def __init__(self, resolver: Resolver, classes: ClassIndex | None) -> None:
        self.r = resolver
        #: workspace class names, for `convention_class`'s guesses (None: no guesses)
        self.classes = classes
        #: value_of's answers, by definition, call and receiver; None while in progress
        self._values: dict[tuple[str, int, bool, str, str, str], Value | None] = {}
        #: the other values of a value assigned ``A() if c else B()``, by the first's key
        self._also: dict[tuple[str, str, str], list[Value]] = {}

    def definition(
        self, module: Module, expr: str, owner: str | None, types: dict[str, str]
    ) -> Definition | None:
        """The definition ``expr``'s last attribute refers to, if its base's value is evident."""
        found = self.definitions(module, expr, owner, types)
        return found[0] if found else None

    def definitions(
        self, module: Module, expr: str, owner: str | None, types: dict[str, str]
    ) -> list[Definition]:
        """`definition`, then those of the base's other values (``A() if c else B()``),
        at most `MAX_ALTERNATIVES` in all."""
        parts = _parts(expr)
        if parts is None or len(parts) < 2 or parts[-1].called:
            return []
        me = Value("instance", module, owner) if owner else None
        out: list[Definition] = []
        try:
            base = self._chain(module, parts[:-1], me, types, MAX_DEPTH, parts[-1].name)
            for value in [base, *self._also.get(_key(base), ())] if base is not None else ():
                found = self.attribute(value, parts[-1].name)
                if found is not None and found not in out and len(out) < MAX_ALTERNATIVES:
                    out.append(found)
        except (RecursionError, ValueError, OSError, SystemError) as exc:
            logger.debug("evaluating %s failed: %s", expr, exc)
        return out

    @property
    def forked(self) -> bool:
        """Whether some value evaluated so far had alternatives (`definitions` may give more)."""
        return any(self._also.values())

    def _first(self, values: list[Value]) -> Value | None:
        """The first of a name's possible values; the others are remembered for it."""
        if not values:
            return None
        rest = self._also.setdefault(_key(values[0]), [])
        for value in values[1:]:
            if _key(value) != _key(values[0]) and value not in rest:
                rest.append(value)
        return values[0]

    def attribute(self, value: Value, name: str) -> Definition | None:
        """Where ``name`` is defined on ``value`` (a module's top level, a class's members)."""
        if value.kind == "module":
            dotted = self.r.dotted_name(value.module)
            if self.r.module_file(f"{dotted}.{name}" if dotted else name) is not None:
                return None  # a submodule
            return self.r.lookup(value.module, name)
        return self.r.member(value.module, value.qualname, name)

    def _chain(
        self,
        module: Module,
        parts: list[_Part],
        me: Value | None,
        types: dict[str, str],
        depth: int,
        then: str | None = None,
    ) -> Value | None:
        """``me`` is what ``self`` is (the receiver's class, also in a base's method);
        ``then`` the attribute read on the chain's value, if any."""
        head = parts[0]
        value: Value | None = None
        if head.name in ("self", "cls") and me is not None and not head.called:
            value = Value("instance" if head.name == "self" else "class", me.module, me.qualname)
        elif head.name in types and not head.called:
            rest = {k: v for k, v in types.items() if k != head.name}
            for text in types[head.name].split(ALTERNATIVES):
                value = self.evaluate(module, text, me, rest, depth - 1)
                if value is not None:
                    break
            attr = parts[1].name if len(parts) > 1 else then
            if value is None and attr is not None and self.classes is not None:
                # unannotated, or a value not followed: the name's convention
                cls = convention_class(self.r, self.classes, module, head.name, attr)
                value = Value("instance", cls[0], cls[1]) if cls is not None else None
        else:
            home = self.r.module_alias(module, head.name)
            if home is not None:
                value = Value("module", home)
            else:
                found = self.r.lookup(module, head.name)
                value = self.value_of(found, head.called, depth - 1, None) if found else None
            head = _Part(head.name, False)  # the call is applied already
        if value is not None and head.called:
            value = self._call(value)
        for i, part in enumerate(parts[1:], start=2):
            if value is None:
                return None
            if value.kind == "module":
                dotted = f"{self.r.dotted_name(value.module)}.{part.name}"
                path = self.r.module_file(dotted)
                sub = self.r.modules.file(path) if path is not None else None
                if sub is not None:
                    value = Value("module", sub)
                    continue
            found = self.attribute(value, part.name)
            receiver = value if value.kind != "module" else None
            after = parts[i].name if i < len(parts) else then
            value = self.value_of(found, part.called, depth - 1, receiver, after) if found else None
        return value

    def evaluate(
        self,
        module: Module,
        expr: str,
        me: Value | None,
        types: dict[str, str],
        depth: int,
        then: str | None = None,
    ) -> Value | None:
        """The value of ``expr`` in ``module`` (``self`` being ``me``, with local ``types``);
        ``then`` is the attribute to be read on it, for `convention_class`."""
        parts = _parts(expr)
        if parts is None or depth <= 0:
            return None
        return self._chain(module, parts, me, types, depth, then)

    @staticmethod
    def _call(value: Value) -> Value | None:
        return Value("instance", value.module, value.qualname) if value.kind == "class" else None

    def value_of(
        self,
        d: Definition,
        called: bool,
        depth: int,
        receiver: Value | None,
        then: str | None = None,
    ) -> Value | None:
        """What the name defined at ``d`` holds (called when ``called``); ``receiver`` is
        the instance or class it was found on, which ``self`` means in its methods;
        ``then`` the attribute read on the value next (``self.x = param``: its guess)."""
        if depth <= 0 or d.path is None:
            return None
        me = ("", "") if receiver is None else (receiver.module.display, receiver.qualname)
        key = (d.path.as_posix(), d.line, called, *me, then or "")
        if key in self._values:  # known, or a cycle (`a = b`, `b = a`)
            return self._values[key]
        self._values[key] = None
        found = self._value_of(d, called, depth, receiver, then)
        self._values[key] = found
        return found

    def _value_of(
        self, d: Definition, called: bool, depth: int, receiver: Value | None, then: str | None
    ) -> Value | None:
        assert d.path is not None
        home = self.r.modules.file(d.path)
        chunk = home.chunks.enclosing(d.line) if home is not None else None
        if home is None or chunk is None:
            return None
        if chunk.start_line == d.line and chunk.kind is ChunkKind.CLASS:
            cls = Value("class", home, chunk.qualname)
            return self._call(cls) if called else cls
        if chunk.start_line == d.line and chunk.kind in (ChunkKind.FUNCTION, ChunkKind.METHOD):
            if called or is_property(chunk):
                return self.returns(home, chunk, depth - 1, receiver)
            return None
        value = self._assigned(home, chunk, d, depth - 1, receiver, None if called else then)
        if value is not None and called:
            return self._call(value)
        return value

    def returns(
        self, home: Module, chunk: Chunk, depth: int, receiver: Value | None = None
    ) -> Value | None:
        """The value a function returns: its annotation, else its first evident ``return``."""
        tree = chunk_tree(chunk.source)
        node = tree.body[0] if tree is not None and tree.body else None
        if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) or depth <= 0:
            return None
        me = _me(home, chunk, receiver)
        annotated = type_name(node.returns)
        if annotated is not None:
            if annotated == "Self" and me is not None:
                return Value("instance", me.module, me.qualname)
            found = self.evaluate(home, annotated, me, {}, depth)
            return self._call(found) if found is not None else None
        types: dict[str, str] | None = None
        for ret in returns_of(node):
            for text in branches(ret):
                if types is None:
                    types = local_types(home.lines, chunk.start_line, chunk.end_line)
                found = self.evaluate(home, text, me, types, depth)
                if found is not None and found.kind != "module":
                    return found
        return None

    def _assigned(
        self,
        home: Module,
        chunk: Chunk,
        d: Definition,
        depth: int,
        receiver: Value | None,
        then: str | None = None,
    ) -> Value | None:
        """The value assigned at ``d`` (a statement in a module run, class body or method)."""
        tree = chunk_tree(chunk.source)
        if tree is None:
            return None
        line = d.line - chunk.start_line + 1
        me = _me(home, chunk, receiver)
        for node in ast.walk(tree):
            if getattr(node, "lineno", None) != line:
                continue
            if isinstance(node, ast.AnnAssign):
                annotated = type_name(node.annotation)
                found = self.evaluate(home, annotated, me, {}, depth) if annotated else None
                return self._call(found) if found is not None else None
            if isinstance(node, ast.Assign) and len(node.targets) == 1:
                types: dict[str, str] = {}
                if chunk.kind in (ChunkKind.FUNCTION, ChunkKind.METHOD):
                    types = local_types(home.lines, chunk.start_line, chunk.end_line)
                    if isinstance(node.targets[0], ast.Name):  # not `self.x = x`
                        types.pop(d.name, None)
                arms = branches(node.value)[:MAX_ALTERNATIVES]
                values = [self.evaluate(home, text, me, types, depth, then) for text in arms]
                return self._first([v for v in values if v is not None])
        return None


def _key(value: Value) -> tuple[str, str, str]:
    return (value.kind, value.module.display, value.qualname)


def _me(home: Module, chunk: Chunk, receiver: Value | None) -> Value | None:
    """What ``self`` is in ``chunk``: the receiver when known, else the chunk's own class."""
    if receiver is not None and receiver.kind != "module":
        return receiver
    owner = chunk.qualname if chunk.kind is ChunkKind.CLASS else chunk.parent
    return Value("instance", home, owner) if owner else None
