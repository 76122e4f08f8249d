"""Explain's answer-cache helpers: the fallback tier's scope, and a run as one cacheable answer."""

from __future__ import annotations

from lsp_server.agent import AgentResult, StopReason
from lsp_server.agent.execution import ExecutionContext
from lsp_server.context.source.chunker import chunk_module
from lsp_server.llm.types import Completion, Usage
from lsp_server.pipeline.explain import run_completion, selection_scope

SOURCE = '''"""Module."""

LIMIT = 3


class Basket:
    @property
    def total(self) -> float:
        subtotal = sum(self.items)
        taxed = subtotal * 1.2
        return round(taxed, 2)


def helper(x: int) -> int:
    return x + LIMIT
'''


def test_the_scope_is_the_innermost_function_or_class_holding_the_selection() -> None:
    chunks = chunk_module(SOURCE, "shop/basket.py")
    assert selection_scope(chunks, 7, 11) == "Basket.total"  # decorator to the end
    assert selection_scope(chunks, 9, 10) == "Basket.total, lines 3-4"  # part of its body
    assert selection_scope(chunks, 6, 11) == "Basket"
    assert selection_scope(chunks, 14, 15) == "helper"
    assert selection_scope(chunks, 3, 3) == "lines 3-3"  # module-level code
    assert selection_scope(chunks, 9, 15) == "lines 9-15"  # across two definitions


def _completion(text: str, *, notice: str | None = None, cached: int = 0) -> Completion:
    return Completion(
        text=text,
        model="gpt-4o",
        provider="primary",
        usage=Usage(100, 10, cached),
        latency_ms=5.0,
        cost_usd=0.001,
        request_id="r1",
        notice=notice,
    )


def _result(steps: list[Completion]) -> AgentResult:
    ctx = ExecutionContext()
    for step in steps:
        ctx.add_completion(step)
    return AgentResult(True, StopReason.ANSWERED, ctx, answer=steps[-1].text, completion=steps[-1])


def test_a_run_is_one_answer_with_the_runs_totals() -> None:
    steps = [_completion("", cached=40), _completion("The answer.")]
    answer = run_completion(_result(steps), 1.5, steps, "r1")
    assert (answer.text, answer.model, answer.tier, answer.notice) == (
        "The answer.",
        "gpt-4o",
        "primary",
        None,
    )
    assert answer.usage == Usage(200, 20, 40)
    assert answer.cost_usd == 0.002 and answer.latency_ms == 1500.0
    assert answer.summary == "gpt-4o · 200 in / 20 out tokens · $0.0020 · 2 steps · 1.5 s · primary"


def test_a_run_any_step_of_which_a_later_tier_answered_carries_its_notice() -> None:
    """The cache then keeps it for the fallback tier only, never as a fresh hit."""
    later = "gpt-4o unavailable: circuit open; answered by gpt-4o-mini"
    steps = [_completion("", notice=later), _completion("The answer.")]
    assert run_completion(_result(steps), 1.0, steps, "r1").notice == later
