"""What the value-following helpers need of the import map: the `Resolver` protocol.

`evident.TypeEvaluator` and `convention.convention_class` follow values through
workspace modules with the help of `resolver.StaticResolver`; they see it only
through this protocol, so the resolver can import them without a cycle.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

from lsp_server.context.model import Definition
from lsp_server.context.static.modules import Module, ModuleCache


class Resolver(Protocol):
    """The import map through workspace files (`resolver.StaticResolver`)."""

    @property
    def modules(self) -> ModuleCache:
        """Where workspace modules are read and chunked."""
        ...

    def module_file(self, dotted: str) -> Path | None:
        """``a.b`` → ``root/a/b.py`` or ``root/a/b/__init__.py`` (None outside the root)."""
        ...

    def dotted_name(self, module: Module) -> str:
        """``a.b`` for the module at ``root/a/b.py``; "" outside the root."""
        ...

    def lookup(self, module: Module, name: str) -> Definition | None:
        """Where top-level ``name`` of ``module`` is defined, following re-exports."""
        ...

    def module_alias(self, module: Module, name: str) -> Module | None:
        """The workspace module that top-level ``name`` is bound to, if it is one."""
        ...

    def member(self, module: Module, cls: str, name: str) -> Definition | None:
        """``name`` in class ``cls`` of ``module`` (method or class attribute), or in a base."""
        ...

    def class_of(self, module: Module, dotted: str) -> tuple[Module, str] | None:
        """The module and qualname of the class ``dotted`` names in ``module``."""
        ...
