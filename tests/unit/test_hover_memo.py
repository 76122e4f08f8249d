"""`PreparedHovers`: a kept hover is used only for the same text, name and settings while
the files its pack quotes are unchanged; `name_span` and `line_of`."""

from __future__ import annotations

import os
from pathlib import Path

from lsp_server.context.model import SymbolInfo
from lsp_server.context.pack.pieces import ContextPack, ContextPiece
from lsp_server.pipeline.hover_memo import PreparedHovers, line_of, name_span
from lsp_server.settings import Settings

TEXT = "from lib import helper\n\nvalue = helper(1)  # call\r\n"


def _symbol(definition: Path | None) -> SymbolInfo:
    return SymbolInfo(
        "helper", "function", "lib.helper", ("helper(x)",), None, (), definition, 1, True
    )


def _pack(path: str) -> ContextPack:
    piece = ContextPiece(
        f"{path}:1-2", "definition", "function `helper`", "def helper(x): ...", "full", path=path
    )
    return ContextPack((piece,), tokens=10, budget=100, exact_count=True)


def test_name_span_and_line_of() -> None:
    assert name_span("value = helper(1)", 10) == (8, 14)
    assert name_span("value = helper(1)", 14) == (8, 14)  # just after the name
    assert name_span("value = helper(1)", 7) == (7, 7)
    assert line_of(TEXT, 2) == "value = helper(1)  # call"
    assert line_of(TEXT, 9) == ""


def test_a_kept_hover_serves_the_same_name_until_a_quoted_file_changes(tmp_path: Path) -> None:
    lib = tmp_path / "lib.py"
    lib.write_text("def helper(x): ...\n")
    memo = PreparedHovers(lambda rel: tmp_path / rel)
    settings = Settings()
    key = PreparedHovers.key(tmp_path / "a.py", TEXT, 2, 9)
    assert memo.get(key, settings) is None
    memo.put(key, settings, _symbol(lib), _pack("lib.py"))
    # anywhere on the same name, same text: the same entry
    assert PreparedHovers.key(tmp_path / "a.py", TEXT, 2, 13) == key
    assert memo.get(key, settings) is not None
    assert PreparedHovers.key(tmp_path / "a.py", TEXT + "#", 2, 9) != key
    assert memo.get(key, Settings()) is None  # other settings: dropped
    memo.put(key, settings, _symbol(lib), _pack("lib.py"))
    lib.write_text("def helper(x, y): ...\n")
    os.utime(lib, ns=(1, 1))
    assert memo.get(key, settings) is None  # the quoted file changed on disk
    memo.put(key, settings, _symbol(lib), _pack("lib.py"))
    memo.forget(tmp_path / "unrelated.py")  # another file changed: kept
    assert memo.get(key, settings) is not None
    memo.forget(lib)  # a quoted file changed in the editor
    assert memo.get(key, settings) is None
    memo.put(key, settings, _symbol(lib), _pack("lib.py"))
    memo.forget(tmp_path / "a.py")  # the hovered document itself
    assert memo.get(key, settings) is None
    memo.put(key, settings, _symbol(lib), _pack("lib.py"))
    memo.forget()
    assert memo.get(key, settings) is None
