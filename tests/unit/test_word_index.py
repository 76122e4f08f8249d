"""The identifier index and the callers found through it, on small projects with known answers."""

from __future__ import annotations

import io
import keyword
import os
import tokenize
from pathlib import Path

import pytest

from lsp_server.context.index.callers import RANK_OURS, CallerFinder
from lsp_server.context.index.words import WordIndex, scan, sites_in
from lsp_server.context.static.modules import ModuleCache
from lsp_server.context.static.resolver import StaticResolver
from lsp_server.workspace import WorkspaceBoundary

PACKAGE = Path(__file__).resolve().parents[2] / "lsp_server"


def _write(root: Path, files: dict[str, str]) -> None:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def _index(root: Path, buffers: dict[Path, str] | None = None) -> WordIndex:
    buffers = buffers if buffers is not None else {}
    words = WordIndex(WorkspaceBoundary(root, buffers.get))
    for path in words.discover():
        words.index_file(path)
    words.mark_ready()
    return words


def test_strings_and_comments_do_not_count() -> None:
    text = (
        "import os  # helper is mentioned here\n"
        'doc = """helper(1) in a docstring"""\n'
        "note = f'{helper(2)}' + r'\\helper(3)'\n"
        "def caller():\n"
        "    return os.path.join(helper(4), obj.helper (5))\n"
    )
    words, _ = scan(text)
    assert {"os", "doc", "note", "caller", "path", "join", "helper", "obj"} == words
    assert sites_in(text, "helper") == [(5, 24, False), (5, 39, True)]
    assert sites_in(text, "caller") == []  # a definition, not a call


def test_decorators_count_as_calls() -> None:
    text = "@cache\ndef f():\n    pass\n\n@app.route('/x')\nclass C:\n    pass\n"
    assert sites_in(text, "cache") == [(1, 1, False)]
    assert sites_in(text, "route") == [(5, 5, True)]


@pytest.mark.parametrize("path", sorted(PACKAGE.rglob("*.py")), ids=lambda p: p.name)
def test_names_match_the_tokenizer(path: Path) -> None:
    text = path.read_text()
    expected = {
        tok.string
        for tok in tokenize.generate_tokens(io.StringIO(text).readline)
        if tok.type == tokenize.NAME and not keyword.iskeyword(tok.string)
    }
    assert scan(text)[0] == expected


def test_build_skips_tooling_dirs_and_large_files(tmp_path: Path) -> None:
    _write(
        tmp_path,
        {
            "pkg/a.py": "def alpha():\n    return beta()\n",
            "pkg/b.py": "def beta():\n    return 1\n",
            ".venv/lib/x.py": "beta()\n",
            "node_modules/y.py": "beta()\n",
            "build/z.py": "beta()\n",
            "big.py": "beta()\n" + "x = 1\n" * 200,
        },
    )
    words = WordIndex(WorkspaceBoundary(tmp_path), max_bytes=1000)
    paths = words.discover()
    assert [p.relative_to(tmp_path).as_posix() for p in paths] == [
        "big.py",
        "pkg/a.py",
        "pkg/b.py",
    ]
    for path in paths:
        words.index_file(path)
    assert [p.name for p in words.files_with("beta")] == ["a.py", "b.py"]
    assert words.call_sites(tmp_path / "pkg/a.py", "beta") == [(2, 11, False)]


def test_buffer_update_deletion_and_mtime(tmp_path: Path) -> None:
    _write(tmp_path, {"a.py": "def one():\n    pass\n", "b.py": "one()\n"})
    buffers: dict[Path, str] = {}
    words = _index(tmp_path, buffers)
    assert [p.name for p in words.files_with("one")] == ["a.py", "b.py"]
    buffers[tmp_path / "b.py"] = "two()\n"  # an unsaved edit
    words.mark_dirty(tmp_path / "b.py")
    assert words.refresh() == 1
    assert [p.name for p in words.files_with("one")] == ["a.py"]
    assert [p.name for p in words.files_with("two")] == ["b.py"]
    (tmp_path / "a.py").unlink()
    words.mark_dirty(tmp_path / "a.py")
    words.refresh()
    assert words.files_with("one") == [] and not words.has(tmp_path / "a.py")
    # changed on disk, nobody told us: the mtime check finds it
    (tmp_path / "c.py").write_text("three()\n")
    assert words.rescan() == 1 and [p.name for p in words.files_with("three")] == ["c.py"]
    (tmp_path / "c.py").write_text("four()\n")
    stamp = (tmp_path / "c.py").stat()
    os.utime(tmp_path / "c.py", ns=(stamp.st_atime_ns, stamp.st_mtime_ns + 10**9))
    assert words.refresh([tmp_path / "c.py"], check_mtime=True) == 1
    assert [p.name for p in words.files_with("four")] == ["c.py"]


