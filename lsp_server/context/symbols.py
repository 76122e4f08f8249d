"""What jedi knows about the name under the cursor: kind, signature, docstring, definition.

Jedi is synchronous and not safe to use from several threads at once, so every
call runs on one dedicated worker thread, with a deadline: the event loop
never waits on jedi for longer than the deadline (the thread finishes its
current call in the background). One `jedi.Project` per workspace root is
reused, so jedi's own caches stay warm across requests.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import keyword
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jedi

logger = logging.getLogger(__name__)


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


def first_paragraph(doc: str, limit: int = 600) -> str | None:
    """The first paragraph of a docstring, whitespace-normalised and capped."""
    lines: list[str] = []
    for line in doc.strip().splitlines():
        if not line.strip():
            if lines:
                break
            continue
        lines.append(line.strip())
    text = " ".join(lines)
    if not text:
        return None
    return text if len(text) <= limit else text[: limit - 3] + "..."


class SymbolIndex:
    """Jedi queries for one workspace root, run off the event loop."""

    def __init__(self, root: Path | None) -> None:
        self.root = root
        self._project = jedi.Project(str(root)) if root is not None else None
        self._executor = concurrent.futures.ThreadPoolExecutor(
            max_workers=1, thread_name_prefix="jedi"
        )

    def close(self) -> None:
        """Stop the worker thread (pending jedi calls are abandoned)."""
        self._executor.shutdown(wait=False, cancel_futures=True)

    async def symbol_at(
        self, source: str, path: Path | None, line: int, column: int, *, deadline: float
    ) -> SymbolInfo | None:
        """Facts for the name at 1-based `line`, 0-based `column`; None if there is none.

        Raises `TimeoutError` when jedi takes longer than `deadline` seconds.
        """
        loop = asyncio.get_running_loop()
        future = loop.run_in_executor(
            self._executor, self._symbol_at_sync, source, path, line, column
        )
        return await asyncio.wait_for(future, timeout=deadline)

    def _in_workspace(self, path: Path | None) -> bool:
        if path is None or self.root is None:
            return False
        try:
            path.resolve().relative_to(self.root.resolve())
        except ValueError:
            return False
        return True

    def _symbol_at_sync(
        self, source: str, path: Path | None, line: int, column: int
    ) -> SymbolInfo | None:
        lines = source.splitlines()
        if line < 1 or line > len(lines) or column < 0 or column > len(lines[line - 1]):
            return None
        script = jedi.Script(source, path=str(path) if path else None, project=self._project)
        try:
            names = script.help(line, column)
        except (ValueError, RecursionError) as exc:
            logger.debug("jedi help failed at %s:%d:%d: %s", path, line, column, exc)
            return None
        names = [n for n in names if n.type != "keyword"]
        if not names:
            return None
        word = names[0].name
        if keyword.iskeyword(word):
            return None
        definitions = _safe(script.goto, line, column, follow_imports=True) or names
        inferred = _safe(script.infer, line, column)
        target: Any = definitions[0]
        type_names = tuple(
            dict.fromkeys(n.name for n in inferred if n.type in ("instance", "class"))
        )
        signatures: list[str] = []
        for candidate in (*definitions, *inferred):
            for sig in _safe(candidate.get_signatures) or ():
                text = sig.to_string()
                if text not in signatures:
                    signatures.append(text)
            if signatures:
                break
        doc = ""
        for candidate in (*definitions, *inferred):
            doc = _safe(candidate.docstring, raw=True) or ""
            if doc.strip():
                break
        module_path = getattr(target, "module_path", None)
        def_path = Path(module_path) if module_path else None
        return SymbolInfo(
            name=target.name or word,
            kind=str(target.type),
            full_name=target.full_name,
            signatures=tuple(signatures[:3]),
            doc_summary=first_paragraph(doc) if doc else None,
            type_names=type_names[:3],
            definition_path=def_path,
            definition_line=target.line,
            in_workspace=self._in_workspace(def_path),
        )


def _safe(fn: Any, *args: Any, **kwargs: Any) -> Any:
    """Call a jedi method; jedi raises assorted errors on odd code, which mean 'unknown'."""
    try:
        return fn(*args, **kwargs)
    except (ValueError, AttributeError, TypeError, KeyError, IndexError, RecursionError) as exc:
        logger.debug("jedi %s failed: %s", getattr(fn, "__name__", fn), exc)
        return None
