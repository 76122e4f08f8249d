"""Line edits keep the file's line endings and are the smallest whole-line change."""

from __future__ import annotations

import pytest

from lsp_server.agent.edits import Splice, splice


def _apply(original: str, result: Splice) -> str:
    """Apply ``result``'s LSP edit to ``original`` the way an editor would."""
    offsets = [0]
    for line in original.splitlines(keepends=True):
        offsets.append(offsets[-1] + len(line))
    (sl, sc), (el, ec) = result.lsp_range
    start = offsets[min(sl, len(offsets) - 1)] + sc
    end = offsets[min(el, len(offsets) - 1)] + ec
    return original[:start] + result.new_text + original[end:]


@pytest.mark.parametrize(
    ("original", "start", "end", "replacement", "expected"),
    [
        ("a\r\nb\r\nc\r\n", 2, 2, "B\n", "a\r\nB\r\nc\r\n"),
        ("a\rb\rc\r", 2, 2, "B1\nB2\n", "a\rB1\rB2\rc\r"),
        # mixed: untouched lines keep theirs, new lines take the dominant CRLF
        ("a\r\nb\nc\r\nd\r\n", 3, 3, "C\nX\n", "a\r\nb\nC\r\nX\r\nd\r\n"),
        # a repeated line keeps its own (LF) ending inside the replaced range
        ("a\r\nb\nc\r\nd\r\n", 2, 3, "b\nC\n", "a\r\nb\nC\r\nd\r\n"),
        ("a\nb", 3, 2, "c", "a\nb\nc"),
    ],
)
def test_splice_keeps_each_lines_ending(
    original: str, start: int, end: int, replacement: str, expected: str
) -> None:
    result = splice(original, start, end, replacement)
    assert result.full_text == expected
    assert _apply(original, result) == expected


def test_splice_edit_is_the_smallest_whole_line_range() -> None:
    original = "def f():\r\n    x = 1\r\n    y = 2\r\n    return x\r\n"
    result = splice(original, 1, 4, "def f():\n    x = 1\n    y = 3\n    return x\n")
    assert result.lsp_range == ((2, 0), (3, 0))
    assert result.new_text == "    y = 3\r\n"
    assert result.changed == (1, 4)
