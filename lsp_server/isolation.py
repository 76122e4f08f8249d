"""How every child process starts: no workspace code runs, no key leaks, work is bounded.

A repository the user opens is not trusted. Python puts the working directory
(``-c``, ``-m``), ``PYTHONPATH``, ``PYTHONSTARTUP`` and the user site on
``sys.path`` before any of our code runs, so a ``json.py`` or ``libcst.py`` in
the child's working directory, or a ``ruff/__main__.py`` reached through
``python -m ruff``, would run with the server's environment (and its API key).
Hence, for every child:

- Python children run ``python -I`` (`python_command`): no ``PYTHON*``
  variables, no working directory or script directory on ``sys.path``, no user
  site. ``lsp_server`` is then found only where this process imported it from:
  the bootstrap puts that directory first on the child's ``sys.path``
  (`server_path`), so a git worktree run with ``PYTHONPATH`` and an installed
  server both work.
- The working directory is one of our own (`private_cwd`: an empty 0700
  temporary directory), never the workspace nor the server's own.
- The environment is an allow-list (`child_env`): ``PATH``, ``HOME``, locale,
  temporary directory and the few variables Windows needs; never a variable
  whose name looks like a credential, even if allowed by name.
- Ruff runs as its binary (``ruff.find_ruff_bin()``), never ``python -m ruff``.
- At most `MAX_CHILDREN` short-lived children run at once (`child_slot`), so
  one model reply calling 40 tools cannot start 40 processes.
- Each child leads its own session; `kill_group` ends the whole group.

`limit_preamble` is Python source a child runs first to cap its own address
space and CPU time (``resource.setrlimit``; not ``preexec_fn``, which is unsafe
in a process with threads): a parser that recurses without bound or spins
hits its own limit and dies alone.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import os
import re
import shutil
import signal
import sys
import tempfile
import weakref
from collections.abc import AsyncIterator, Mapping
from pathlib import Path

#: Short-lived children (ruff, parse checks, tests) allowed to run at once.
MAX_CHILDREN = 4
#: Variables a child may inherit (plus every ``LC_*``).
ENV_ALLOW = frozenset(
    {
        "PATH",
        "HOME",
        "LANG",
        "LANGUAGE",
        "TZ",
        "TMPDIR",
        "TEMP",
        "TMP",
        "SYSTEMROOT",
        "SYSTEMDRIVE",
        "WINDIR",
        "COMSPEC",
        "PATHEXT",
        "USERPROFILE",
        "LOCALAPPDATA",
        "APPDATA",
    }
)
_SECRET_NAME = re.compile(r"KEY|TOKEN|SECRET|PASSWORD|PASSWD|CREDENTIAL|AUTH", re.IGNORECASE)

_cwd: Path | None = None
_slots: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Semaphore] = (
    weakref.WeakKeyDictionary()
)


def looks_secret(name: str) -> bool:
    """Whether an environment variable's name suggests it holds a credential."""
    return bool(_SECRET_NAME.search(name))


def child_env(
    extra: Mapping[str, str] | None = None, *, source: Mapping[str, str] | None = None
) -> dict[str, str]:
    """The allow-listed part of ``source`` (this environment), plus ``extra``."""
    env = {
        k: v
        for k, v in (os.environ if source is None else source).items()
        if (k.upper() in ENV_ALLOW or k.upper().startswith("LC_")) and not looks_secret(k)
    }
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    env.update(extra or {})
    return env


def server_path() -> str:
    """The directory this process imported ``lsp_server`` from (for a child's ``sys.path``)."""
    return str(Path(__file__).resolve().parent.parent)


def python_command(code: str, *args: str) -> list[str]:
    """``python -I -c CODE ARGS``, with `server_path` first on the child's ``sys.path``."""
    boot = f"import sys; sys.path.insert(0, {server_path()!r})\n"
    return [sys.executable, "-I", "-c", boot + code, *args]


def limit_preamble(*, memory_bytes: int, cpu_seconds: int) -> str:
    """Source a child runs first to cap its address space and CPU time (where supported)."""
    return (
        "try:\n"
        "    import resource\n"
        f"    resource.setrlimit(resource.RLIMIT_AS, ({memory_bytes}, {memory_bytes}))\n"
        f"    resource.setrlimit(resource.RLIMIT_CPU, ({cpu_seconds}, {cpu_seconds + 1}))\n"
        "except (ImportError, ValueError, OSError):\n"
        "    pass\n"
    )


def private_cwd() -> Path:
    """An empty directory of our own (0700, removed at exit) for children to run in."""
    global _cwd
    if _cwd is None or not _cwd.is_dir():
        _cwd = Path(tempfile.mkdtemp(prefix="llm-lsp-child-"))
        atexit.register(shutil.rmtree, _cwd, True)
    return _cwd


def kill_group(pid: int) -> None:
    """SIGKILL the process group ``pid`` leads (a child started with ``start_new_session``);
    also after the leader has exited, so grandchildren it left behind die too."""
    if sys.platform == "win32":  # pragma: no cover - no process groups there
        return
    with contextlib.suppress(ProcessLookupError, PermissionError):  # the group is gone
        os.killpg(pid, signal.SIGKILL)


@contextlib.asynccontextmanager
async def child_slot() -> AsyncIterator[None]:
    """Hold one of `MAX_CHILDREN` places for a child process while it runs."""
    loop = asyncio.get_running_loop()
    slot = _slots.get(loop)
    if slot is None:
        slot = _slots[loop] = asyncio.Semaphore(MAX_CHILDREN)
    async with slot:
        yield
