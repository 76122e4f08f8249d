"""Soak: mixed requests, random cancels and provider faults; every promise of `soak.py` holds.

A shorter run than `scripts/soak.py` (300 requests instead of 2,000), same checks.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lsp_server.testing.fake_provider import FakeProvider
from tests.reliability.soak import run_soak

SUITE_REQUESTS = 300


@pytest.mark.timeout(900)
async def test_soak_every_request_answered_once_nothing_leaks(
    tmp_path: Path, fake: FakeProvider
) -> None:
    report = await run_soak(tmp_path, fake, count=SUITE_REQUESTS)
    summary = report.summary()
    print(json.dumps(summary, indent=1))
    assert report.kinds.keys() == {"hover", "actions", "resolve", "explain", "fix", "ask"}
    assert report.cancelled >= SUITE_REQUESTS // 10
    assert summary["problems"] == []
