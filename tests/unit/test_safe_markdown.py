"""Unbreakable fences, and model markdown made safe to render."""

from __future__ import annotations

from pathlib import Path

import pytest
from markdown_it import MarkdownIt

from lsp_server.context.jedi.symbols import SymbolInfo
from lsp_server.render import static_markdown
from lsp_server.safe_markdown import fence, sanitize

_MD = MarkdownIt("commonmark", {"html": True})


def _kinds(markdown: str) -> set[str]:
    tokens = _MD.parse(markdown)
    return {t.type for t in tokens} | {c.type for t in tokens for c in t.children or []}


@pytest.mark.parametrize("content", ["x = 1", "```\nbreak out\n```", "a ```` b ``` c", "`"])
def test_fence_holds_any_content(content: str) -> None:
    fenced = fence(content, "python")
    [token] = _MD.parse(fenced + "\n\nafter")[:1]
    assert token.type == "fence" and token.info == "python"
    assert token.content == content + "\n"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("See ![chart](https://evil.example/c.png?d=KEY) now", "See chart now"),
        ('Icon ![i](<https://e.x/a b.png> "title").', "Icon i."),
        ("<img src=https://evil.example/x.png>ok", "ok"),
        ("a <script>steal()</script>b", "a b"),
        ("a <style>p{}</style>b <iframe src=x></iframe>c", "a b c"),
        ("x <!-- hidden\ncomment --> y", "x  y"),
        ("<b>bold</b> list<int>", "\\<b>bold\\</b> list\\<int>"),
        ("a < b and b > c", "a < b and b > c"),
        ("[run](javascript:alert(1))", "[run](#blocked-alert(1))"),
        ("[d](DATA:text/html;base64,xx)", "[d](#blocked-text/html;base64,xx)"),
        ("[docs](https://docs.python.org/3/)", "[docs](https://docs.python.org/3/)"),
        ("[r]: javascript:alert(1)\n\n[go][r]", "[r]: #blocked-alert(1)\n\n[go][r]"),
    ],
)
def test_sanitize_removes_images_html_and_dangerous_links(text: str, expected: str) -> None:
    assert sanitize(text) == expected


def test_reference_images_become_plain_links() -> None:
    out = sanitize("Logo: ![logo][l] and ![l]\n\n[l]: https://evil.example/l.png")
    assert "image" not in _kinds(out) and "![" not in out


def test_code_blocks_and_spans_are_left_intact() -> None:
    text = (
        "Use `x<y>` or ``a ` <b>`` here.\n\n"
        "```html\n<script>ok()</script>\n![i](https://e.x/i.png)\n```\n\n"
        "~~~~\n<img src=x>\n~~~~\n"
    )
    assert sanitize(text) == text


@pytest.mark.parametrize(
    "text",
    [
        "[a](jav&#x61;script:alert(1))",  # an entity hides the scheme from the patterns
        "- item\n  ```\n![x](https://evil.example/x.png)\n```",  # a fence closed by its list
    ],
)
def test_what_the_patterns_miss_the_parser_catches(text: str) -> None:
    out = sanitize(text)
    assert _kinds(out) <= {"fence"}
    assert _MD.parse(out)[0].content == text + "\n"


def test_plain_answers_are_unchanged() -> None:
    text = "**Summary**: adds VAT.\n\n- `total()` sums items\n- see [docs](https://x.org)\n"
    assert sanitize(text) == text


def test_hover_static_part_fences_signatures_and_sanitises_docstrings() -> None:
    symbol = SymbolInfo(
        name="f",
        kind="function",
        full_name="m.f",
        signatures=('f(sep="```")',),
        doc_summary="Joins. ![x](https://evil.example/d.png) <script>x()</script>",
        type_names=(),
        definition_path=Path("/w/m.py"),
        definition_line=3,
        in_workspace=True,
    )
    markdown = static_markdown(symbol, lambda p: "m.py")
    tokens = _MD.parse(markdown)
    assert tokens[0].type == "fence" and tokens[0].content == 'def f(sep="```")\n'
    assert "Joins. x" in markdown
    assert not _kinds(markdown) & {"image", "html_inline", "html_block"}
