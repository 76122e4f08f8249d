"""Markdown we build or show: code fences nothing can break, and model output made safe.

`fence` wraps code (from the workspace, or jedi's facts about it) in a fence of
more backticks than any run inside it, so a file containing ``` or ````
cannot close its fence early and smuggle text out of a prompt's code block or
into a hover.

`sanitize` cleans a model's markdown before it is shown in a hover or a
document. Rendered markdown is an exfiltration channel: a remote image is
fetched as soon as the hover shows (its URL can carry whatever the model was
told to put there), and raw HTML or ``javascript:``/``data:`` links do worse.
Outside code (fenced blocks and inline code spans stay byte for byte as they
are) it replaces images by their alt text, removes ``<img>``, ``<script>``,
``<style>``, ``<iframe>`` and the like (with their content) and HTML comments,
escapes every other tag-like ``<`` with a backslash, and points links and
link definitions with a dangerous scheme nowhere. The result is then parsed
with markdown-it (the parser VS Code renders hovers with) and checked for any
image, raw HTML or dangerous link left; if one slipped through the text
patterns, the whole answer is shown as plain text in a fence instead.
"""

from __future__ import annotations

import re

from markdown_it import MarkdownIt
from markdown_it.token import Token

_BACKTICKS = re.compile(r"`+")
_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")
_UNSAFE_SCHEMES = ("javascript:", "vbscript:", "data:", "file:")
_SCHEME = r"(?:javascript|vbscript|data|file)\s*:"
_DROP_BLOCKS = re.compile(
    r"<(script|style|iframe|object|embed|svg|math|template|noscript|textarea|title|xmp)\b"
    r"[^>]*>.*?</\1\s*>",
    re.IGNORECASE | re.DOTALL,
)
_DROP_TAGS = re.compile(
    r"</?(?:img|image|script|style|iframe|object|embed|svg|math|template|noscript|textarea"
    r"|title|xmp|meta|link|base|form|input|frame|frameset|video|audio|source|picture)\b[^>]*>",
    re.IGNORECASE,
)
_COMMENT = re.compile(r"<!--.*?(?:-->|$)", re.DOTALL)
_TAG_START = re.compile(r"<(?=[A-Za-z/!?])")
_ALT = r"((?:[^\[\]\\]|\\.|\[[^\]]*\])*)"
_DEST = r"\s*(?:<[^>\n]*>|(?:[^()\s]|\([^()\s]*\))*)(?:\s+(?:\"[^\"]*\"|'[^']*'|\([^)]*\)))?\s*"
_IMAGE = re.compile(r"!\[" + _ALT + r"\]\(" + _DEST + r"\)")
_LINK_SCHEME = re.compile(r"(\]\(\s*<?\s*)" + _SCHEME, re.IGNORECASE)
_DEFINITION_SCHEME = re.compile(r"^( {0,3}\[[^\]]+\]:\s*<?\s*)" + _SCHEME, re.I | re.M)
_MD = MarkdownIt("commonmark", {"html": True})
_MD.validateLink = lambda url: True  # type: ignore[method-assign]  # see every link to judge it


def fence(content: str, info: str = "") -> str:
    """``content`` in a backtick fence longer than any backtick run inside it (at least 3)."""
    longest = max((len(run) for run in _BACKTICKS.findall(content)), default=0)
    ticks = "`" * max(3, longest + 1)
    return f"{ticks}{info}\n{content}\n{ticks}"


def _split_code(text: str) -> list[tuple[bool, str]]:
    """``text`` as (is_code, piece) pieces: fenced blocks and inline code spans are code."""
    pieces: list[tuple[bool, str]] = []
    prose: list[str] = []
    lines = text.splitlines(keepends=True)
    i = 0
    while i < len(lines):
        opened = _FENCE.match(lines[i])
        if opened is None:
            prose.append(lines[i])
            i += 1
            continue
        marker = opened.group(1)
        closing = re.compile(r"^ {0,3}" + re.escape(marker[0]) + "{" + str(len(marker)) + r",}\s*$")
        end = next((j for j in range(i + 1, len(lines)) if closing.match(lines[j])), len(lines))
        pieces.extend(_split_spans("".join(prose)))
        prose = []
        pieces.append((True, "".join(lines[i : end + 1])))
        i = end + 1
    pieces.extend(_split_spans("".join(prose)))
    return pieces


def _split_spans(prose: str) -> list[tuple[bool, str]]:
    """Inline code spans (a backtick run closed by a run of the same length) are code."""
    pieces: list[tuple[bool, str]] = []
    runs = list(_BACKTICKS.finditer(prose))
    start = 0
    k = 0
    while k < len(runs):
        opener = runs[k]
        closer = next(
            (r for r in runs[k + 1 :] if len(r.group()) == len(opener.group())),
            None,
        )
        if closer is None:
            k += 1
            continue
        pieces.append((False, prose[start : opener.start()]))
        pieces.append((True, prose[opener.start() : closer.end()]))
        start = closer.end()
        k = runs.index(closer) + 1
    pieces.append((False, prose[start:]))
    return [p for p in pieces if p[1]]


def _clean_prose(text: str) -> str:
    text = _COMMENT.sub("", text)
    text = _DROP_BLOCKS.sub("", text)
    text = _DROP_TAGS.sub("", text)
    text = _IMAGE.sub(lambda m: m.group(1), text)
    text = text.replace("![", "[")  # reference-style images become plain links
    text = _LINK_SCHEME.sub(r"\1#blocked-", text)
    text = _DEFINITION_SCHEME.sub(r"\1#blocked-", text)
    return _TAG_START.sub(r"\\<", text)


def _unsafe(tokens: list[Token]) -> bool:
    for token in tokens:
        if token.type in ("image", "html_inline", "html_block"):
            return True
        href = token.attrGet("href") if token.type == "link_open" else None
        if isinstance(href, str) and href.strip().lower().startswith(_UNSAFE_SCHEMES):
            return True
        if token.children and _unsafe(token.children):
            return True
    return False


def sanitize(markdown: str) -> str:
    """``markdown`` from a model, safe to render: see the module docstring."""
    cleaned = "".join(
        piece if is_code else _clean_prose(piece) for is_code, piece in _split_code(markdown)
    )
    if _unsafe(_MD.parse(cleaned)):
        return fence(markdown, "text")
    return cleaned
