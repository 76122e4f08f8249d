"""jedi-language-server, the peer llm-lsp runs beside, in a virtualenv of its own.

Benchmarks (`scripts/bench_hover.py`, `scripts/bench_nvim_hover.py`) and the Neovim
hover test attach it next to llm-lsp, as a user would. It lives in its own venv so its
pinned pygls never meets ours; `scripts/install-editors` creates it under
``.cache/editors/jls-venv``, and `jls_command` creates it on first use anywhere else.
"""

from __future__ import annotations

import logging
import subprocess
import sys
from pathlib import Path

logger = logging.getLogger(__name__)

#: The version measured against in the benchmarks and the issue's tables.
JLS = "jedi-language-server==0.47.0"


def jls_command(venv: Path) -> list[str]:
    """The command that starts jedi-language-server from ``venv`` (installed there first
    when missing, from PyPI, with the running interpreter's `venv` and `pip`)."""
    exe = venv / "bin" / "jedi-language-server"
    if not exe.exists():
        logger.info("installing %s into %s", JLS, venv)
        # -I: nothing imported from the working directory (a checkout's own venv.py)
        subprocess.run([sys.executable, "-I", "-m", "venv", str(venv)], check=True, timeout=600)
        pip = [str(venv / "bin" / "python"), "-I", "-m", "pip", "install", "--quiet", JLS]
        subprocess.run(pip, check=True, timeout=900)
    return [str(exe)]
