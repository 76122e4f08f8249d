"""Command line: `llm-lsp serve | explain | fix | ask | doctor | settings | report | cost`.

`serve` speaks LSP on stdio (or TCP for debugging) and logs to stderr or a
file, never stdout. `explain FILE:LINE[:COL]` runs the hover pipeline;
`explain FILE:START-END` and `fix FILE:LINE[-LINE]` run the same agent the
code actions do. `fix` prints a unified diff and writes the file only with
`--apply`. `ask "QUESTION" [--root DIR]` answers a question about the
workspace from its most relevant code and lists the sources. `settings` prints
the settings in force (the key redacted); `settings --json` prints every
setting's declaration as a JSON schema for editor clients. `report --since 7d
--out report.html` writes the usage dashboard and prints a summary table;
`cost REQUEST_ID` explains what one request cost. The engine is
the same one the server uses, so everything can be used and debugged without
an editor.
"""

from __future__ import annotations

import argparse
import asyncio
import difflib
import json
import logging
import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO, cast

from lsp_server import __version__

if TYPE_CHECKING:
    from lsp_server.engine import Engine
    from lsp_server.pipeline.runtime import Document

logger = logging.getLogger(__name__)

_LOCATION = re.compile(r"^(?P<path>.+?):(?P<line>\d+)(?:-(?P<end>\d+)|:(?P<col>\d+))?$")


@dataclass(frozen=True, slots=True)
class Location:
    """FILE:LINE[:COL] or FILE:START-END, 1-based."""

    path: Path
    line: int
    end: int | None = None
    column: int | None = None


def _configure_logging(level: str, log_file: str | None) -> None:
    handler: logging.Handler = (
        logging.FileHandler(log_file, encoding="utf-8")
        if log_file
        else logging.StreamHandler(sys.stderr)
    )
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.WARNING)
    logging.getLogger("lsp_server").setLevel(level)


def _parse_location(text: str) -> Location:
    match = _LOCATION.match(text)
    if match is None:
        raise argparse.ArgumentTypeError(
            f"expected FILE:LINE[:COL] or FILE:START-END, got {text!r}"
        )
    end = int(match["end"]) if match["end"] else None
    col = int(match["col"]) if match["col"] else None
    line = int(match["line"])
    if line < 1 or (end is not None and end < line) or (col is not None and col < 1):
        raise argparse.ArgumentTypeError(
            f"lines and columns are 1-based and ranges ascend: {text!r}"
        )
    return Location(Path(match["path"]), line, end, col)


def _find_root(path: Path) -> Path | None:
    """The project around ``path`` (a marker file), or None: single-file mode, where the
    model sees that file alone (never its directory, which may be the home directory)."""
    for parent in (path.parent, *path.parent.parents):
        if any((parent / marker).exists() for marker in ("pyproject.toml", "setup.py", ".git")):
            return parent
    return None


def _first_name_column(line: str) -> int | None:
    for i, ch in enumerate(line):
        if ch.isidentifier():
            return i
    return None


def _err(message: str) -> None:
    print(f"llm-lsp: {message}", file=sys.stderr)


async def _open(location: Location) -> tuple[Engine, Document] | None:
    from lsp_server.engine import Engine
    from lsp_server.pipeline.runtime import Document
    from lsp_server.settings import build_settings
    from lsp_server.workspace import Refused

    path = location.path.resolve()
    settings, problems = build_settings()
    for problem in problems:
        print(problem.message(), file=sys.stderr)
    engine = Engine(settings, _find_root(path))
    engine.workspace.admit(path)  # single-file mode: this file and nothing else
    try:
        text = await asyncio.to_thread(engine.workspace.read, path)
    except Refused as refused:
        await engine.aclose()
        _err(f"cannot use {path}: {refused.message}")
        return None
    count = len(text.splitlines())
    last = location.end or location.line
    if location.line > count or last > count:
        await engine.aclose()
        _err(f"lines {location.line}-{last} are outside {path} (1-{count})")
        return None
    return engine, Document(path=path, text=text)


