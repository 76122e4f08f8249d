"""Quality signals: repeats within a window, fixes applied or discarded, the variant split."""

from __future__ import annotations

from lsp_server.telemetry.signals import FIX_WINDOW, PendingFixes, RepeatTracker
from lsp_server.telemetry.variants import choose_variant


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_a_repeat_within_the_window_names_the_earlier_request() -> None:
    clock = Clock()
    repeats = RepeatTracker(window=600.0, clock=clock)
    assert repeats.seen("pkg.f", "r1") is None
    clock.now = 599.0
    assert repeats.seen("pkg.f", "r2") == "r1"
    clock.now = 1200.0
    assert repeats.seen("pkg.f", "r3") is None  # 601 s after r2
    assert repeats.seen("pkg.g", "r4") is None


def test_a_fix_is_applied_when_the_text_becomes_the_fix() -> None:
    fixes = PendingFixes(clock=Clock())
    fixes.offer("file:///a.py", "r1", "x = 1\ny = 2\n")
    assert fixes.changed("file:///b.py", "x = 1\ny = 2\n") is None
    assert fixes.changed("file:///a.py", "x = 1\r\ny = 2\r\n") == ("r1", "fix_applied")
    assert fixes.changed("file:///a.py", "x = 1\ny = 2\n") is None  # decided once


def test_a_fix_is_discarded_after_three_other_changes_or_the_window() -> None:
    clock = Clock()
    fixes = PendingFixes(clock=clock)
    fixes.offer("a", "r1", "fixed")
    assert fixes.changed("a", "typed") is None
    assert fixes.changed("a", "typed more") is None
    assert fixes.changed("a", "typed again") == ("r1", "fix_discarded")
    fixes.offer("a", "r2", "fixed")
    clock.now = FIX_WINDOW + 1
    assert fixes.changed("a", "typed") == ("r2", "fix_discarded")
    fixes.offer("a", "r3", "fixed")
    assert fixes.offer("a", "r4", "fixed too") == "r3"  # a new fix replaces an undecided one


def test_the_variant_split_is_stable_and_near_its_share() -> None:
    keys = [f"pkg.mod.name{i}" for i in range(2000)]
    share = sum(choose_variant(k, 0.3) == "b" for k in keys) / len(keys)
    assert 0.26 < share < 0.34
    assert [choose_variant(k, 0.3) for k in keys] == [choose_variant(k, 0.3) for k in keys]
    assert {choose_variant(k, 0.0) for k in keys} == {"a"}
