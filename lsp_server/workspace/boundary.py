"""`WorkspaceBoundary`: the one answer to "may this file be read, listed or sent to a model?".

Everything that reads workspace files asks it: the agent's tools, the context
engine (its module cache and the jedi facts it quotes), the identifier index
and its warm-up, the naming-convention class index, Ask's corpus, the CLI. A
file is inside the boundary when

* it resolves (symlinks followed) to a path inside the root: a symlink is
  followed only when its target lies inside the root too, and the rules
  below apply to the link's name and to its target's;
* no component names a secrets store and its name is not a credentials file
  (`rules.is_secret`, case-insensitive);
* no directory on the way is skipped (`rules.skipped_dir_name`: VCS, caches,
  ``node_modules``, build output, hidden directories; and any directory
  holding ``pyvenv.cfg``, a virtualenv whatever its name);
* neither a ``.gitignore`` nor a ``.llmlspignore`` ignores it (`ignore.IgnoreRules`).

Reading goes buffers first (the editor's unsaved text, through the one
`BufferReader` type), then the disk through `files.read_capped`: regular
files only, at most ``max_bytes``. `iter_files` is the one walk of the
workspace (same rules, symlinked directories not entered, at most
``max_files``).

**Single-file mode**: without a root (an editor opened a file alone, the CLI
on a file outside any project) the boundary holds only the files admitted to
it: those the editor has open (`document_changed`), or the one file the CLI
was given. Nothing is walked, nothing beside them is read, and their display
path is their bare name, so the model sees those files and nothing else.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path, PurePosixPath

from lsp_server.context.source.pysource import decode_source
from lsp_server.workspace.files import Refused, Stamp, read_capped, stamp_of
from lsp_server.workspace.ignore import IGNORE_FILES, DirRules, IgnoreRules, ignored_by
from lsp_server.workspace.rules import is_library, is_secret, skipped_dir_name

logger = logging.getLogger(__name__)

BufferReader = Callable[[Path], str | None]
"""The editor's open buffer for a path, or None; a dict lookup that never touches the disk."""

#: No file larger than this is read.
MAX_READ_BYTES = 2_000_000
#: A walk stops after this many files.
MAX_FILES = 20_000
#: Verdicts remembered per path (`contains` is asked for the same files again and again),
#: for this many seconds (an edited ignore file counts at once: `document_changed`).
MAX_VERDICTS = 65_536
VERDICT_TTL = 10.0


def _no_buffers(path: Path) -> str | None:
    return None


def _normal(path: Path) -> Path:
    return Path(os.path.normpath(path.absolute()))