async def _explain(location: Location) -> int:
    opened = await _open(location)
    if opened is None:
        return 2
    engine, doc = opened
    try:
        if location.end is not None:
            outcome = await engine.actions.explain(
                doc, location.line, location.end, lambda m: _err(m)
            )
            if outcome.markdown is None:
                _err(outcome.message)
                return 1
            print(outcome.markdown)
            return 0
        line_text = doc.text.splitlines()[location.line - 1]
        column = location.column - 1 if location.column else _first_name_column(line_text)
        if column is None:
            _err(f"no name on line {location.line}")
            return 1
        answer = await engine.hover(doc, location.line - 1, column)
    finally:
        await engine.aclose()
    if answer is None:
        _err(f"nothing to explain at {doc.path}:{location.line}:{column + 1}")
        return 1
    print(answer.markdown)
    return 0


async def _fix(location: Location, apply: bool, diagnostic: str | None) -> int:
    opened = await _open(location)
    if opened is None:
        return 2
    engine, doc = opened
    assert doc.path is not None
    rel = engine.display_path(doc.path)
    try:
        original = doc.path.read_bytes()  # what the fix is computed from, checked before writing
        outcome = await engine.actions.fix(
            doc, location.line, location.end or location.line, diagnostic, lambda m: _err(m)
        )
    except OSError as exc:
        _err(f"cannot read {rel}: {exc.strerror}")
        return 2
    finally:
        await engine.aclose()
    if outcome.edit is None:
        _err(outcome.message)
        return 1
    new_text = outcome.edit.full_new_file_text
    diff = difflib.unified_diff(
        doc.text.splitlines(keepends=True),
        new_text.splitlines(keepends=True),
        fromfile=f"a/{rel}",
        tofile=f"b/{rel}",
    )
    sys.stdout.writelines(diff)
    print(f"# {outcome.edit.explanation}\n# {outcome.summary}", file=sys.stderr)
    if apply:
        return _apply_fix(doc.path, rel, original, doc.text, new_text)
    return 0


def _apply_fix(path: Path, rel: str, original: bytes, old_text: str, new_text: str) -> int:
    """Write the fix keeping the file's mode, endings, encoding and BOM; never over a change."""
    from lsp_server.atomic import FileChanged, replace_file_bytes
    from lsp_server.filebytes import EditRefused, apply_text_change, read_raw

    try:
        data = apply_text_change(read_raw(original), old_text, new_text)
        replace_file_bytes(path, data, expected=original)
    except EditRefused as exc:
        _err(f"{rel}: {exc}; not written")
        return 1
    except FileChanged:
        _err(f"{rel}: the file changed while the fix was computed; not written")
        return 1
    except OSError as exc:
        _err(f"cannot write {rel}: {exc.strerror or exc}")
        return 1
    _err(f"wrote {rel}")
    return 0


async def _ask(question: str, root: Path) -> int:
    from lsp_server.engine import Engine
    from lsp_server.pipeline.ask import AskError
    from lsp_server.settings import build_settings

    settings, problems = build_settings()
    for problem in problems:
        print(problem.message(), file=sys.stderr)
    engine = Engine(settings, root)
    try:
        outcome = await engine.asker().ask(question, None, _err)
    except AskError as exc:
        _err(str(exc))
        return 2
    finally:
        await engine.aclose()
    print(outcome.markdown)
    _err(outcome.message)
    return 0


async def _doctor() -> int:
    from lsp_server.llm.doctor import format_report, run_doctor
    from lsp_server.settings import build_settings
    from lsp_server.telemetry.usage import UsageLog

    settings, problems = build_settings()
    for problem in problems:
        print(problem.message(), file=sys.stderr)
    report = await run_doctor(settings.llm, usage_log=UsageLog(settings.storage.usage_log))
    print(format_report(report))
    return 0 if report.ok else 1


def _settings(as_json: bool) -> int:
    if as_json:
        from lsp_server.settings_docs import json_schema

        print(json.dumps(json_schema(), indent=2))
        return 0
    from lsp_server.settings import build_settings

    settings, problems = build_settings()
    for problem in problems:
        print(problem.message(), file=sys.stderr)
    for name, value in settings.redacted().items():
        print(f"{name} = {value}")
    return 0


