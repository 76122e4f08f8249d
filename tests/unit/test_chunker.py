"""The structure-aware chunker: chunks, skeletons, fingerprints, fallbacks, big files."""

from __future__ import annotations

import ast
import sysconfig
import textwrap
import time
from pathlib import Path

import pytest

from lsp_server.context.source import chunker
from lsp_server.context.source.chunker import (
    ChunkKind,
    chunk_module,
    decode_source,
)
from lsp_server.context.source.focus import focus_skeleton

SAMPLE = textwrap.dedent(
    '''\
    """Module doc."""
    import os
    from typing import Any

    LIMIT = 10  # a constant


    @decorator(1)
    @other
    def func(a: int, b: str = "x:#") -> int:  # note: the header comment goes
        """Do a thing.

        In detail.
        """
        def nested() -> int:
            return 1
        return a + nested()


    async def afunc(
        a: int,
        b: dict[str, int],
    ) -> None:
        await go(a)


    class Klass(Base, metaclass=Meta):
        """A class.

        With two paragraphs.
        """

        attr: int = 1
        other = "v"
        table = {
            "a": 1,
            "b": 2,
            "c": 3,
        }

        @property
        def prop(self) -> int:
            """The prop."""
            return self.attr

        async def amethod(self, x: int = 3) -> None: pass

        class Inner:
            y = 2

            def deep(self):
                return [n for n in range(10)]


    # a comment between chunks

    if __name__ == "__main__":
        func(1, "y")
    '''
)


@pytest.fixture
def sample() -> chunker.ChunkedModule:
    return chunk_module(SAMPLE, "pkg/sample.py")


def _spans(module: chunker.ChunkedModule) -> list[tuple[str, str, int, int]]:
    return [(c.qualname, c.kind.value, c.start_line, c.end_line) for c in module.chunks]


def test_chunks_names_kinds_and_lines(sample: chunker.ChunkedModule) -> None:
    assert sample.parse_error is None
    assert _spans(sample) == [
        ("<module>", "module", 1, 5),
        ("func", "function", 8, 17),
        ("afunc", "function", 20, 24),
        ("Klass", "class", 27, 52),
        ("Klass.prop", "method", 41, 44),
        ("Klass.amethod", "method", 46, 46),
        ("Klass.Inner", "class", 48, 52),
        ("Klass.Inner.deep", "method", 51, 52),
        ("<module>", "module", 57, 58),
    ]
    lines = SAMPLE.split("\n")
    for chunk in sample.chunks:
        assert chunk.path == "pkg/sample.py"
        assert chunk.source == "\n".join(lines[chunk.start_line - 1 : chunk.end_line])
        assert not chunk.is_fallback


def test_async_parents_and_nested_functions(sample: chunker.ChunkedModule) -> None:
    by = {c.qualname: c for c in sample.chunks}
    assert by["afunc"].is_async and by["Klass.amethod"].is_async
    assert not by["func"].is_async
    assert by["Klass.prop"].parent == "Klass"
    assert by["Klass.Inner"].parent == "Klass"
    assert by["Klass.Inner.deep"].parent == "Klass.Inner"
    assert by["func"].parent is None and by["Klass"].parent is None
    assert "nested" not in {c.qualname.rsplit(".", 1)[-1] for c in sample.chunks}
    assert "def nested()" in by["func"].source


def test_decorators_are_in_the_range(sample: chunker.ChunkedModule) -> None:
    func = sample.by_qualname("func")
    prop = sample.by_qualname("Klass.prop")
    assert func is not None and func.source.startswith("@decorator(1)\n@other\ndef func(")
    assert prop is not None and prop.source.startswith("    @property\n    def prop(")


def test_function_skeleton(sample: chunker.ChunkedModule) -> None:
    func = sample.by_qualname("func")
    afunc = sample.by_qualname("afunc")
    prop = sample.by_qualname("Klass.prop")
    assert func is not None and afunc is not None and prop is not None
    assert func.skeleton == textwrap.dedent(
        '''\
        @decorator(1)
        @other
        def func(a: int, b: str = "x:#") -> int:
            """Do a thing.

            In detail.
            """
            ...'''
    )
    assert afunc.skeleton == (
        "async def afunc(\n    a: int,\n    b: dict[str, int],\n) -> None:\n    ..."
    )
    assert prop.skeleton == '@property\ndef prop(self) -> int:\n    """The prop."""\n    ...'


