"""Line-range edits: applying a model's replacement to a text, and the edit handed to the engine.

The agent never writes files. A fix is a `ProposedEdit`: the replaced line range
of the original text (also as an LSP range), the new text for that range, and
the whole new file text, which the engine turns into a ``WorkspaceEdit``.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass

from lsp_server.agent.workspace import ToolError

logger = logging.getLogger(__name__)

_LINE = re.compile(r"[^\r\n]*(?:\r\n|\r|\n)|[^\r\n]+$")


def count_lines(text: str) -> int:
    """Lines in ``text``, ending at LF, CRLF or CR (a final line without ending counts)."""
    return len(_LINE.findall(text))


@dataclass(frozen=True, slots=True)
class ProposedEdit:
    """A validated fix of one workspace file; plain data for the engine.

    ``start_line``/``end_line`` are the replaced lines of the original text
    (1-based, inclusive; ``end_line == start_line - 1`` is an insertion).
    ``lsp_range`` is the same range as 0-based ((line, UTF-16 character),
    (line, character)) positions, to be replaced by ``new_text``; or replace the
    whole document with ``full_new_file_text``.
    """

    path: str
    start_line: int
    end_line: int
    new_text: str
    full_new_file_text: str
    explanation: str
    lsp_range: tuple[tuple[int, int], tuple[int, int]]


@dataclass(frozen=True, slots=True)
class Splice:
    """One line-range replacement applied to a text."""

    new_text: str
    full_text: str
    changed: tuple[int, int]
    lsp_range: tuple[tuple[int, int], tuple[int, int]]


def _utf16_len(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def splice(original: str, start_line: int, end_line: int, replacement: str) -> Splice:
    """Replace lines ``start_line..end_line`` (1-based, inclusive) with ``replacement``.

    ``end_line == start_line - 1`` inserts before ``start_line``. One trailing
    newline of ``replacement`` is ignored and its line endings follow the
    file's. ``changed`` is the replaced range in the new text; ``lsp_range`` is
    the replaced range of the original as 0-based (line, UTF-16 character)
    positions. Raises `ToolError` for a range outside the file.
    """
    lines = _LINE.findall(original)
    n = len(lines)
    if not (1 <= start_line <= n + 1 and start_line - 1 <= end_line <= n):
        raise ToolError(
            "invalid_range",
            f"Lines {start_line}-{end_line} are not a range of the file, which has {n} lines.",
            hint="Use 1 <= start_line <= end_line <= number of lines "
            "(end_line = start_line - 1 inserts before start_line).",
        )
    eol = "\r\n" if "\r\n" in original else "\n"
    ends_nl = n == 0 or original.endswith(("\n", "\r"))
    body = replacement.replace("\r\n", "\n").replace("\r", "\n")
    body_lines = body.removesuffix("\n").split("\n") if body else []
    new_text = "".join(line + eol for line in body_lines)
    offsets = [0]
    for line in lines:
        offsets.append(offsets[-1] + len(line))
    start_off, end_off = offsets[start_line - 1], offsets[end_line]
    last = lines[-1] if n else ""
    start_pos = (start_line - 1, 0)
    end_pos = (end_line, 0)
    if not ends_nl:
        if end_line == n and new_text:
            new_text = new_text[: -len(eol)]
        if start_line == n + 1:
            new_text = (eol + new_text) if new_text else ""
            start_pos = (n - 1, _utf16_len(last))
        if end_line == n:
            end_pos = (n - 1, _utf16_len(last))
    full = original[:start_off] + new_text + original[end_off:]
    changed = (start_line, start_line + len(body_lines) - 1)
    return Splice(new_text, full, changed, (start_pos, end_pos))
