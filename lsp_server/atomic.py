"""Write a file so that a reader sees the old text or the new, never half of either.

`write_text_atomic` writes the server's own documents (explanations, answers):
created 0600 in folders made 0700 (see `storage.private_dir`).
`replace_file_bytes` rewrites a user's file for `llm-lsp fix --apply`: the new
file keeps the old one's permission bits (and owner when allowed), and it is
not written when the file changed since the caller read it (`FileChanged`).
"""

from __future__ import annotations

import contextlib
import os
import stat
import tempfile
from pathlib import Path

from lsp_server.storage import private_dir, prune_documents


class FileChanged(Exception):
    """The file's bytes differ from those the change was computed from."""


def write_text_atomic(path: Path, text: str) -> None:
    """Write `text` (UTF-8, newlines as given) to a temp file beside `path`, then rename.

    The file is 0600 (`mkstemp`) and the folders created for it 0700.
    """
    private_dir(path.parent)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as handle:
            handle.write(text)
        os.replace(tmp, path)
    except BaseException:  # leave no temp file behind, whatever stopped us; re-raised
        Path(tmp).unlink(missing_ok=True)
        raise


def write_document(path: Path, text: str) -> None:
    """Write one of the server's documents (an explanation, an answer) and prune its folder:
    documents older than 30 days or beyond the newest 200 are deleted."""
    write_text_atomic(path, text)
    prune_documents(path.parent)


def replace_file_bytes(path: Path, data: bytes, *, expected: bytes) -> None:
    """Replace the existing file `path` with `data`, keeping its mode (and owner if allowed).

    Raises `FileChanged`, writing nothing, when `path` no longer holds
    `expected`; the check is made after the new bytes are on disk, just before
    the rename, so the window in which a change can be lost is as short as it
    can be without locking.
    """
    before = os.stat(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fchmod(handle.fileno(), stat.S_IMODE(before.st_mode))
            if (before.st_uid, before.st_gid) != (os.getuid(), os.getgid()):
                with contextlib.suppress(OSError):  # not allowed to give it away: keep ours
                    os.fchown(handle.fileno(), before.st_uid, before.st_gid)
            os.fsync(handle.fileno())
        if path.read_bytes() != expected:
            raise FileChanged(str(path))
        os.replace(tmp, path)
    except BaseException:  # leave no temp file behind, whatever stopped us; re-raised
        Path(tmp).unlink(missing_ok=True)
        raise