SHOP = {
    "shop/__init__.py": "",
    "shop/jobs.py": (
        "class Job:\n"
        "    def run(self):\n"
        "        return 1\n\n\n"
        "class Nightly(Job):\n"
        "    def later(self):\n"
        "        return self.run()\n"
    ),
    "shop/tasks.py": "class Task:\n    def run(self):\n        return 2\n",
    "shop/use.py": (
        "from shop.jobs import Job\n"
        "from shop.tasks import Task\n\n\n"
        "def go(thing):\n"
        "    job = Job()\n"
        "    task = Task()\n"
        "    task.run()\n"
        "    thing.run()\n"
        "    return job.run()\n"
    ),
    "tests/test_jobs.py": (
        "from shop.jobs import Job\n\n\ndef test_run():\n    assert Job().run() == 1\n"
    ),
}


def test_method_shared_by_two_classes_is_told_apart_by_the_import_map(tmp_path: Path) -> None:
    _write(tmp_path, SHOP)
    words = _index(tmp_path)
    modules = ModuleCache(WorkspaceBoundary(tmp_path))
    finder = CallerFinder(words, StaticResolver(tmp_path, modules), modules)
    jobs = modules.file(tmp_path / "shop/jobs.py")
    assert jobs is not None
    run = jobs.chunks.by_qualname("Job.run")
    assert run is not None
    sites = finder.sites(jobs, run, (0, 0))
    found = [(s.display, s.line, s.rank) for s in sites]
    assert all((d, line) != ("shop/use.py", 8) for d, line, _ in found)  # task.run: Task's
    ours = [(d, line) for d, line, rank in found if rank == RANK_OURS]
    assert ours == [("shop/jobs.py", 8), ("shop/use.py", 10)]  # self.run in a subclass; job.run
    assert ("shop/use.py", 9) in [(d, line) for d, line, _ in found]  # undecided: kept, later
    assert ("tests/test_jobs.py", 5) in [(d, line) for d, line, _ in found]
    assert finder.sites(jobs, run, (0, 0)) == sites  # same inputs, same answer
    tasks = modules.file(tmp_path / "shop/tasks.py")
    assert tasks is not None
    task_run = tasks.chunks.by_qualname("Task.run")
    assert task_run is not None
    task_sites = [(s.display, s.line, s.rank) for s in finder.sites(tasks, task_run, (0, 0))]
    assert task_sites[0] == ("shop/use.py", 8, RANK_OURS)
    assert all((d, line) != ("shop/use.py", 10) for d, line, _ in task_sites)  # job.run


def test_a_file_the_boundary_excludes_later_leaves_the_index(tmp_path: Path) -> None:
    _write(tmp_path, {"pkg/a.py": "def alpha():\n    return beta()\n", "pkg/b.py": "beta()\n"})
    words = _index(tmp_path)
    assert [p.name for p in words.files_with("beta")] == ["a.py", "b.py"]
    ignore = tmp_path / ".llmlspignore"
    ignore.write_text("pkg/b.py\n")
    words.workspace.document_changed(ignore)  # what the engine does on any change
    words.mark_dirty(ignore)
    assert words.refresh() == 2
    assert [p.name for p in words.files_with("beta")] == ["a.py"]


async def test_warm_up_carries_on_past_a_file_that_cannot_be_parsed(tmp_path: Path) -> None:
    """10,000 nested ``not`` make ``ast.parse`` raise MemoryError; that file is skipped."""
    from lsp_server.context.jedi.symbols import SymbolIndex
    from lsp_server.context.pack.assembler import Assembler

    _write(tmp_path, {**SHOP, "shop/aaa_deep.py": "x = " + "not " * 10_000 + "1\n"})
    symbols = SymbolIndex(WorkspaceBoundary(tmp_path), isolate=False)
    try:
        assembler = Assembler(symbols)
        deep = tmp_path / "shop/aaa_deep.py"
        paths = [deep, *(p for p in assembler.words.discover() if p.name != deep.name)]
        assert await assembler.warm(paths) == len(paths)
        jobs = assembler.modules.file(tmp_path / "shop/jobs.py")
        assert jobs is not None
        run = jobs.chunks.by_qualname("Job.run")
        assert run is not None
        found = [(s.display, s.line) for s in assembler.finder.sites(jobs, run, (0, 0))]
        assert ("shop/use.py", 10) in found
    finally:
        symbols.close()
