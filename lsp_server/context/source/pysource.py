"""Python source as the context engine reads it: bytes to text, and parsing in pieces.

`decode_source` turns a file's bytes into text the way Python does (PEP 263
cookie or UTF-8, BOM dropped) with every line break normalised to LF, so line
numbers match the editor's. `segments` parses a module piecewise (pieces of
about ``segment_chars`` cut at column-0 statement starts, grown geometrically
when one does not parse alone) so no single ``ast.parse`` call holds the GIL
for seconds on a huge file; see `chunker` for the measurements behind it.
`SourceText` converts ast's UTF-8 byte columns to code points.
"""

from __future__ import annotations

import ast
import io
import logging
import tokenize
import warnings
from collections.abc import Iterator
from pathlib import Path

logger = logging.getLogger(__name__)

NOT_A_START = frozenset(" \t\x0c#)]}")
CONTINUATIONS = ("else", "elif", "except", "finally")


class ParseFailure(Exception):
    """The module does not parse; the message is short enough for a user."""


def normalise_text(text: str) -> str:
    """Drop a BOM, turn CRLF and CR into LF (not U+2028 etc.), replace lone surrogates."""
    if text.startswith("\ufeff"):
        text = text[1:]
    if "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        text = text.encode("utf-8", errors="replace").decode("utf-8")
    return text


def decode_source(data: bytes) -> str:
    """Decode a file's bytes: PEP 263 cookie or UTF-8, BOM stripped, newlines normalised.

    Undecodable bytes become U+FFFD (``errors="replace"``), not surrogate
    escapes: the text goes to JSON-RPC and to tokenizers, which reject lone
    surrogates. Line breaks are ASCII, so line numbers still match the editor's.
    """
    try:
        encoding, _ = tokenize.detect_encoding(io.BytesIO(data).readline)
    except SyntaxError as exc:  # bad cookie, or non-UTF-8 bytes in the first two lines
        logger.debug("encoding not detected (%s); decoding as UTF-8", exc)
        encoding = "utf-8"
    try:
        text = data.decode(encoding, errors="replace")
    except LookupError:
        text = data.decode("utf-8", errors="replace")
    return normalise_text(text)


def read_disk(path: Path) -> str | None:
    """A file's text as the chunker expects it; None when it cannot be read."""
    try:
        return decode_source(path.read_bytes())
    except OSError as exc:
        logger.debug("cannot read %s: %s", path, exc)
        return None


class SourceText:
    """The module's lines, split once; converts ast's UTF-8 byte columns."""

    def __init__(self, text: str) -> None:
        self.lines = text.split("\n")

    def col(self, lineno: int, byte_col: int) -> int:
        line = self.lines[lineno - 1]
        if line.isascii():
            return byte_col
        return len(line.encode("utf-8")[:byte_col].decode("utf-8", errors="replace"))

    def span(self, start: int, end: int) -> str:
        return "\n".join(self.lines[start - 1 : end])

    def segment(self, node: ast.expr | ast.stmt, off: int) -> str:
        l1, l2 = node.lineno + off, (node.end_lineno or node.lineno) + off
        c1 = self.col(l1, node.col_offset)
        c2 = self.col(l2, node.end_col_offset or 0)
        if l1 == l2:
            return self.lines[l1 - 1][c1:c2]
        return "\n".join(
            [self.lines[l1 - 1][c1:], *self.lines[l1 : l2 - 1], self.lines[l2 - 1][:c2]]
        )


def is_statement_start(line: str, previous: str) -> bool:
    if not line or line[0] in NOT_A_START or previous.startswith("@"):
        return False
    head = line.split(None, 1)[0].rstrip(":")
    return head not in CONTINUATIONS


def parse_quietly(source: str) -> ast.Module:
    """``ast.parse`` without SyntaxWarning/DeprecationWarning (``"\\d"`` and the like):
    under ``-W error`` they would turn valid user code into a SyntaxError, and
    otherwise print to stderr on every parse. ``catch_warnings`` swaps the global
    filter list, so an overlapping swap in another thread may leave one side's
    filters in place (django-upgrade's ``ast_parse`` makes the same trade-off)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SyntaxWarning)
        warnings.simplefilter("ignore", DeprecationWarning)
        return ast.parse(source)


def segments(lines: list[str], segment_chars: int) -> Iterator[tuple[list[ast.stmt], int]]:
    """Parse ``lines`` piecewise; yield each piece's statements and its line offset.

    Raises ``ParseFailure`` when the rest of the file from a piece's start does
    not parse, which happens exactly when the whole file does not.
    """
    bounds, size = [0], 0
    for i, line in enumerate(lines):
        if size >= segment_chars and is_statement_start(line, lines[i - 1]):
            bounds.append(i)
            size = 0
        size += len(line) + 1
    bounds.append(len(lines))
    i = 0
    while i < len(bounds) - 1:
        j = i + 1
        while True:
            start, end = bounds[i], bounds[j]
            try:
                tree = parse_quietly("\n".join(lines[start:end]))
                break
            except SyntaxError as exc:
                if end == len(lines):
                    where = f" (line {exc.lineno + start})" if exc.lineno else ""
                    raise ParseFailure(f"{type(exc).__name__}: {exc.msg}{where}") from exc
            except (ValueError, RecursionError, MemoryError) as exc:  # NUL bytes; absurd nesting
                if end == len(lines):
                    raise ParseFailure(f"{type(exc).__name__}: {exc}") from exc
            j = min(len(bounds) - 1, 2 * j - i)  # grow geometrically: linear overall
        yield tree.body, start
        i = j
