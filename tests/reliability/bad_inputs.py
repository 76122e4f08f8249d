"""The bad-input cases of `test_bad_input.py`, generated: over 200 documents, URIs and edits.

Each `Case` says what the editor does (open a text, or leave a file on disk only; send
edits, valid or not), where it then hovers and lists code actions. The server must answer
every one of those requests with null or a static answer, quickly, and keep serving.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

MAX_U = 2**31 - 1  # the largest uinteger the LSP allows

SYNTAX_ERRORS = [
    "def f(:\n    return 1\n",
    "class C\n    x = 1\n",
    "x = (1, 2\ny = x\n",
    "if True:\nprint('no indent')\n",
    "def g():\n\treturn 1\n        return 2\n",
    "return x\n",
    "x = 1 +\n",
    "lambda: yield\n",
    "f'{'\n",
    "'''unterminated\n",
    'x = "unterminated\n',
    "@\ndef h(): pass\n",
    "import\n",
    "from . import\n",
    "async def a():\n    await\n",
    "x = [1, 2, 3}\n",
    "def f(a, a): pass\n",
    "for in range(3): pass\n",
    "match x:\n    case\n",
    "\x00\x01\x02 = 3\n",
    "def f():\n    pass\n  x = 1\n",
    "x = 0b102\n",
    "print(1 2)\n",
    "try:\n    pass\n",
    "class (Base): pass\n",
]

UNICODE = [
    "café = 1\nprint(café)\n",
    "π = 3.14159\nrayon = 2\naire = π * rayon ** 2\n",
    "变量 = '值'\nprint(变量)\n",
    "def größe(x):\n    return x\n\ngröße(1)\n",
    's = "😀😀😀"; t = s\n',
    "ｆｕｌｌ = 1\nprint(ｆｕｌｌ)\n",  # full-width letters (NFKC-normalised names)
    "x = '𝔘𝔫𝔦𝔠𝔬𝔡𝔢'  # astral plane\ny = x\n",
    "def f():\n    return '\u202e' + 'rtl'\n",
    "Ω = lambda α, β: α + β\nΩ(1, 2)\n",
    "e\u0301 = 1\nprint(e\u0301)\n",  # a combining accent
]

BASE = (
    '"""A module."""\n\nimport os\n\n\ndef area(width: float, height: float) -> float:\n'
    '    """The area."""\n    return width * height\n\n\nresult = area(2.0, 3.0)\n'
    "print(os.path.join('a', result))\n"
)


@dataclass
class Case:
    """One bad-input scenario."""

    name: str
    text: str | None = None
    """What the editor opens (None: the file is not opened)."""
    disk: bytes | None = None
    """What is on disk under the case's path (None: nothing)."""
    uri: str | None = None
    """A URI of its own (non-file schemes, paths outside the workspace)."""
    changes: list[dict[str, Any]] = field(default_factory=list)
    """`didChange` notifications: {"version": int, "changes": [...]}."""
    positions: list[tuple[int, int]] = field(default_factory=list)

    @property
    def group(self) -> str:
        """The kind of bad input: cases are run by group."""
        return _GROUPS[self.name.split("-")[0]]


_GROUPS = {
    "syntax": "syntax",
    "random": "random-edits",
    "uri": "uris",
    "unopened": "uris",
    "unicode": "unicode",
    "surrogate": "unicode",
    "lone": "unicode",
    "nested": "nesting",
    "long": "nesting",
    "attr": "nesting",
    "deep": "nesting",
    "out": "positions",
    "crlf": "endings",
    "cr": "endings",
    "lfcr": "endings",
    "bom": "endings",
    "utf16": "endings",
    "tabs": "endings",
    "mixed": "endings",
    "not": "bytes",
    "latin1": "bytes",
    "nul": "bytes",
    "five": "size",
    "empty": "size",
    "only": "size",
    "storm": "edits",
    "versions": "edits",
    "change": "edits",
    "bad": "edits",
}


def _positions(text: str) -> list[tuple[int, int]]:
    """A start, a few identifier-ish spots, line ends, and past every end."""
    lines = text.split("\n")
    spots = [(0, 0)]
    for i, line in enumerate(lines[:6]):
        if line:
            spots.append((i, min(len(line) - 1, 4)))
            spots.append((i, len(line)))
    spots += [(len(lines), 0), (MAX_U, MAX_U)]
    picked = list(dict.fromkeys(spots))
    return [picked[1 if len(picked) > 3 else 0], picked[-2], picked[-1]]


