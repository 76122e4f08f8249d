"""Background warm-up of a workspace and small helpers the assembler shares.

`warm_one` is the per-file job of `Assembler.warm`: it reads a file once,
adds it to the identifier index and chunks it into the module cache, with the
cyclic GC paused around the parse (see `words.paused_gc`).
`memo_display` remembers display paths; `log_rescan` reports a background
rescan's outcome.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from pathlib import Path

from lsp_server.context.index.words import WordIndex, paused_gc
from lsp_server.context.static.modules import ModuleCache

logger = logging.getLogger(__name__)

#: Larger files are indexed but not chunked ahead (``ast.parse`` holds the GIL throughout).
WARM_CHUNK_CHARS = 300_000


def warm_one(words: WordIndex, modules: ModuleCache, path: Path, chunk: bool) -> bool:
    """Index one file and, with ``chunk``, chunk it into ``modules`` (worker thread).

    A file that cannot be indexed or parsed (``ast.parse`` raises MemoryError on
    ~10,000 nested ``not``, RecursionError on deep nesting) is skipped with a log
    line: the warm-up carries on with the next file.
    """
    try:
        return _warm_one(words, modules, path, chunk)
    except (RecursionError, MemoryError, ValueError, SyntaxError, UnicodeError) as exc:
        logger.warning("warm-up skips %s: %s", path, type(exc).__name__)
        return False
    except Exception:  # a bug must not end the warm-up either
        logger.exception("warm-up skips %s", path)
        return False


def _warm_one(words: WordIndex, modules: ModuleCache, path: Path, chunk: bool) -> bool:
    key = words.key(path)
    if key is None:
        return False
    text, stamp = words.read(key)
    if text is None or not words.index_file(key, text, stamp):
        return False
    if chunk and len(text) <= WARM_CHUNK_CHARS:
        with paused_gc():
            modules.get(key, text)
    return True


def memo_display(display: Callable[[Path | None], str]) -> Callable[[Path | None], str]:
    """``display`` remembered per path: it resolves symlinks, a syscall per part, and
    judging call sites asks it for the same few hundred files again and again."""
    known: dict[Path | None, str] = {}

    def cached(path: Path | None) -> str:
        found = known.get(path)
        if found is None:
            if len(known) >= 65_536:
                known.clear()
            found = known[path] = display(path)
        return found

    return cached


def log_rescan(task: asyncio.Task[int]) -> None:
    if task.cancelled():
        return
    error = task.exception()
    if error is not None:
        logger.error("rescanning the workspace failed: %r", error)
    elif task.result():
        logger.info("rescan re-indexed %d changed or new files", task.result())
