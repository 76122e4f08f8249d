"""Reading one file safely: a regular file only, at most a byte cap, never blocking on a FIFO.

`read_capped` is the only place in the package that opens a workspace file for
reading. It opens without following a final symlink (the caller passes the
resolved path, so a link swapped in meanwhile fails instead of being
followed) and non-blocking (opening a FIFO for reading would otherwise wait
for a writer), checks with ``fstat`` on the open descriptor that it is a
regular file (``/dev/zero``, FIFOs, sockets, ``/proc`` entries that report
size 0 are refused), and reads at most ``cap + 1`` bytes, so a file that grows
or lies about its size cannot exhaust memory.

Failures are `Refused` with a ``kind`` the callers map to their own messages.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path
from typing import Literal

RefusalKind = Literal[
    "invalid", "outside", "secret", "ignored", "skipped", "not_a_file", "too_large", "missing",
    "unreadable",
]  # fmt: skip

#: Bytes read per ``os.read`` call.
_CHUNK = 1 << 16


class Refused(Exception):
    """A path the boundary does not let through, and why (``kind``, ``message``)."""

    def __init__(self, kind: RefusalKind, message: str) -> None:
        super().__init__(message)
        self.kind: RefusalKind = kind
        self.message = message


Stamp = tuple[int, int]
"""(st_mtime_ns, st_size) of a file as it was read."""


def read_capped(path: Path, cap: int, shown: str) -> tuple[bytes, Stamp]:
    """The bytes of regular file ``path`` (already resolved) and its stamp.

    Raises `Refused`: ``missing``, ``not_a_file``, ``too_large`` (more than
    ``cap`` bytes), ``unreadable``. ``shown`` names the file in messages.
    """
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOFOLLOW", 0)
    flags |= getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_NOCTTY", 0)
    try:
        fd = os.open(path, flags)
    except FileNotFoundError as exc:
        raise Refused("missing", f"{shown} does not exist") from exc
    except NotADirectoryError as exc:
        raise Refused("missing", f"{shown} does not exist") from exc
    except IsADirectoryError as exc:
        raise Refused("not_a_file", f"{shown} is a directory") from exc
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise Refused("not_a_file", f"{shown} is a symbolic link") from exc
        raise Refused("unreadable", f"{shown} cannot be read: {exc.strerror}") from exc
    try:
        st = os.fstat(fd)
        if stat.S_ISDIR(st.st_mode):
            raise Refused("not_a_file", f"{shown} is a directory")
        if not stat.S_ISREG(st.st_mode):
            raise Refused("not_a_file", f"{shown} is not a regular file")
        if st.st_size > cap:
            raise Refused("too_large", f"{shown} has {st.st_size} bytes; the limit is {cap}")
        chunks: list[bytes] = []
        size = 0
        while size <= cap:
            chunk = os.read(fd, min(_CHUNK, cap + 1 - size))
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
        if size > cap:
            raise Refused("too_large", f"{shown} has more than {cap} bytes")
        return b"".join(chunks), (st.st_mtime_ns, st.st_size)
    except OSError as exc:
        raise Refused("unreadable", f"{shown} cannot be read: {exc.strerror}") from exc
    finally:
        os.close(fd)


def stamp_of(path: Path) -> Stamp | None:
    """(mtime_ns, size) of a regular file at ``path`` (symlinks followed); None otherwise."""
    try:
        st = path.stat()
    except (OSError, ValueError):
        return None
    if not stat.S_ISREG(st.st_mode):
        return None
    return st.st_mtime_ns, st.st_size
