"""The fixed rules of the workspace boundary: which names are secret, which directories skipped.

Both rules compare names case-insensitively: on a case-insensitive file system
(macOS, Windows) ``.ENV`` *is* ``.env`` and ``ID_RSA`` *is* ``id_rsa``, so a
case-sensitive list would let them through.

* `is_secret` is true for a path any of whose components names a secrets
  store (``.ssh/``, ``.aws/``, VCS internals …) or whose file name is a
  credentials file (env files, private keys, key stores, tool credentials).
  Secrets are never read, listed or sent, wherever they are.
* `skipped_dir_name` is the one skip-directory rule by name: VCS and tool
  caches, ``node_modules``, virtualenvs and installed packages, build output,
  and every hidden directory. `WorkspaceBoundary` adds the rule by content: a
  directory holding ``pyvenv.cfg`` is a virtualenv whatever its name (``env/``).
* `is_library` tells an installed or standard library (whose signatures and
  docstrings may be quoted to a model) from other files outside the boundary.
"""

from __future__ import annotations

import fnmatch
import itertools
import re
import sysconfig
from collections.abc import Sequence
from pathlib import Path

#: Directories that hold secrets or repository internals, wherever they appear.
SECRET_DIRS = frozenset(
    {".git", ".hg", ".svn", ".bzr", ".aws", ".ssh", ".gnupg", ".docker", ".kube", ".azure"}
)
#: Consecutive components that hold secrets (``~/.config/gh/hosts.yml``).
SECRET_DIR_PAIRS = frozenset({(".config", "gh"), (".config", "gcloud"), (".config", "hub")})
#: File names (glob, lower case) that typically hold secrets.
SECRET_FILES = (
    ".env",
    ".env*",
    "*.env",
    ".envrc",
    "id_rsa*",
    "id_dsa*",
    "id_ecdsa*",
    "id_ed25519*",
    "*.pem",
    "*.key",
    "*.p12",
    "*.pfx",
    "*.jks",
    "*.keystore",
    "*.kdbx",
    "*.gpg",
    ".netrc",
    "_netrc",
    ".pypirc",
    ".npmrc",
    ".yarnrc",
    ".git-credentials",
    ".pgpass",
    ".htpasswd",
    ".s3cfg",
    ".boto",
    "credentials",
    "credentials*.json",
    "secrets.*",
    "service-account*.json",
)
_SECRET_FILE = re.compile("|".join(fnmatch.translate(p) for p in SECRET_FILES))

#: Directory names never walked nor read from (lower case); hidden directories too.
SKIP_DIRS = frozenset(
    {
        "__pycache__",
        "node_modules",
        "venv",
        "site-packages",
        "dist-packages",
        "build",
        "dist",
        "htmlcov",
    }
)
#: A directory holding this file is a virtualenv (skipped whatever its name).
VENV_MARKER = "pyvenv.cfg"


def is_secret_name(name: str) -> bool:
    """Whether a file called ``name`` typically holds secrets (case ignored)."""
    return _SECRET_FILE.fullmatch(name.lower()) is not None


def is_secret(parts: Sequence[str]) -> bool:
    """Whether the path made of ``parts`` is, or lies inside, a secrets store (case ignored)."""
    lowered = [p.lower() for p in parts]
    if any(p in SECRET_DIRS for p in lowered):
        return True
    if any(pair in SECRET_DIR_PAIRS for pair in itertools.pairwise(lowered)):
        return True
    return bool(lowered) and is_secret_name(lowered[-1])


def skipped_dir_name(name: str) -> bool:
    """Whether a directory called ``name`` is skipped by name (case ignored)."""
    lower = name.lower()
    return lower.startswith(".") or lower in SKIP_DIRS or lower.endswith(".egg-info")


def _library_roots() -> tuple[Path, ...]:
    paths = sysconfig.get_paths()
    found = {Path(paths[k]).resolve() for k in ("stdlib", "platstdlib", "purelib", "platlib")}
    return tuple(sorted(found))


_LIBRARY_ROOTS = _library_roots()
_LIBRARY_DIRS = frozenset({"site-packages", "dist-packages", "typeshed"})


def is_library(path: Path) -> bool:
    """Whether ``path`` (symlinks resolved) belongs to an installed or the standard library."""
    try:
        real = path.resolve()
    except (OSError, RuntimeError):
        return False
    if _LIBRARY_DIRS.intersection(p.lower() for p in real.parts):
        return True
    return any(real.is_relative_to(root) for root in _LIBRARY_ROOTS)
