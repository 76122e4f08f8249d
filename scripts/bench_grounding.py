"""Hover benchmark helpers: cross-file call sites with jedi's answer, and the recall check.

`cross_file_sites` samples called names inside functions of a package (from its
PyPI wheel, `bench_common.wheel_project_for`) and keeps those whose
go-to-definition (jedi, imports followed, in this process) is a function,
method or class in *another* file of the package; the list is cached under
``.bench/`` so every run hovers the same sites. `judge` reads the prompt the
server sent for a hover and says whether it holds the definition's header, its
first body lines and the call-site line (recall), whether a piece presents
another same-named definition as the hovered one's (wrong symbol), and the
pack's token count (for "never over budget").
"""

from __future__ import annotations

import ast
import json
import re
from dataclasses import asdict, dataclass
from pathlib import Path

from bench_common import BENCH_DIR, call_positions

#: How many body lines of the definition (after its docstring) must be in the prompt.
BODY_LINES = 2
_LABEL = re.compile(r"^### (\S+):(\d+)-(\d+) \(([^:]+): [a-z ]*`([^`]+)`", re.MULTILINE)
_PACK_START = "Code from the workspace:\n\n"
_PACK_END = "\nStatic analysis of `"


@dataclass(frozen=True)
class Site:
    """A hover position (0-based line, column) and where jedi says its name is defined."""

    file: str  # relative to the project root
    line: int
    column: int
    name: str
    def_file: str
    def_line: int  # 1-based, the name's line (jedi's)
    call_line: str  # the stripped text of the hovered line
    must: tuple[str, ...]  # stripped lines of the definition the prompt must hold


def _definition_lines(source: str, line: int) -> tuple[str, ...] | None:
    """The header line and the first `BODY_LINES` body lines of the def/class at ``line``."""
    tree = ast.parse(source)
    lines = source.splitlines()
    for node in ast.walk(tree):
        if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            continue
        if node.lineno != line:
            continue
        body = list(node.body)
        if (
            body
            and isinstance(body[0], ast.Expr)
            and isinstance(body[0].value, ast.Constant)
            and isinstance(body[0].value.value, str)
            and len(body) > 1
        ):
            body = body[1:]
        first = body[0].lineno if body else line
        wanted = [lines[line - 1].strip()]
        for text in lines[first - 1 : first - 1 + BODY_LINES]:
            if text.strip() and first <= (body[-1].end_lineno or first):
                wanted.append(text.strip())
        return tuple(wanted)
    return None


def cross_file_sites(root: Path, package: str, count: int, seed: int = 7) -> list[Site]:
    """``count`` cross-file call sites of ``package`` under ``root`` (cached in .bench/)."""
    cache = BENCH_DIR / f"sites-{root.name}-{count}-{seed}.json"
    if cache.exists():
        raw = json.loads(cache.read_text())
        return [Site(**{**s, "must": tuple(s["must"])}) for s in raw]
    import jedi  # only here: the benchmark's own ground truth

    project = jedi.Project(root)
    out: list[Site] = []
    for path, line, column in call_positions(root, package, count * 20, seed):
        if len(out) >= count:
            break
        source = path.read_text("utf-8")
        try:
            found = jedi.Script(source, path=path, project=project).goto(
                line + 1, column, follow_imports=True
            )
        except Exception:  # jedi's own failures: skip the site
            continue
        if len(found) != 1 or found[0].module_path is None or found[0].line is None:
            continue
        d = found[0]
        home = Path(d.module_path)
        if home == path or root not in home.parents or d.type not in ("function", "class"):
            continue
        must = _definition_lines(home.read_text("utf-8"), d.line)
        if must is None:
            continue
        call = source.splitlines()[line].strip()
        rel = str(path.relative_to(root))
        out.append(Site(rel, line, column, d.name, str(home.relative_to(root)), d.line, call, must))
    cache.write_text(json.dumps([asdict(s) for s in out]))
    return out


@dataclass(frozen=True)
class Verdict:
    """What one hover's prompt held."""

    recalled: bool  # definition header, first body lines and call-site line all present
    wrong_symbol: bool  # a definition piece of the same name elsewhere than jedi's
    pack: str  # the pack's text, for counting its tokens


def judge(site: Site, prompt: str) -> Verdict:
    """Check ``prompt`` (the user message the server sent) against ``site``."""
    start = prompt.find(_PACK_START)
    end = prompt.find(_PACK_END)
    pack = prompt[start + len(_PACK_START) : end] if 0 <= start < end else ""
    lines = {ln.strip() for ln in pack.splitlines()}
    recalled = all(m in lines for m in site.must) and site.call_line in lines
    wrong = False
    for label in _LABEL.finditer(pack):
        path, a, b, role, title = label.groups()
        if role not in ("definition", "definition of the hovered name"):
            continue
        if title.rsplit(".", 1)[-1] != site.name:
            continue  # its class skeleton
        covers = path == site.def_file and int(a) <= site.def_line <= int(b)
        wrong = wrong or not covers
    return Verdict(recalled, wrong, pack)
