"""The server's own files: private modes, bounded caches, pruning by age and last use."""

from __future__ import annotations

import os
import stat
import time
from pathlib import Path

import pytest

from lsp_server.atomic import write_document
from lsp_server.storage import (
    STAMP,
    open_cache,
    private_dir,
    prune_documents,
    prune_folders,
    touch,
)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture(autouse=True)
def _lenient_umask() -> object:
    old = os.umask(0o022)  # the usual umask: files 0644, folders 0755 unless we say otherwise
    yield None
    os.umask(old)


def test_private_dir_creates_every_missing_level_0700(tmp_path: Path) -> None:
    target = private_dir(tmp_path / "a" / "b" / "c")
    assert [_mode(p) for p in (target, target.parent, target.parent.parent)] == [0o700] * 3
    loose = tmp_path / "loose"
    loose.mkdir(mode=0o755)
    private_dir(loose, own=False)
    assert _mode(loose) == 0o755  # not ours to tighten (e.g. the home directory)
    private_dir(loose)
    assert _mode(loose) == 0o700


def test_open_cache_is_private_bounded_and_inline(tmp_path: Path) -> None:
    cache = open_cache(tmp_path / "store", 1024 * 1024)
    try:
        cache.set("big", b"x" * 200_000)  # larger than diskcache's default file threshold
        assert cache.get("big") == b"x" * 200_000
        assert cache.size_limit == 1024 * 1024
    finally:
        cache.close()
    reopened = open_cache(tmp_path / "store", 1024 * 1024)
    reopened.close()
    entries = list((tmp_path / "store").iterdir())
    assert all(p.is_file() for p in entries)  # values stay inside SQLite: no value files
    assert {_mode(p) for p in entries} == {0o600}
    assert _mode(tmp_path / "store") == 0o700


def test_write_document_is_private_and_prunes_its_folder(tmp_path: Path) -> None:
    folder = tmp_path / "cache" / "explanations"
    write_document(folder / "new.md", "# new\n")
    assert _mode(folder / "new.md") == 0o600
    assert _mode(folder) == 0o700 and _mode(folder.parent) == 0o700
    old = folder / "old.md"
    old.write_text("old")
    month_ago = time.time() - 31 * 86400
    os.utime(old, (month_ago, month_ago))
    write_document(folder / "newer.md", "# newer\n")
    assert sorted(p.name for p in folder.iterdir()) == ["new.md", "newer.md"]


def test_prune_documents_keeps_the_newest_within_age(tmp_path: Path) -> None:
    now = 1_000_000_000.0
    for i in range(6):
        path = tmp_path / f"doc{i}.md"
        path.write_text(str(i))
        os.utime(path, (now - i * 86400, now - i * 86400))  # doc0 newest, one day apart
    assert prune_documents(tmp_path, keep=4, max_age_days=30, now=now) == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"doc{i}.md" for i in range(4)]
    assert prune_documents(tmp_path, keep=4, max_age_days=1.5, now=now) == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["doc0.md", "doc1.md"]


def test_prune_folders_keeps_the_most_recently_used(tmp_path: Path) -> None:
    now = time.time()
    for i in range(5):
        folder = tmp_path / f"ws{i}"
        folder.mkdir()
        (folder / "cache.db").write_bytes(b"x")
        touch(folder / STAMP)
        os.utime(folder / STAMP, (now - i * 3600, now - i * 3600))  # ws0 used last
    in_use = tmp_path / "ws4"  # least recently used, but open in this session
    assert prune_folders(tmp_path, keep=2, spare=in_use) == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ws0", "ws1", "ws4"]