def _report(log: Path | None, since: str, out: Path) -> int:
    from lsp_server.report.commands import write_report

    return write_report(log, since, out, sys.stdout, sys.stderr)


def _cost(log: Path | None, request_id: str) -> int:
    from lsp_server.report.commands import explain_cost

    return explain_cost(log, request_id, sys.stdout, sys.stderr)


def _serve(args: argparse.Namespace, parser: argparse.ArgumentParser) -> None:
    from lsp_server.server import create_server

    server = create_server()
    if args.tcp:
        host, _, port = args.tcp.rpartition(":")
        if not port.isdigit():
            parser.error("--tcp expects HOST:PORT")
        server.start_tcp(host or "127.0.0.1", int(port))
    else:
        from lsp_server.framing import ResyncingReader, install

        install()
        # pygls needs only readline() and read() of its stdin
        server.start_io(cast(BinaryIO, ResyncingReader(sys.stdin.buffer)))
    # pygls' stdin reader thread may still be blocked in readline(); the records
    # and logs are already written, so leave without waiting for it.
    logging.shutdown()
    os._exit(0)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `llm-lsp` console script."""
    parser = argparse.ArgumentParser(prog="llm-lsp", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"llm-lsp {__version__}")
    parser.add_argument(
        "--log-level", default="WARNING", choices=["DEBUG", "INFO", "WARNING", "ERROR"]
    )
    parser.add_argument("--log-file", help="write logs here instead of stderr")
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run the language server (stdio by default)")
    serve.add_argument("--tcp", metavar="HOST:PORT", help="listen on TCP instead of stdio")
    explain = sub.add_parser(
        "explain", help="explain the symbol at FILE:LINE[:COL] or the lines FILE:START-END"
    )
    explain.add_argument("location", type=_parse_location)
    fix = sub.add_parser("fix", help="propose a validated fix for FILE:LINE[-LINE]")
    fix.add_argument("location", type=_parse_location)
    fix.add_argument("--apply", action="store_true", help="write the fix to the file")
    fix.add_argument("--problem", help="the problem to fix (e.g. a diagnostic message)")
    ask = sub.add_parser("ask", help="answer a question about the workspace, with sources")
    ask.add_argument("question")
    ask.add_argument("--root", type=Path, default=Path.cwd(), help="workspace root (default: here)")
    sub.add_parser("doctor", help="check every configured provider with a tiny prompt")
    shown = sub.add_parser("settings", help="print the settings in force (the key redacted)")
    shown.add_argument(
        "--json", action="store_true", help="print every setting's declaration as a JSON schema"
    )
    report = sub.add_parser("report", help="write the usage dashboard (HTML) and print a summary")
    report.add_argument("--since", default="7d", help="7d, 12h, 30m or an ISO date (default 7d)")
    report.add_argument("--out", type=Path, default=Path("report.html"), help="the HTML file")
    report.add_argument("--usage-log", type=Path, help="the usage log (default: the settings' one)")
    cost = sub.add_parser("cost", help="why one request cost what it did (from the usage log)")
    cost.add_argument("request_id", help="the request id, or its first characters")
    cost.add_argument("--usage-log", type=Path, help="the usage log (default: the settings' one)")
    args = parser.parse_args(argv)
    _configure_logging(args.log_level, args.log_file)
    if args.command == "serve":
        _serve(args, parser)
    if args.command == "explain":
        return asyncio.run(_explain(args.location))
    if args.command == "fix":
        return asyncio.run(_fix(args.location, args.apply, args.problem))
    if args.command == "ask":
        root = args.root.resolve()
        if not root.is_dir():
            _err(f"{root} is not a directory")
            return 2
        return asyncio.run(_ask(args.question, root))
    if args.command == "doctor":
        return asyncio.run(_doctor())
    if args.command == "settings":
        return _settings(args.json)
    if args.command == "report":
        return _report(args.usage_log, args.since, args.out)
    if args.command == "cost":
        return _cost(args.usage_log, args.request_id)
    parser.error(f"unknown command {args.command}")
    return 2


if __name__ == "__main__":
    sys.exit(main())
