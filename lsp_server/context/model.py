"""The context engine's value types, shared by every subsystem.

Where a name is defined (`Definition`), where it is used (`Reference`), the
callers of a function (`Callers`) and the facts a hover shows (`SymbolInfo`).
Jedi's queries return them (they are frozen and picklable, so they cross the
jedi child's socket), and the import map, the identifier index and the packs
build and read them without importing the jedi layer.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True, slots=True)
class Definition:
    """Where a name is defined; ``line`` 1-based, ``column`` 0-based (jedi's)."""

    name: str
    full_name: str | None
    kind: str  # jedi's type: "function", "class", "statement", "param", "module", ...
    path: Path | None
    line: int
    column: int
    in_workspace: bool


@dataclass(frozen=True, slots=True)
class Reference:
    """One occurrence of a name; ``line`` 1-based, ``column`` 0-based."""

    path: Path
    line: int
    column: int
    code: str  # the stripped source line, capped
    is_definition: bool


@dataclass(frozen=True, slots=True)
class Callers:
    """The function enclosing a position, and the places that use it (definitions excluded)."""

    function: str  # its name; qualified when jedi knows it
    definition: Definition
    references: tuple[Reference, ...]
    truncated: bool  # the cap or the deadline cut the list short


@dataclass(frozen=True, slots=True)
class SymbolInfo:
    """Static facts about one name, ready to show in a hover."""

    name: str
    kind: str
    full_name: str | None
    signatures: tuple[str, ...]
    doc_summary: str | None
    type_names: tuple[str, ...]
    definition_path: Path | None
    definition_line: int | None  # 1-based
    in_workspace: bool
