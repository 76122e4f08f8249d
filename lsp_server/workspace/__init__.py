"""The workspace boundary: which files belong to the workspace and may be read or sent.

One object, `WorkspaceBoundary`, built once per workspace (by the engine, or
the CLI) and handed to everything that reads files. Modules: `boundary` (the
object: membership, reading, the one walk, display paths, single-file mode),
`rules` (secret names and the skip-directory rule), `ignore` (``.gitignore``,
``.llmlspignore``, virtualenvs by ``pyvenv.cfg``), `files` (reading one file:
regular only, capped, never blocking).
"""

from __future__ import annotations

from lsp_server.workspace.boundary import (
    MAX_FILES,
    MAX_READ_BYTES,
    BufferReader,
    WorkspaceBoundary,
)
from lsp_server.workspace.files import RefusalKind, Refused, Stamp
from lsp_server.workspace.rules import is_library, is_secret, is_secret_name, skipped_dir_name

__all__ = [
    "MAX_FILES",
    "MAX_READ_BYTES",
    "BufferReader",
    "RefusalKind",
    "Refused",
    "Stamp",
    "WorkspaceBoundary",
    "is_library",
    "is_secret",
    "is_secret_name",
    "skipped_dir_name",
]
