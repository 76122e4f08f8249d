"""Unit-test fixtures: a fresh copy of the context fixture project."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

CONTEXT_PROJECT = Path(__file__).parent.parent / "fixtures" / "context" / "proj"


@pytest.fixture
def root(tmp_path: Path) -> Path:
    """A copy of `tests/fixtures/context/proj`, so tests may change files freely."""
    target = tmp_path / "proj"
    shutil.copytree(CONTEXT_PROJECT, target)
    return target