class WorkspaceBoundary:
    """Which files of one workspace (or one file) may be read and sent; see the module docstring."""

    def __init__(
        self,
        root: Path | None,
        buffers: BufferReader | None = None,
        *,
        max_bytes: int = MAX_READ_BYTES,
        max_files: int = MAX_FILES,
    ) -> None:
        #: The root as the editor names it (absolute, normalised; symlinks kept); None: single file.
        self.root = _normal(root) if root is not None else None
        #: The root with symlinks resolved.
        self.real_root = root.resolve() if root is not None else None
        self.buffers: BufferReader = buffers or _no_buffers
        self.max_bytes = max_bytes
        self.max_files = max_files
        self._rules = IgnoreRules(self.real_root) if self.real_root is not None else None
        self._same_root = self.root == self.real_root
        self._admitted: set[Path] = set()
        self._lock = threading.Lock()
        self._verdicts: dict[Path, tuple[float, Path | Refused]] = {}

    @classmethod
    def single_file(cls, path: Path, buffers: BufferReader | None = None) -> WorkspaceBoundary:
        """A boundary holding ``path`` alone."""
        boundary = cls(None, buffers)
        boundary.admit(path)
        return boundary

    @property
    def single(self) -> bool:
        """Whether this is single-file mode (no root)."""
        return self.root is None

    # -- membership ------------------------------------------------------------------

    def admit(self, path: Path) -> None:
        """Single-file mode: let ``path`` in (the editor opened it). No-op with a root."""
        if self.single:
            with self._lock:
                self._admitted.add(path.resolve())
                self._verdicts.clear()

    def document_changed(self, path: Path | None) -> None:
        """A document was opened, changed, closed, or a file changed on disk.

        An ignore file's change is taken into account at once; in single-file
        mode an open document is admitted and a closed one leaves.
        """
        if path is None:
            return
        if path.name in IGNORE_FILES and self._rules is not None:
            self._rules.forget()
            with self._lock:
                self._verdicts.clear()
        if self.single:
            real = path.resolve()
            with self._lock:
                if self.buffers(path) is not None:
                    self._admitted.add(real)
                else:
                    self._admitted.discard(real)
                self._verdicts.clear()

    def relative(self, path: Path) -> str | None:
        """``path`` as a POSIX path relative to the root (``"."`` for the root itself), by
        its name as given or else with symlinks resolved; None when outside."""
        if self.root is None or self.real_root is None:
            return None
        try:
            rel = _normal(path).relative_to(self.root)
        except ValueError:
            try:
                rel = path.resolve().relative_to(self.real_root)
            except (ValueError, OSError, RuntimeError):
                return None
        return rel.as_posix() or "."

    def display_path(self, path: Path | None) -> str:
        """How a path is labelled for the user and the model: workspace-relative inside the
        root, the bare name in single-file mode, else the full path (a library)."""
        if path is None:
            return "<unsaved>"
        rel = self.relative(path)
        if rel is not None:
            return rel
        if self.single and self.contains(path):
            return path.name
        return path.as_posix()

    def resolve_relative(self, rel: str) -> Path:
        """The resolved path of ``rel`` (POSIX, as `display_path` gives it) if the boundary
        lets it through, `Refused` if not. In single-file mode: the admitted file so named."""
        if self.root is None:
            with self._lock:
                named = [p for p in self._admitted if p.name == rel]
            if len(named) != 1:
                raise Refused("outside", f"{rel} is not the file open in the editor")
            return self.check(named[0])
        return self.check(self.root / rel)

    def check(self, path: Path) -> Path:
        """The resolved path of ``path`` if the boundary lets it through; `Refused` if not.

        Judges names only (plus ``stat`` calls for the ignore rules): whether the
        file exists, is regular and small enough is for the read to say.
        """
        key = _normal(path)
        now = time.monotonic()
        with self._lock:
            known = self._verdicts.get(key)
        if known is not None and now - known[0] < VERDICT_TTL:
            if isinstance(known[1], Refused):
                raise known[1]
            return known[1]
        try:
            verdict: Path | Refused = self._judge(key)
        except Refused as refused:
            verdict = refused
        with self._lock:
            if len(self._verdicts) >= MAX_VERDICTS:
                self._verdicts.clear()
            self._verdicts[key] = (now, verdict)
        if isinstance(verdict, Refused):
            raise verdict
        return verdict

    def contains(self, path: Path | None) -> bool:
        """Whether ``path`` is inside the boundary (may be read and sent)."""
        if path is None:
            return False
        try:
            self.check(path)
        except Refused:
            return False
        return True

    def may_send(self, path: Path | None) -> bool:
        """Whether the document a request is about may go to a model: one inside the
        boundary, an unsaved buffer without a path, or a file the editor has open outside
        the root or in a skipped directory (a library the user opened), unless it is secret
        or ignored."""
        if path is None:
            return True
        try:
            self.check(path)
        except Refused as refused:
            if refused.kind not in ("outside", "skipped") or self.buffers(path) is None:
                return False
            try:
                return not is_secret(path.resolve().parts)
            except (OSError, RuntimeError):
                return False
        return True

    def quotable(self, path: Path | None) -> bool:
        """Whether what jedi read from ``path`` (a signature, a docstring) may reach a model:
        a file inside the boundary, an installed library, or no file (builtins)."""
        return path is None or self.contains(path) or is_library(path)

    def _judge(self, path: Path) -> Path:
        try:
            real = path.resolve()
        except (OSError, RuntimeError) as exc:
            raise Refused("unreadable", f"{path.name} cannot be resolved: {exc}") from exc
        if self.real_root is None:
            with self._lock:
                admitted = real in self._admitted
            if not admitted:
                raise Refused("outside", f"{path.name} is not the file open in the editor")
            if is_secret(real.parts):
                raise Refused("secret", f"{path.name} may hold secrets")
            return real
        try:
            real_rel = real.relative_to(self.real_root).as_posix()
        except ValueError:
            raise Refused(
                "outside",
                f"{path.name} leads outside the workspace"
                + (" (through a symbolic link)" if self.relative(path) is not None else ""),
            ) from None
        names = {real_rel}
        assert self.root is not None
        with contextlib.suppress(ValueError):
            names.add(path.relative_to(self.root).as_posix())
        for rel in sorted(names):
            self._judge_relative(rel, is_dir=False)
        return real

    def _judge_relative(self, rel: str, *, is_dir: bool) -> None:
        """`Refused` unless workspace-relative ``rel`` passes the name and ignore rules."""
        if rel == ".":
            return
        parts = PurePosixPath(rel).parts
        if is_secret(parts):
            raise Refused("secret", f"{rel} may hold secrets or repository internals")
        dirs = parts if is_dir else parts[:-1]
        if any(skipped_dir_name(p) for p in dirs):
            raise Refused("skipped", f"{rel} lies in a directory that is not part of the code")
        if self._rules is not None and self._rules.ignored(rel, is_dir=is_dir):
            raise Refused("ignored", f"{rel} is excluded by .gitignore or .llmlspignore")

    # -- reading ---------------------------------------------------------------------

    def read_bytes(self, path: Path, *, max_bytes: int | None = None) -> tuple[bytes, Stamp]:
        """The saved bytes of ``path`` and their stamp; `Refused` if not allowed or not
        readable. Blocking: call it off the event loop."""
        real = self.check(path)
        return read_capped(real, max_bytes or self.max_bytes, self.display_path(path))

    def read(self, path: Path, *, max_bytes: int | None = None) -> str:
        """``path``'s text: its open buffer, else the file on disk (decoded like the
        chunker does); `Refused` if not allowed or not readable. Blocking."""
        self.check(path)
        text = self.buffers(path)
        if text is not None:
            return text
        data, _ = self.read_bytes(path, max_bytes=max_bytes)
        return decode_source(data)

    def read_text(self, path: Path, *, max_bytes: int | None = None) -> str | None:
        """Like `read`, None instead of `Refused`. Blocking."""
        try:
            return self.read(path, max_bytes=max_bytes)
        except Refused as refused:
            logger.debug("not read: %s", refused.message)
            return None

    def stamp(self, path: Path) -> Stamp | None:
        """(mtime_ns, size) of ``path`` on disk if it is inside and a regular file."""
        return stamp_of(path) if self.contains(path) else None

    # -- walking ---------------------------------------------------------------------

    def iter_files(self, suffix: str | None = None, limit: int | None = None) -> Iterator[Path]:
        """The workspace's regular files (ending with ``suffix`` if given), directory by directory,
        sorted, at most ``limit`` (default ``max_files``); paths are under `root` as the
        editor names it. Blocking. Nothing in single-file mode but the admitted files."""
        cap = self.max_files if limit is None else limit
        if self.root is None:
            with self._lock:
                admitted = sorted(self._admitted)
            yield from [p for p in admitted if suffix is None or p.name.endswith(suffix)][:cap]
            return
        top = self._rules.rules("") if self._rules is not None else None
        walk = self._walk(str(self.root), "", suffix, (top,) if top is not None else ())
        for found, path in enumerate(walk, start=1):
            yield path
            if found >= cap:
                logger.warning("listed the first %d files of %s only", cap, self.root)
                return

    def iter_python_files(self, limit: int | None = None) -> Iterator[Path]:
        """`iter_files` of ``.py`` files."""
        return self.iter_files(".py", limit)

    def _walk(
        self, directory: str, rel_dir: str, suffix: str | None, levels: tuple[DirRules, ...]
    ) -> Iterator[Path]:
        """Files of ``directory`` (sorted), then its subdirectories' (symlinked ones not
        entered). Each directory and file is judged at its own level only, by the rules of
        its ancestors (``levels``, the root's first): the walk reached it through ancestors
        that passed. Verdicts are remembered for `check`."""
        try:
            with os.scandir(directory) as scan:
                entries = sorted(scan, key=lambda e: e.name)
        except OSError as exc:
            logger.debug("cannot list %s: %s", directory, exc)
            return
        subdirs: list[tuple[str, str, tuple[DirRules, ...]]] = []
        for entry in entries:
            name = entry.name
            rel = f"{rel_dir}/{name}" if rel_dir else name
            try:
                if entry.is_dir(follow_symlinks=False):
                    if self._passes(rel, levels, is_dir=True) and self._rules is not None:
                        own = self._rules.rules(rel)
                        if not own.venv:
                            subdirs.append((entry.path, rel, (*levels, own)))
                    continue
                if suffix is not None and not name.endswith(suffix):
                    continue
                if entry.is_symlink():  # judged in full: where does it lead?
                    path = Path(entry.path)
                    if self.contains(path) and stamp_of(path) is not None:
                        yield path
                    continue
                regular = entry.is_file(follow_symlinks=False)  # not a FIFO, a device
            except OSError:
                continue
            if regular and self._passes(rel, levels, is_dir=False):
                path = Path(entry.path)
                self._remember(path, rel)
                yield path
        for sub, rel, below in subdirs:
            yield from self._walk(sub, rel, suffix, below)

    def _passes(self, rel: str, levels: tuple[DirRules, ...], *, is_dir: bool) -> bool:
        """The rules at the last level of ``rel`` (its ancestors passed already)."""
        parts = rel.split("/")
        if is_secret(parts[-2:]) or (is_dir and skipped_dir_name(parts[-1])):
            return False
        return not ignored_by(levels, parts, is_dir=is_dir)

    def _remember(self, path: Path, rel: str) -> None:
        """A walked regular file is inside: `check` need not resolve it again soon."""
        assert self.real_root is not None
        with self._lock:
            if len(self._verdicts) >= MAX_VERDICTS:
                self._verdicts.clear()
            real = path if self._same_root else self.real_root / rel
            self._verdicts[path] = (time.monotonic(), real)
