"""Soak run: 2,000 mixed LSP requests against a real server, faults and cancels included.

The same run as `tests/reliability/test_soak.py` (see `tests/reliability/soak.py` for what
is sent and measured), longer: hover, code action listing, resolve, Explain, Fix and Ask,
four in flight, 20 % cancelled at a random moment, the fake provider answering about one
call in ten with a fault. Prints the figures as JSON and exits 1 if a promise broke:
a request without exactly one response, a traceback or ERROR in the server log, RSS
growth of 30 MB or more after the warm-up (the first fifth), an event-loop stall of
100 ms or more, or usage records that do not match the provider attempts.

Run: `.venv/bin/python scripts/soak.py [--requests 2000] [--seed 15] [--concurrency 4]`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_common import machine

from lsp_server.testing.fake_provider import FakeProvider
from tests.reliability.soak import run_soak


async def _main(args: argparse.Namespace) -> int:
    with tempfile.TemporaryDirectory(prefix="llm-lsp-soak-") as tmp, FakeProvider() as fake:
        report = await run_soak(
            Path(tmp), fake, count=args.requests, seed=args.seed, concurrency=args.concurrency
        )
        summary = {"machine": machine(), **report.summary()}
        sys.stdout.write(json.dumps(summary, indent=1) + "\n")
        return 1 if summary["problems"] else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=15)
    parser.add_argument("--concurrency", type=int, default=4)
    return asyncio.run(_main(parser.parse_args()))


if __name__ == "__main__":
    sys.exit(main())
