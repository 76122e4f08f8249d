"""The server's own files on disk: private folders and files, bounded caches, pruning.

What the server keeps (under the cache directory: the tokenizer file,
explanation and answer documents, conversation summaries, one retrieval index
per workspace; and the usage log) holds the user's code and questions, so it is
private: folders are created 0700, files 0600, whatever the umask.

Every cache is bounded. The diskcache stores get a ``size_limit`` (the figures
below, documented in the README) and keep every value inside their SQLite file
(``disk_min_file_size``), so a store is one folder with ``cache.db`` and its
WAL files, all chmod-ed 0600 when the store is opened; SQLite creates later WAL
files with the database's mode. Per-workspace indexes are pruned to the
`KEEP_INDEXES` most recently used (a stamp file records the last use), and
documents (explanations, answers) older than `DOCUMENT_MAX_AGE_DAYS` or beyond
`KEEP_DOCUMENTS` files are deleted when a new one is written. The usage log is
not a cache: it stays append-only and is never pruned.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import stat
import time
from pathlib import Path

import diskcache

logger = logging.getLogger(__name__)

PRIVATE_DIR = 0o700
PRIVATE_FILE = 0o600
MIB = 1024 * 1024
#: ``size_limit`` of the conversation-summary store.
SUMMARY_CACHE_BYTES = 64 * MIB
#: ``size_limit`` of one workspace's retrieval index (chunks, BM25 terms, embeddings).
INDEX_CACHE_BYTES = 512 * MIB
#: Workspace indexes kept, most recently used first.
KEEP_INDEXES = 20
#: Documents (explanations, answers) kept per folder, and their longest life.
KEEP_DOCUMENTS = 200
DOCUMENT_MAX_AGE_DAYS = 30
#: Values up to this size stay inside SQLite (diskcache writes larger ones to files).
_INLINE_BYTES = 1 << 40
STAMP = "last-used"


def _chmod(path: Path, mode: int) -> None:
    try:
        if stat.S_IMODE(path.lstat().st_mode) != mode:
            os.chmod(path, mode)
    except OSError as exc:  # not ours, or gone: nothing to tighten
        logger.debug("cannot chmod %s: %s", path, exc)


def private_dir(path: Path, *, own: bool = True) -> Path:
    """Create ``path`` and its missing parents 0700; an existing ``path`` is tightened
    to 0700 when ``own`` (a folder of ours), left alone otherwise (e.g. the usage
    log's folder when the user put the log in their home directory)."""
    missing: list[Path] = []
    current = path
    while not current.exists() and current != current.parent:
        missing.append(current)
        current = current.parent
    for folder in reversed(missing):
        with contextlib.suppress(FileExistsError):  # another window made it first
            folder.mkdir(mode=PRIVATE_DIR)
        _chmod(folder, PRIVATE_DIR)
    if own and not missing:
        _chmod(path, PRIVATE_DIR)
    return path


def private_files(folder: Path) -> None:
    """chmod 0600 the regular files directly inside ``folder``."""
    try:
        entries = list(os.scandir(folder))
    except OSError as exc:
        logger.debug("cannot list %s: %s", folder, exc)
        return
    for entry in entries:
        if entry.is_file(follow_symlinks=False):
            _chmod(Path(entry.path), PRIVATE_FILE)


def open_cache(directory: Path, size_limit: int) -> diskcache.Cache:
    """A diskcache store in a private folder, bounded to ``size_limit`` bytes."""
    private_dir(directory)
    cache = diskcache.Cache(str(directory), size_limit=size_limit, disk_min_file_size=_INLINE_BYTES)
    private_files(directory)
    return cache


def touch(stamp: Path) -> None:
    """Record a use: create or refresh ``stamp`` (0600). Failures are logged, not raised."""
    try:
        fd = os.open(stamp, os.O_WRONLY | os.O_CREAT, PRIVATE_FILE)
        os.close(fd)
        os.utime(stamp)
    except OSError as exc:
        logger.debug("cannot touch %s: %s", stamp, exc)


def _last_used(folder: Path) -> float:
    for probe in (folder / STAMP, folder):
        try:
            return probe.stat().st_mtime
        except OSError:
            continue
    return 0.0


def prune_folders(parent: Path, keep: int = KEEP_INDEXES, *, spare: Path | None = None) -> int:
    """Delete all but the ``keep`` most recently used folders in ``parent`` (never
    ``spare``, the one in use). Returns how many were deleted."""
    try:
        folders = [p for p in parent.iterdir() if p.is_dir() and not p.is_symlink()]
    except OSError:
        return 0
    folders.sort(key=_last_used, reverse=True)
    deleted = 0
    for folder in folders[keep:]:
        if spare is not None and folder == spare:
            continue
        shutil.rmtree(folder, ignore_errors=True)
        logger.info("pruned the least recently used index %s", folder)
        deleted += 1
    return deleted


def prune_documents(
    folder: Path,
    keep: int = KEEP_DOCUMENTS,
    max_age_days: float = DOCUMENT_MAX_AGE_DAYS,
    *,
    now: float | None = None,
) -> int:
    """Delete the files in ``folder`` older than ``max_age_days`` or beyond the ``keep``
    newest. Returns how many were deleted."""
    try:
        files = [
            (entry.stat(follow_symlinks=False).st_mtime, Path(entry.path))
            for entry in os.scandir(folder)
            if entry.is_file(follow_symlinks=False)
        ]
    except OSError:
        return 0
    files.sort(reverse=True)
    oldest = (time.time() if now is None else now) - max_age_days * 86400
    deleted = 0
    for rank, (mtime, path) in enumerate(files):
        if rank >= keep or mtime < oldest:
            try:
                path.unlink()
                deleted += 1
            except OSError as exc:
                logger.debug("cannot prune %s: %s", path, exc)
    return deleted
