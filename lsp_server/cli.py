"""Command line: `llm-lsp serve`, `llm-lsp explain FILE:LINE[:COL]`, `llm-lsp --version`.

`serve` speaks LSP on stdio (or TCP for debugging) and logs to stderr or a
file, never stdout. `explain` runs the same pipeline as a hover and prints
its markdown, so the engine can be used and debugged without an editor.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from pathlib import Path

from lsp_server import __version__

logger = logging.getLogger(__name__)


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


def _parse_location(text: str) -> tuple[Path, int, int | None]:
    parts = text.rsplit(":", 2)
    if len(parts) == 3 and parts[1].isdigit() and parts[2].isdigit():
        return Path(parts[0]), int(parts[1]), int(parts[2])
    parts = text.rsplit(":", 1)
    if len(parts) == 2 and parts[1].isdigit():
        return Path(parts[0]), int(parts[1]), None
    raise argparse.ArgumentTypeError(f"expected FILE:LINE[:COL], got {text!r}")


def _find_root(path: Path) -> Path:
    for parent in (path.parent, *path.parent.parents):
        if any((parent / marker).exists() for marker in ("pyproject.toml", "setup.py", ".git")):
            return parent
    return path.parent


def _first_name_column(line: str) -> int | None:
    for i, ch in enumerate(line):
        if ch.isidentifier():
            return i
    return None


async def _explain(location: tuple[Path, int, int | None]) -> int:
    from lsp_server.engine import Document, Engine
    from lsp_server.settings import build_settings

    path, line, col = location
    path = path.resolve()
    try:
        text = path.read_bytes().decode("utf-8", errors="replace")
    except OSError as exc:
        print(f"llm-lsp: cannot read {path}: {exc.strerror}", file=sys.stderr)
        return 2
    lines = text.splitlines()
    if not 1 <= line <= len(lines):
        print(f"llm-lsp: line {line} is outside {path} (1-{len(lines)})", file=sys.stderr)
        return 2
    column = col - 1 if col is not None else _first_name_column(lines[line - 1])
    if column is None or column < 0:
        print(f"llm-lsp: no name on line {line}", file=sys.stderr)
        return 1
    settings, problems = build_settings()
    for problem in problems:
        print(problem.message(), file=sys.stderr)
    engine = Engine(settings, _find_root(path))
    try:
        answer = await engine.hover(Document(path=path, text=text), line - 1, column)
    finally:
        await engine.aclose()
    if answer is None:
        print(f"llm-lsp: nothing to explain at {path}:{line}:{column + 1}", file=sys.stderr)
        return 1
    print(answer.markdown)
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `llm-lsp` console script."""
    parser = argparse.ArgumentParser(prog="llm-lsp", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"llm-lsp {__version__}")
    parser.add_argument(
        "--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"]
    )
    parser.add_argument("--log-file", help="write logs here instead of stderr")
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run the language server (stdio by default)")
    serve.add_argument("--tcp", metavar="HOST:PORT", help="listen on TCP instead of stdio")
    explain = sub.add_parser("explain", help="explain the symbol at FILE:LINE[:COL] (1-based)")
    explain.add_argument("location", type=_parse_location)
    args = parser.parse_args(argv)
    _configure_logging(args.log_level, args.log_file)
    if args.command == "serve":
        from lsp_server.server import create_server

        server = create_server()
        if args.tcp:
            host, _, port = args.tcp.rpartition(":")
            if not port.isdigit():
                parser.error("--tcp expects HOST:PORT")
            server.start_tcp(host or "127.0.0.1", int(port))
        else:
            server.start_io()
        # pygls' stdin reader thread may still be blocked in readline(); the records
        # and logs are already written, so leave without waiting for it.
        logging.shutdown()
        os._exit(0)
    if args.command == "explain":
        return asyncio.run(_explain(args.location))
    parser.error(f"unknown command {args.command}")
    return 2


if __name__ == "__main__":
    sys.exit(main())
