"""Line-range edits: applying a model's replacement to a text, and the edit handed to the engine.

The agent never writes files. A fix is a `ProposedEdit`: the replaced line range
of the original text (also as an LSP range), the new text for that range, and
the whole new file text, which the engine turns into a ``WorkspaceEdit``.
"""

from __future__ import annotations

import logging
import re
from collections import Counter
from dataclasses import dataclass
from difflib import SequenceMatcher

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


def _ending(line: str) -> str:
    return line[len(line.rstrip("\r\n")) :]


def dominant_eol(lines: list[str]) -> str:
    """The most frequent line ending of ``lines`` (first seen on a tie; LF when none)."""
    endings = [e for e in map(_ending, lines) if e]
    return Counter(endings).most_common(1)[0][0] if endings else "\n"


def _region(old: list[str], body: list[str], eol: str) -> list[str]:
    """``body`` as lines with endings: a line equal to one of ``old`` keeps that one's ending."""
    contents = [line.rstrip("\r\n") for line in old]
    kept: dict[int, int] = {}
    for tag, i1, i2, j1, _ in SequenceMatcher(None, contents, body, False).get_opcodes():
        if tag == "equal":
            kept.update({j1 + d: i1 + d for d in range(i2 - i1)})
    out = []
    for j, content in enumerate(body):
        i = kept.get(j)
        out.append(content + ((_ending(old[i]) if i is not None else "") or eol))
    return out


def splice(original: str, start_line: int, end_line: int, replacement: str) -> Splice:
    """Replace lines ``start_line..end_line`` (1-based, inclusive) with ``replacement``.

    ``end_line == start_line - 1`` inserts before ``start_line``. One trailing
    newline of ``replacement`` is ignored. Line endings stay as they were: a
    replacement line equal to a replaced one keeps its ending, a new line takes
    the file's dominant ending, and a file without a final newline still has
    none. ``changed`` is the replaced range in the new text. ``new_text`` and
    ``lsp_range`` are the smallest whole-line edit of the original giving
    ``full_text`` (lines the replacement repeats are not touched), the range as
    0-based (line, UTF-16 character) positions. Raises `ToolError` for a range
    outside the file.
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
    eol = dominant_eol(lines)
    ends_nl = n == 0 or original.endswith(("\n", "\r"))
    body = replacement.replace("\r\n", "\n").replace("\r", "\n")
    body_lines = body.removesuffix("\n").split("\n") if body else []
    new_lines = [
        *lines[: start_line - 1],
        *_region(lines[start_line - 1 : end_line], body_lines, eol),
        *lines[end_line:],
    ]
    for k in range(len(new_lines) - 1):
        if not _ending(new_lines[k]):
            new_lines[k] += eol
    if new_lines and not ends_nl:
        new_lines[-1] = new_lines[-1].rstrip("\r\n")
    full = "".join(new_lines)
    m = len(new_lines)
    prefix = 0
    while prefix < min(n, m) and lines[prefix] == new_lines[prefix]:
        prefix += 1
    suffix = 0
    while suffix < min(n, m) - prefix and lines[n - 1 - suffix] == new_lines[m - 1 - suffix]:
        suffix += 1
    if suffix:
        end_pos = (n - suffix, 0)
    elif ends_nl:
        end_pos = (n, 0)
    else:
        end_pos = (n - 1, _utf16_len(lines[-1]))
    new_text = "".join(new_lines[prefix : m - suffix])
    changed = (start_line, start_line + len(body_lines) - 1)
    return Splice(new_text, full, changed, ((prefix, 0), end_pos))
