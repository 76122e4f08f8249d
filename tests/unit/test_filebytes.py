"""Mapping a normalised-text change onto a file's bytes."""

from __future__ import annotations

import pytest

from lsp_server.context.source.chunker import decode_source
from lsp_server.filebytes import EditRefused, apply_text_change, read_raw


def _change(data: bytes, old_line: str, new_lines: str) -> bytes:
    text = decode_source(data)
    return apply_text_change(read_raw(data), text, text.replace(old_line, new_lines))


def test_untouched_lines_keep_their_bytes_and_endings() -> None:
    data = b"a = 1\r\nb = 2\r\nc = '\xff'\nd = 4\r\n"  # mixed; new lines take CRLF
    assert _change(data, "b = 2", "b = 20\nb2 = 0") == (
        b"a = 1\r\nb = 20\r\nb2 = 0\r\nc = '\xff'\nd = 4\r\n"
    )


def test_a_line_repeated_inside_the_change_keeps_its_bytes() -> None:
    data = b"x = '\xff'\ny = 1\n"  # the model saw U+FFFD and repeated the line unchanged
    text = decode_source(data)
    new = text.replace("y = 1", "y = 2")
    assert apply_text_change(read_raw(data), text, new) == b"x = '\xff'\ny = 2\n"


def test_no_final_newline_and_bom_survive() -> None:
    data = b"\xef\xbb\xbfa = 1\r\nb = 2"
    assert _change(data, "b = 2", "b = 3\nc = 4") == b"\xef\xbb\xbfa = 1\r\nb = 3\r\nc = 4"


def test_latin1_stays_latin1() -> None:
    data = "# coding: latin-1\nS = 'é'\nT = 1\n".encode("latin-1")
    assert _change(data, "T = 1", "T = 'è'") == "# coding: latin-1\nS = 'é'\nT = 'è'\n".encode(
        "latin-1"
    )


@pytest.mark.parametrize(
    ("data", "old", "new", "why"),
    [
        ("# coding: latin-1\nT = 1\n".encode("latin-1"), "T = 1", "T = '€'", "cannot encode"),
        (b"x = '\xff'\n", "x = '\ufffd'", "x = '\ufffd' + 'a'", "not valid utf-8"),
        (b"# coding: latin-1\nT = 1\n", "# coding: latin-1", "# coding: utf-8", "cookie"),
    ],
)
def test_refuses_what_cannot_be_written_faithfully(
    data: bytes, old: str, new: str, why: str
) -> None:
    with pytest.raises(EditRefused, match=why):
        _change(data, old, new)


def test_refuses_when_the_bytes_no_longer_match_the_text() -> None:
    with pytest.raises(EditRefused, match="changed"):
        apply_text_change(read_raw(b"a = 2\n"), "a = 1\n", "a = 3\n")