def test_class_skeleton_has_bases_attributes_and_method_signatures(
    sample: chunker.ChunkedModule,
) -> None:
    klass = sample.by_qualname("Klass")
    assert klass is not None
    assert klass.skeleton == textwrap.dedent(
        '''\
        class Klass(Base, metaclass=Meta):
            """A class.

            With two paragraphs.
            """
            attr: int = 1
            other = "v"
            table = ...
            @property
            def prop(self) -> int: ...
            async def amethod(self, x: int = 3) -> None: ...
            class Inner:
                y = 2
                def deep(self): ...'''
    )
    ast.parse(klass.skeleton)


def test_module_runs_are_contiguous(sample: chunker.ChunkedModule) -> None:
    runs = [c for c in sample.chunks if c.kind is ChunkKind.MODULE]
    firsts = [r.source.split("\n")[0] for r in runs]
    assert firsts == ['"""Module doc."""', 'if __name__ == "__main__":']
    assert runs[0].skeleton == runs[0].source
    assert sample.by_qualname("<module>") is runs[0]


def test_enclosing_and_by_qualname(sample: chunker.ChunkedModule) -> None:
    def name(line: int) -> str | None:
        found = sample.enclosing(line)
        return found.qualname if found else None

    assert name(43) == "Klass.prop"  # inside the method, not just the class
    assert name(41) == "Klass.prop"  # its decorator line
    assert name(33) == "Klass"  # a class attribute
    assert name(52) == "Klass.Inner.deep"
    assert name(3) == "<module>"
    assert name(55) is None  # the comment between chunks
    assert name(10_000) is None
    assert sample.by_qualname("Klass.Inner.deep") is sample.chunks[7]
    assert sample.by_qualname("nope") is None


def _only(source: str, name: str) -> chunker.Chunk:
    found = chunk_module(source, "m.py").by_qualname(name)
    assert found is not None
    return found


BASE = 'def f(a, b=1):\n    """Doc."""\n    x = [a, b]\n    return x\n'


def test_fingerprint_ignores_formatting_comments_and_blank_lines() -> None:
    reformatted = (
        "def f(a,\n      b = 1):  # hello\n    '''Doc.'''\n\n    # why\n"
        "    x = [\n        a,\n        b,\n    ]\n\n    return (x)\n"
    )
    one, two = _only(BASE, "f"), _only(reformatted, "f")
    assert one.fingerprint == two.fingerprint
    assert one.content_hash != two.content_hash


def test_fingerprint_changes_with_code_and_docstring() -> None:
    base = _only(BASE, "f").fingerprint
    assert _only(BASE.replace("[a, b]", "[b, a]"), "f").fingerprint != base
    assert _only(BASE.replace("Doc.", "Docs."), "f").fingerprint != base
    assert _only(BASE.replace("b=1", "b=2"), "f").fingerprint != base
    assert _only(BASE.replace("def f", "def g"), "g").fingerprint != base


def test_content_hash_changes_on_a_comment_but_fingerprint_does_not() -> None:
    one = _only(BASE, "f")
    two = _only(BASE.replace("return x", "return x  # done"), "f")
    assert one.content_hash != two.content_hash
    assert one.fingerprint == two.fingerprint


def test_class_fingerprint_follows_its_methods() -> None:
    source = "class A:\n    x = 1\n\n    def m(self):\n        return 1\n"
    one = _only(source, "A")
    assert _only(source.replace("return 1", "return  1 # c"), "A").fingerprint == one.fingerprint
    assert _only(source.replace("return 1", "return 2"), "A").fingerprint != one.fingerprint
    assert _only(source.replace("x = 1", "x = 2"), "A").fingerprint != one.fingerprint


def test_syntax_error_falls_back_to_a_window_around_the_cursor() -> None:
    source = "\n".join(f"x{i} = {i}" for i in range(200)) + "\ndef broken(:\n    pass\n"
    module = chunk_module(source, "m.py", cursor_line=100, window=10)
    assert module.parse_error is not None and "line 201" in module.parse_error
    (chunk,) = module.chunks
    assert (chunk.kind, chunk.qualname, chunk.is_fallback) == (ChunkKind.WINDOW, "<window>", True)
    assert (chunk.start_line, chunk.end_line) == (90, 110)
    assert chunk.source.split("\n")[0] == "x89 = 89"
    edge = chunk_module(source, "m.py", cursor_line=2, window=10).chunks[0]
    assert (edge.start_line, edge.end_line) == (1, 12)


def test_syntax_error_without_cursor_tiles_the_file() -> None:
    source = "def broken(:\n" + "x = 1\n" * 300
    module = chunk_module(source, "m.py", window=40)
    assert module.parse_error is not None
    covered = [line for c in module.chunks for line in range(c.start_line, c.end_line + 1)]
    assert covered == list(range(1, 303))  # 301 lines and the empty one after the last "\n"
    assert all(c.is_fallback for c in module.chunks)


