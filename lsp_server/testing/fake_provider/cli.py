"""The fake provider's command line: serve in the foreground until Ctrl-C or SIGTERM.

Run as ``python -m lsp_server.testing.fake_provider`` or ``scripts/fake_provider``.

Both signals get our own handler. Python turns SIGINT into KeyboardInterrupt only
when the parent left SIGINT at its default; a job started in the background by a
non-interactive shell (``scripts/test &``, a CI runner) inherits SIGINT *ignored*,
and the server then never stopped on Ctrl-C or SIGINT (issue 15: the CLI test
timed out waiting for it on a busy machine, where the suite ran in the background).
"""

from __future__ import annotations

import argparse
import logging
import signal
import time
from collections.abc import Sequence
from types import FrameType

from lsp_server.testing.fake_provider.provider import FakeProvider
from lsp_server.testing.fake_provider.steps import DEFAULT_TEXT, Step

logger = logging.getLogger(__name__)


def _interrupt(signum: int, frame: FrameType | None) -> None:
    """SIGINT or SIGTERM: unwind the main loop (whatever SIGINT's inherited disposition)."""
    raise KeyboardInterrupt


def main(argv: Sequence[str] | None = None) -> int:
    """Run the fake provider in the foreground until Ctrl-C or SIGTERM."""
    parser = argparse.ArgumentParser(
        prog="fake_provider", description="OpenAI-compatible fake LLM provider for tests/demos."
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8765, help="0 picks a free port")
    parser.add_argument("--delay", type=float, default=0.0, help="seconds before each answer")
    parser.add_argument("--chunk-delay", type=float, default=0.0, help="seconds between chunks")
    parser.add_argument("--text", default=None, help=f"answer text (default: {DEFAULT_TEXT!r})")
    parser.add_argument(
        "--model", action="append", dest="models", help="model to list (repeatable)"
    )
    parser.add_argument("--log-level", default="INFO")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    default = Step(text=args.text, delay=args.delay, chunk_delay=args.chunk_delay)
    provider = FakeProvider(
        args.host, args.port, default=default, models=args.models or ("gpt-4o", "gpt-4o-mini")
    )
    try:
        provider.start()
    except OSError as exc:
        logger.error("fake provider: cannot listen on %s:%s: %s", args.host, args.port, exc)
        return 1
    try:
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, _interrupt)
        logger.info(
            "fake provider: base_url %s (admin under %s/_fake/)", provider.base_url, provider.url
        )
        while True:
            time.sleep(3600)  # a signal interrupts the sleep at once
    except KeyboardInterrupt:
        pass
    finally:
        provider.stop()
    logger.info("fake provider: stopped")
    return 0
