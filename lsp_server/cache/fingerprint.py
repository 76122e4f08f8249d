"""Cache keys: what changes an answer goes in, formatting and comments do not.

Two fingerprints per request (`CacheKeys`):

* **exact**: a hash of the final request (messages, model chain, generation
  parameters, `PROMPT_VERSION`). Any byte of the prompt changing misses.
* **structural**: the task, the symbol's static facts, the model chain and the
  *structural* fingerprint of every piece of code in the context pack (its
  role, title and path; never its line numbers). A piece's fingerprint hashes
  its normalised token stream (`structural_text`): comments, blank lines,
  line breaks inside brackets, indentation widths, quote styles and trailing
  commas before a closing bracket are dropped, while INDENT/DEDENT and logical
  line ends stay (moving a statement out of a block changes meaning). So
  reformatting, comment edits and edits to code outside the pack still hit;
  any change to the code the answer is about misses.

`scope` names the symbol (task, file, qualified name) for the fallback tier:
the latest answer for a scope is served, marked stale, when no live tier can
answer. `pieces` keeps each piece's fingerprint so a stale answer can say what
changed since it was written. No key or fingerprint ever includes an API key.
"""

from __future__ import annotations

import ast
import functools
import hashlib
import io
import json
import textwrap
import tokenize
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from lsp_server.context.pack.pieces import ContextPack

#: Bumped whenever a prompt template or the answer format changes: older entries miss.
PROMPT_VERSION = "2026-12-02.1"

_DROP = frozenset(
    {
        tokenize.COMMENT,
        tokenize.NL,
        tokenize.ENCODING,
        tokenize.ENDMARKER,
        tokenize.TYPE_COMMENT,
    }
)
_CLOSERS = frozenset({")", "]", "}"})


def _digest(value: Any) -> str:
    data = json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(data.encode("utf-8")).hexdigest()


def _string(token: str) -> str:
    """A plain string literal in one canonical spelling (quotes, prefixes); else as is."""
    try:
        value = ast.literal_eval(token)
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        return token
    return repr(value) if isinstance(value, (str, bytes)) else token


def structural_tokens(text: str) -> list[str]:
    """The normalised token stream of ``text`` (see the module docstring).

    Code that does not tokenise (a window cut mid-string) falls back to its
    whitespace-separated words, so only its spacing is forgiven.
    """
    out: list[str] = []
    try:
        readline = io.StringIO(textwrap.dedent(text)).readline
        for tok in tokenize.generate_tokens(readline):
            if tok.type in _DROP:
                continue
            if tok.type == tokenize.INDENT:
                out.append("<indent>")
            elif tok.type == tokenize.DEDENT:
                out.append("<dedent>")
            elif tok.type == tokenize.NEWLINE:
                if out and out[-1] != "<nl>":
                    out.append("<nl>")
            elif tok.type == tokenize.STRING:
                out.append(_string(tok.string))
            else:
                if tok.string in _CLOSERS and out and out[-1] == ",":
                    out.pop()  # magic trailing comma
                out.append(tok.string)
    except (tokenize.TokenError, SyntaxError, ValueError):
        return text.split()
    while out and out[-1] in ("<nl>", "<dedent>"):
        out.pop()
    return out


def structural_text(text: str) -> str:
    """`structural_tokens` joined: equal for code that differs only in formatting/comments."""
    return "\x1f".join(structural_tokens(text))


@functools.lru_cache(maxsize=512)
def code_fingerprint(text: str) -> str:
    """A short hash of ``text``'s structure (kept for the texts seen last: a repeated hover
    fingerprints the same pieces again)."""
    return hashlib.sha256(structural_text(text).encode("utf-8")).hexdigest()[:32]


def pack_pieces(pack: ContextPack) -> dict[str, str]:
    """Each piece's structural fingerprint, by a name a user reads ("target: function `f`")."""
    out: dict[str, str] = {}
    for p in pack.pieces:
        name = f"{p.role}: {p.title}"
        if name in out:
            name = f"{name} ({p.path})"
        out[name] = _digest([p.path, p.form, code_fingerprint(p.text)])[:32]
    return out


@dataclass(frozen=True, slots=True)
class CacheKeys:
    """Where an answer is looked up and stored (see the module docstring)."""

    feature: str
    exact: str
    structural: str | None
    scope: str | None
    scope_label: str = ""
    pieces: Mapping[str, str] = field(default_factory=dict)
    code_scope: str | None = None
    """The code alone (models, parameters, every piece's fingerprint; no question, no
    facts): the semantic layer shares answers only within one code scope."""

    @property
    def dedup(self) -> str:
        """The key identical concurrent requests share one provider call under."""
        return self.structural or self.exact


def exact_key(
    feature: str, messages: Sequence[Mapping[str, Any]], models: Iterable[str], params: Any
) -> str:
    """The exact layer's key: the final request, byte for byte, and what answers it."""
    return _digest([PROMPT_VERSION, feature, list(models), params, list(messages)])


def keys_for(
    feature: str,
    messages: Sequence[Mapping[str, Any]],
    *,
    models: Iterable[str],
    params: Any,
    pack: ContextPack | None,
    facts: Any = None,
    scope: tuple[str, str] | None = None,
) -> CacheKeys:
    """Every key of one request. ``facts``: what else the prompt says (the symbol's static
    facts); ``scope``: (file, qualified name) for the fallback tier."""
    model_list = list(models)
    exact = exact_key(feature, messages, model_list, params)
    structural = None
    pieces: dict[str, str] = {}
    code_scope = None
    if pack is not None:
        pieces = pack_pieces(pack)
        structural = _digest(
            [PROMPT_VERSION, feature, model_list, params, facts, sorted(pieces.items())]
        )
        code_scope = _digest([PROMPT_VERSION, feature, model_list, params, sorted(pieces.items())])
    scope_key = scope_label = None
    if scope is not None:
        scope_key = _digest([feature, list(scope)])
        scope_label = f"{scope[1]} in {scope[0]}"
    return CacheKeys(feature, exact, structural, scope_key, scope_label or "", pieces, code_scope)
