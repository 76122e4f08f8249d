"""Drive the real `llm-lsp serve` over stdio like an editor would, and print a hover."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import sys
import tempfile
from pathlib import Path

from lsprotocol import types
from pygls.lsp.client import LanguageClient

ROOT = Path(__file__).resolve().parent.parent
PROJECT = ROOT / "tests" / "fixtures" / "project"


async def run(args: argparse.Namespace) -> int:
    env = dict(os.environ)
    stack = contextlib.ExitStack()
    if args.fake:
        from lsp_server.testing.fake_provider import FakeProvider, Step

        fake = stack.enter_context(FakeProvider())
        fake.set_default(
            Step(
                text=(
                    "`apply_discount` caps the percentage at 100, then returns the total "
                    "reduced by it, rounded to cents. `Basket.total` calls it after adding "
                    "VAT, so the discount applies to the VAT-inclusive amount."
                ),
                delay=0.3,
            )
        )
        env["OPENAI_API_KEY"] = "sk-fake-demo"
        env["OPENAI_BASE_URL"] = fake.base_url
    state = Path(tempfile.mkdtemp(prefix="llm-lsp-demo-"))
    env.setdefault("LLM_LSP_USAGE_LOG", str(state / "usage.jsonl"))
    env.setdefault("LLM_LSP_CACHE_DIR", str(state / "cache"))
    mode = (
        "fake provider" if args.fake else ("provider" if env.get("OPENAI_API_KEY") else "offline")
    )
    print(f"llm-lsp demo ({mode}); project: {PROJECT}", file=sys.stderr)

    client = LanguageClient("llm-lsp-demo", "0")
    shown: list[str] = []

    @client.feature(types.WINDOW_SHOW_MESSAGE)
    def show(params: types.ShowMessageParams) -> None:
        shown.append(params.message)

    await client.start_io(sys.executable, "-m", "lsp_server", "serve", env=env)
    try:
        await client.initialize_async(
            types.InitializeParams(
                capabilities=types.ClientCapabilities(),
                root_uri=PROJECT.as_uri(),
                workspace_folders=[types.WorkspaceFolder(PROJECT.as_uri(), "project")],
            )
        )
        client.initialized(types.InitializedParams())
        path = PROJECT / args.file
        client.text_document_did_open(
            types.DidOpenTextDocumentParams(
                types.TextDocumentItem(path.as_uri(), "python", 1, path.read_text())
            )
        )
        hover = await asyncio.wait_for(
            client.text_document_hover_async(
                types.HoverParams(
                    types.TextDocumentIdentifier(path.as_uri()),
                    types.Position(args.line - 1, args.column - 1),
                )
            ),
            timeout=120,
        )
        for message in shown:
            print(f"[server] {message}", file=sys.stderr)
        print(f"--- hover at {args.file}:{args.line}:{args.column} ---")
        if hover is None:
            print("(nothing to show)")
        else:
            contents = hover.contents
            print(contents.value if isinstance(contents, types.MarkupContent) else contents)
        await client.shutdown_async(None)
        client.exit(None)
    finally:
        await client.stop()
        stack.close()
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--fake", action="store_true", help="answer from the local fake provider")
    parser.add_argument("--file", default="shop/basket.py")
    parser.add_argument("--line", type=int, default=19, help="1-based")
    parser.add_argument("--column", type=int, default=18, help="1-based")
    return asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    sys.exit(main())
