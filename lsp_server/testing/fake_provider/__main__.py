"""Lets ``python -m lsp_server.testing.fake_provider`` run the fake provider (see `cli`)."""

from __future__ import annotations

from lsp_server.testing.fake_provider.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