@pytest.mark.parametrize(
    "source",
    [
        "x = 1\x00\n",  # NUL byte
        "x = " + "(" * 300 + ")" * 300 + "\n",  # too many nested parentheses
        "x = 1" + " + 1" * 100_000 + "\n",  # RecursionError while building the AST
    ],
)
def test_unparsable_inputs_do_not_crash(source: str) -> None:
    module = chunk_module(source, "m.py", cursor_line=1)
    assert module.parse_error is not None
    assert [c.kind for c in module.chunks] == [ChunkKind.WINDOW]


def test_warnings_from_the_parser_do_not_break_valid_code() -> None:
    """pytest runs with warnings as errors: an invalid escape must still parse."""
    module = chunk_module('import re\nPAT = re.compile("\\d+")\ndef f():\n    return 1\n', "m.py")
    assert module.parse_error is None
    assert [c.qualname for c in module.chunks] == ["<module>", "f"]


def test_window_around_the_cursor_clamps() -> None:
    [chunk] = chunk_module("a\nb\nc(\n", "m.py", cursor_line=50, window=1).chunks
    assert (chunk.start_line, chunk.end_line, chunk.is_fallback) == (4, 4, True)
    [chunk] = chunk_module("a\nb\nc(", "m.py", cursor_line=2, window=5).chunks
    assert chunk.source == "a\nb\nc("


def test_crlf_and_cr_keep_editor_line_numbers() -> None:
    lf = "import os\n\n\ndef f():\n    return 1\n"
    for text in (lf.replace("\n", "\r\n"), lf.replace("\n", "\r")):
        f = _only(text, "f")
        assert (f.start_line, f.end_line) == (4, 5)
        assert "\r" not in f.source
        assert f.fingerprint == _only(lf, "f").fingerprint


def test_only_real_line_breaks_count() -> None:
    """Form feed, U+2028 and U+0085 are not line breaks for Python or LSP."""
    source = 'x = "a\u2028b\x85c"\n\x0c\ndef f():\n    return "\x0c"\n'
    f = _only(source, "f")
    assert (f.start_line, f.end_line) == (3, 4)


def test_bom_is_dropped() -> None:
    assert decode_source(b"\xef\xbb\xbfdef f():\n    pass\n") == "def f():\n    pass\n"
    f = _only("\ufeffdef f():\n    pass\n", "f")
    assert (f.start_line, f.source) == (1, "def f():\n    pass")


def test_decode_source_handles_bad_bytes_cookies_and_newlines() -> None:
    assert decode_source(b"x = '\xff\xfe'\r\ny = 2\r\n") == "x = '\ufffd\ufffd'\ny = 2\n"
    assert decode_source(b"# -*- coding: latin-1 -*-\nx = '\xe9'\n").endswith("x = 'é'\n")
    assert decode_source(b"# coding: no-such-codec\nx = 1\n").endswith("x = 1\n")
    assert decode_source(b"x = 1\r\rdef f():\r    pass").split("\n")[3] == "    pass"
    module = chunk_module(decode_source(b"s = '\xff'\ndef f(): return '\xc3'\n"), "m.py")
    assert module.parse_error is None and module.by_qualname("f") is not None


def test_non_ascii_columns() -> None:
    source = 'class K:\n    "ünï—"\n    é: str = "ß"\n    def m(self, ä="漢字") -> str: ...\n'
    assert _only(source, "K").skeleton == source.rstrip("\n")


def _stdlib_sample(step: int) -> list[Path]:
    root = Path(sysconfig.get_paths()["stdlib"])
    return sorted(root.glob("*.py"))[::step]


def test_segmented_parsing_matches_whole_file_parsing(monkeypatch: pytest.MonkeyPatch) -> None:
    """Split at every candidate line, the result is the same as parsing in one go."""
    string = 'def f():\n    return """\ndef not_a_function():\n    pass\n"""\n\n'
    compound = "if x:\n    pass\nelse:\n    pass\ntry:\n    pass\nexcept E:\n    pass\n"
    tricky = string + BASE + "@dec\ndef g(): pass\n" + compound
    sources = [tricky] + [decode_source(p.read_bytes()) for p in _stdlib_sample(12)]
    for source in sources:
        monkeypatch.setattr(chunker, "_SEGMENT_CHARS", 10**12)
        whole = chunk_module(source, "m.py")
        monkeypatch.setattr(chunker, "_SEGMENT_CHARS", 1)
        assert chunk_module(source, "m.py") == whole
    assert [c.qualname for c in chunk_module(tricky, "m.py").chunks][:3] == ["f", "f", "g"]


