"""Where a class's members are assigned, by cheap text scans (cached per source).

`StaticResolver.member` looks a name up as a method or nested class (a chunk),
then here: a class attribute (``name = ...`` / ``name: T`` directly in the
class body) or an instance attribute (``self.name = ...`` in a method,
``__init__`` first).
"""

from __future__ import annotations

import functools
import re

from lsp_server.context.source.chunker import ChunkedModule, ChunkKind


def instance_attribute(chunks: ChunkedModule, cls: str, name: str) -> int | None:
    """The first line assigning ``self.name`` in a method of ``cls`` (``__init__`` first)."""
    methods = [c for c in chunks.chunks if c.parent == cls and c.kind is ChunkKind.METHOD]
    methods.sort(key=lambda c: (c.qualname != f"{cls}.__init__", c.start_line))
    for method in methods:
        found = _self_assignments(method.source).get(name)
        if found is not None:
            return method.start_line + found
    return None


#: The targets of an assignment statement (``self.a, self.b: T =``), not ``==``.
_ASSIGNMENT = re.compile(r"^[ \t]*([\w.\t ,]+?)\s*(?::[^=]*)?=(?!=)", re.MULTILINE)


@functools.lru_cache(maxsize=4096)
def _self_assignments(source: str) -> dict[str, int]:
    """``self.name`` assigned in a method's source: name → 0-based line offset of the first."""
    out: dict[str, int] = {}
    for match in _ASSIGNMENT.finditer(source):
        for target in match.group(1).split(","):
            parts = target.strip().split(".")
            if len(parts) == 2 and parts[0] == "self" and parts[1].isidentifier():
                out.setdefault(parts[1], source.count("\n", 0, match.start()))
    return out


def class_attribute(source: str, name: str) -> int | None:
    """0-based line offset of ``name = ...`` / ``name: T`` directly in a class body."""
    return _class_attributes(source).get(name)


@functools.lru_cache(maxsize=4096)
def _class_attributes(source: str) -> dict[str, int]:
    lines = source.split("\n")
    out: dict[str, int] = {}
    if len(lines) < 2:
        return out
    body = lines[1:]
    indent = next((len(ln) - len(ln.lstrip()) for ln in body if ln.strip()), 0)
    for i, line in enumerate(body, start=1):
        if len(line) - len(line.lstrip()) != indent:
            continue
        rest = line[indent:]
        match = _ATTRIBUTE.match(rest)
        if match is not None:
            out.setdefault(match.group(1), i)
    return out


#: ``name = ...``, ``name: T`` (not ``name == ...``) at the start of a class-body line.
_ATTRIBUTE = re.compile(r"(\w+)\s*(?::|=(?!=))")