def _full(text: str, version: int) -> dict[str, Any]:
    return {"version": version, "changes": [{"text": text}]}


def _ranged(sl: int, sc: int, el: int, ec: int, text: str, version: int) -> dict[str, Any]:
    rng = {"start": {"line": sl, "character": sc}, "end": {"line": el, "character": ec}}
    return {"version": version, "changes": [{"range": rng, "text": text}]}


def cases() -> list[Case]:
    rng = random.Random(15)
    out: list[Case] = []
    for i, text in enumerate(SYNTAX_ERRORS):
        out.append(Case(f"syntax-{i}", text=text, positions=_positions(text)))
        out.append(Case(f"syntax-disk-{i}", disk=text.encode(), positions=_positions(text)))
    for i, text in enumerate(UNICODE):
        positions = [(0, 1), (0, 5), (1, 2)]
        out.append(Case(f"unicode-{i}", text=text, positions=positions))
        out.append(Case(f"unicode-disk-{i}", disk=text.encode(), positions=positions))
    # surrogate pairs at the hover position: UTF-16 offsets inside an astral character
    astral = 'x = "😀a😀b😀"\ny = x\n'
    out.append(Case("surrogate-pair", text=astral, positions=[(0, 5), (0, 6), (0, 8)]))
    out.append(Case("lone-surrogate", text='x = "\ud800"\ny = x\n', positions=[(0, 5), (1, 4)]))
    # line endings, BOM, tabs
    for ending, label in (("\r\n", "crlf"), ("\r", "cr"), ("\n\r", "lfcr")):
        text = BASE.replace("\n", ending)
        out.append(Case(f"{label}", text=text, positions=[(5, 5), (10, 10), (11, 8), (12, 3)]))
        out.append(Case(f"{label}-disk", disk=text.encode(), positions=[(5, 5), (10, 10)]))
    bom = "\ufeff" + BASE
    out.append(Case("bom", text=bom, positions=[(0, 0), (0, 1), (5, 5), (10, 10)]))
    out.append(Case("bom-disk", disk=bom.encode("utf-8"), positions=[(5, 5), (10, 10)]))
    out.append(Case("utf16-disk", disk=BASE.encode("utf-16"), positions=[(5, 5), (10, 10)]))
    tabs = BASE.replace("    ", "\t")
    out.append(Case("tabs", text=tabs, positions=[(7, 1), (7, 3), (10, 10)]))
    mixed = "def f():\n\tif 1:\n\t        return 2\n    \treturn 3\nf()\n"
    out.append(Case("mixed-tabs", text=mixed, positions=_positions(mixed)))
    # bytes that are not UTF-8, on disk (an editor can only send text)
    for i, blob in enumerate(
        [
            b"x = '\xff\xfe'\ny = x\n",
            b"\xc3\x28 = 1\n",
            b"# \x80\x81\x82\nz = 1\n",
            bytes(range(256)),
        ]
    ):
        out.append(Case(f"not-utf8-{i}", disk=blob, positions=[(0, 0), (0, 4), (1, 0), (1, 4)]))
    out.append(Case("latin1", disk="café = 1\n".encode("latin-1"), positions=[(0, 1)]))
    out.append(Case("nul-bytes", disk=b"x = 1\x00\x00\ny = x\n", positions=[(1, 4)]))
    # deeply nested expressions
    for depth in (50, 200, 1000, 5000):
        parens = "x = " + "(" * depth + "1" + ")" * depth + "\ny = x\n"
        out.append(Case(f"nested-parens-{depth}", text=parens, positions=[(0, 0), (1, 4)]))
        lists = "x = " + "[" * depth + "]" * depth + "\ny = x\n"
        out.append(Case(f"nested-lists-{depth}", text=lists, positions=[(0, depth // 2), (1, 4)]))
        ops = "x = " + " + ".join(["a"] * depth) + "\ny = x\n"
        out.append(Case(f"long-binop-{depth}", text=ops, positions=[(0, 8), (1, 4)]))
        attrs = "import os\nx = os" + ".path" * depth + "\n"
        out.append(Case(f"attr-chain-{depth}", text=attrs, positions=[(1, 6), (1, 12)]))
        calls = "def f(a): return a\nx = " + "f(" * depth + "1" + ")" * depth + "\n"
        out.append(Case(f"nested-calls-{depth}", text=calls, positions=[(1, 4), (1, 6)]))
    indent = "".join("    " * i + f"if x{i}:\n" for i in range(90)) + "    " * 90 + "pass\n"
    out.append(Case("deep-indent", text=indent, positions=[(89, 361), (45, 183)]))
    # a 5 MB file, and a 5 MB single line
    big = "".join(f"def fn_{i}(a, b):\n    return a + b + {i}\n\n" for i in range(140_000))
    out.append(Case("five-mb", text=big, positions=[(0, 5), (200_000, 4), (419_999, 0)]))
    line = "x = '" + "a" * 5_000_000 + "'\ny = x\n"
    out.append(Case("five-mb-line", text=line, positions=[(0, 0), (0, 2_500_000), (1, 4)]))
    out.append(Case("empty", text="", positions=[(0, 0), (1, 0)]))
    out.append(Case("only-newlines", text="\n" * 10_000, positions=[(5000, 0)]))
    # positions out of range on a good file
    for i, (ln, ch) in enumerate(
        [(99, 0), (0, 999), (MAX_U, 0), (0, MAX_U), (12, 37), (13, 0), (11, 200), (MAX_U, MAX_U)]
    ):
        out.append(Case(f"out-of-range-{i}", text=BASE, positions=[(ln, ch)]))
    # unopened documents and URIs the server does not own
    out.append(Case("unopened-missing", positions=[(0, 0), (3, 3)]))
    out.append(Case("unopened-on-disk", disk=BASE.encode(), positions=[(5, 5), (10, 10)]))
    for i, uri in enumerate(
        [
            "untitled:Untitled-1",
            "http://127.0.0.1:1/x.py",
            "vscode-notebook-cell:/nb.ipynb#W0sZmlsZQ%3D%3D",
            "file:///etc/passwd",
            "file:///etc/../etc/shadow",
            "file://remotehost/share/x.py",
            "x.py",
            "",
            "file:",
            "file:///%00nul.py",
            "file:///tmp/%ZZ.py",
            "git:/x.py?%7B%22path%22%3A%22x%22%7D",
            "file:///" + "a/" * 2000 + "x.py",
            "jar:file:///x.jar!/x.py",
        ]
    ):
        out.append(Case(f"uri-{i}", text=BASE, uri=uri, positions=[(5, 5), (10, 10)]))
        out.append(Case(f"uri-unopened-{i}", uri=uri, positions=[(5, 5)]))
    # didChange storms and edits the server cannot apply
    storm = [_full(BASE + f"z{v} = {v}\n", v) for v in range(2, 302)]
    out.append(Case("storm-full", text=BASE, changes=storm, positions=[(5, 5), (13, 1)]))
    inc: list[dict[str, Any]] = []
    for v in range(2, 302):
        ln = rng.randrange(0, 14)
        inc.append(_ranged(ln, 0, ln, rng.randrange(0, 3), rng.choice(["", "x", "# c\n", "("]), v))
    out.append(Case("storm-incremental", text=BASE, changes=inc, positions=[(5, 5), (10, 2)]))
    back = [_full(BASE, 5), _full(BASE + "q = 1\n", 3), _full(BASE, 3), _full(BASE, -7)]
    out.append(Case("versions-backwards", text=BASE, changes=back, positions=[(5, 5)]))
    out.append(Case("change-unopened", changes=[_full(BASE, 2)], positions=[(5, 5)]))
    for i, (sl, sc, el, ec) in enumerate(
        [(99, 0, 100, 0), (0, 500, 0, 600), (5, 10, 2, 0), (0, 0, MAX_U, MAX_U), (13, 1, 13, 1)]
    ):
        bad = [_ranged(sl, sc, el, ec, "oops(", 2), _ranged(0, 0, 0, 0, "# still here\n", 3)]
        out.append(Case(f"bad-range-{i}", text=BASE, changes=bad, positions=[(5, 5), (6, 5)]))
    for v in range(45):  # random edits that leave a random, mostly broken, text
        text = BASE
        for _ in range(rng.randrange(1, 6)):
            at = rng.randrange(0, len(text) + 1)
            text = (
                text[:at]
                + rng.choice(["(", ")", ":", "\t", "😀", "\r", "'''", "λ", "\\"])
                + text[at:]
            )
        out.append(Case(f"random-edit-{v}", text=text, positions=_positions(text)[:2]))
    return out