def test_every_skeleton_of_real_code_parses() -> None:
    for path in _stdlib_sample(8):
        for chunk in chunk_module(decode_source(path.read_bytes()), str(path)).chunks:
            ast.parse(chunk.skeleton)


def _generated(size: int) -> str:
    parts, total, i = [], 0, 0
    while total < size:
        rows = "".join(f'        "entry-{i}-{k}-{"x" * 40}",\n' for k in range(12))
        part = (
            f"\n\n@register({i})\n"
            f"def handler_{i}(request: Request, *, retries: int = 3) -> Response:\n"
            f'    """Handle request kind {i}.\n\n    Generated; do not edit.\n    """\n'
            f"    TABLE = [\n{rows}    ]\n"
            f"    return Response(TABLE[request.index % 12])\n\n\n"
            f"class Model{i}(Base):\n"
            f'    """Model {i}."""\n\n'
            f'    name: str = "model_{i}"\n\n'
            f"    def run(self, value: int) -> int:\n"
            f"        return value + {i}\n"
        )
        parts.append(part)
        total += len(part)
        i += 1
    return "".join(parts)


def test_five_megabytes_in_small_gil_holding_pieces(monkeypatch: pytest.MonkeyPatch) -> None:
    """A 5 MB generated module: chunked, and no single ast.parse call sees much of it.

    ast.parse holds the GIL for its whole run; small pieces let the event loop
    run while the chunker works in a thread. Takes about 3 s here.
    """
    source = _generated(5_000_000)
    sizes: list[int] = []
    real_parse = ast.parse

    def recording_parse(text: str, *args: object, **kwargs: object) -> ast.Module:
        sizes.append(len(text))
        return real_parse(text)

    monkeypatch.setattr(ast, "parse", recording_parse)
    started = time.perf_counter()
    module = chunk_module(source, "big.py", cursor_line=10)
    elapsed = time.perf_counter() - started
    assert module.parse_error is None
    n = source.count("@register(")
    assert len(module.chunks) == 3 * n
    assert max(sizes) < 4 * chunker._SEGMENT_CHARS
    assert sum(sizes) < 1.2 * len(source)
    last = module.by_qualname(f"Model{n - 1}.run")
    assert last is not None and last.end_line == source.count("\n")
    assert elapsed < 60, elapsed


def test_a_hovered_class_skeleton_keeps_its_attributes_whole() -> None:
    source = (
        "class Codes:\n"
        '    """Codes."""\n'
        "    FIELDS = [\n" + "".join(f'        "f{i}",\n' for i in range(10)) + "    ]\n"
        "    HUGE = [\n" + "".join(f"        {i},\n" for i in range(40)) + "    ]\n"
        "    def lookup(self, name):\n"
        "        return self.FIELDS.index(name)\n"
    )
    chunk = chunk_module(source, "codes.py").by_qualname("Codes")
    assert chunk is not None
    assert "FIELDS = ...\n" in chunk.skeleton  # another class's skeleton: names only
    kept = focus_skeleton(chunk.source)
    assert kept is not None
    assert '    FIELDS = [\n        "f0",' in kept and '"f9",\n    ]' in kept
    assert "    HUGE = ...\n" in kept  # past the hovered class's limit: still elided
    assert kept.endswith("    def lookup(self, name): ...")
    # its constructor whole (it is hovered where it is called), other methods as headers
    source = (
        "class Point:\n"
        "    def __init__(self, x, y):\n"
        "        self.x = x  # kept\n"
        "        self.y = y\n"
        "    @property\n"
        "    def norm(self):\n"
        "        return (self.x**2 + self.y**2) ** 0.5\n"
    )
    assert focus_skeleton(source) == (
        "class Point:\n"
        "    def __init__(self, x, y):\n"
        "        self.x = x  # kept\n"
        "        self.y = y\n"
        "    @property\n"
        "    def norm(self): ..."
    )
    long_init = "class Big:\n    def __init__(self):\n" + "        self.a = 1\n" * 80
    assert focus_skeleton(long_init) == "class Big:\n    def __init__(self): ..."
    # a nested class's source (indented) is dedented first; not one class: None
    assert focus_skeleton("    class Inner:\n        X = 1\n") == "class Inner:\n    X = 1"
    assert focus_skeleton("x = 1\n") is None
    assert focus_skeleton("class Broken(:\n") is None
