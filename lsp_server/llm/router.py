"""Router: which tier (and model) a request starts at, and why.

The decision uses three facts about the request: its task kind (`ChatRequest.feature`:
hover, explain, fix, summary), its context size in tokens (`metadata["context_tokens"]`
when the engine counted it, else an estimate of four characters per token), and a
complexity class (`metadata["complexity"]`, else `estimate_complexity`). Rules are
tried in order, the user's (`llmLsp.routingRules`) before `BUILTIN_RULES`; the first
whose conditions all hold picks the starting tier. The other tiers follow in fallback
order (primary → cheap → local). A tier whose context window
(`maxContextTokens`) cannot hold the prompt plus the answer is left out.

`Route.reason` is one line for the usage log and the answer's notice, e.g.
"hover, ~850 tokens, low complexity -> primary (default)".
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass

from lsp_server.llm.providers import TierSpec
from lsp_server.llm.types import ChatRequest
from lsp_server.settings_values import COMPLEXITIES, ROLES, RoutingRule

logger = logging.getLogger(__name__)

CHARS_PER_TOKEN = 4
"""Estimate used when the engine did not count the context itself."""

BUILTIN_RULES: tuple[RoutingRule, ...] = (
    RoutingRule(tier="cheap", kinds=("summary",), reason="summaries suit the cheap model"),
    RoutingRule(tier="primary", kinds=("fix",), reason="fixes need the strongest model"),
    RoutingRule(tier="primary", complexity=("high",), reason="high complexity"),
    RoutingRule(tier="primary", min_context_tokens=6000, reason="large context"),
    RoutingRule(tier="primary", reason="default"),
)

_BRANCHY = re.compile(
    r"\b(?:if|elif|for|while|try|except|with|match|case|lambda|yield|await|async|raise)\b"
)


@dataclass(frozen=True, slots=True)
class RouteStep:
    """One tier to try, with the model to ask ("" = discover from `/v1/models`)."""

    spec: TierSpec
    model: str

    @property
    def label(self) -> str:
        """How the notice names this step: the model, else the provider."""
        return self.model or self.spec.name


@dataclass(frozen=True, slots=True)
class Route:
    """The router's decision: tiers in the order to try them, and why."""

    steps: tuple[RouteStep, ...]
    kind: str
    context_tokens: int
    complexity: str
    tier: str
    rule: str
    excluded: tuple[str, ...] = ()

    @property
    def reason(self) -> str:
        """One line for the usage log: facts, chosen tier, rule, exclusions."""
        text = (
            f"{self.kind}, ~{self.context_tokens} tokens, {self.complexity} complexity "
            f"-> {self.tier} ({self.rule})"
        )
        return text + "".join(f"; {e}" for e in self.excluded)


def _text(request: ChatRequest) -> str:
    parts: list[str] = []
    for message in request.messages:
        content = message.get("content")
        if isinstance(content, str):
            parts.append(content)
        elif isinstance(content, list):
            parts.extend(str(p.get("text", "")) for p in content if isinstance(p, dict))
    return "\n".join(parts)


def estimate_tokens(text: str) -> int:
    """A rough token count: four characters per token."""
    return math.ceil(len(text) / CHARS_PER_TOKEN)


def estimate_complexity(text: str, tokens: int) -> str:
    """ "low", "medium" or "high" from branching keywords and size.

    High: 25+ branching keywords or 6000+ tokens; low: fewer than 8 and under 1500
    tokens; medium otherwise.
    """
    branches = len(_BRANCHY.findall(text))
    if branches >= 25 or tokens >= 6000:
        return "high"
    if branches < 8 and tokens < 1500:
        return "low"
    return "medium"


def _int(value: str | None) -> int | None:
    if value is None:
        return None
    try:
        number = int(value)
    except ValueError:
        return None
    return number if number >= 0 else None


def _matches(rule: RoutingRule, kind: str, tokens: int, complexity: str) -> bool:
    if rule.kinds and kind not in rule.kinds:
        return False
    if rule.complexity and complexity not in rule.complexity:
        return False
    if rule.min_context_tokens is not None and tokens < rule.min_context_tokens:
        return False
    return rule.max_context_tokens is None or tokens <= rule.max_context_tokens


class Router:
    """Routes requests over the callable tiers of one service."""

    def __init__(self, specs: Sequence[TierSpec], rules: Sequence[RoutingRule] = ()) -> None:
        self.specs = tuple(sorted(specs, key=lambda s: ROLES.index(s.role)))
        self.rules = (*rules, *BUILTIN_RULES)

    def route(self, request: ChatRequest) -> Route:
        """The tiers to try for `request`, first the chosen one."""
        text = _text(request)
        prompt_tokens = estimate_tokens(text)
        tokens = _int(request.metadata.get("context_tokens"))
        if tokens is None:
            tokens = prompt_tokens
        complexity = request.metadata.get("complexity", "")
        if complexity not in COMPLEXITIES:
            complexity = estimate_complexity(text, tokens)
        kind = request.feature
        rule = next(r for r in self.rules if _matches(r, kind, tokens, complexity))
        needed = prompt_tokens + request.max_tokens
        excluded: list[str] = []
        fitting: list[TierSpec] = []
        for spec in self.specs:
            limit = spec.max_context_tokens
            if limit is not None and needed > limit:
                excluded.append(
                    f"{spec.name} left out: ~{needed} tokens exceed its {limit}-token context"
                )
            else:
                fitting.append(spec)
        chosen = [s for s in fitting if s.role == rule.tier]
        rest = [s for s in fitting if s.role != rule.tier]
        rule_text = rule.reason or "rule"
        if not chosen and fitting:
            rule_text += f"; no {rule.tier} tier, starting at {fitting[0].role}"
        steps = [
            RouteStep(s, rule.model if (rule.model and i == 0) else s.default_model)
            for i, s in enumerate(chosen)
        ]
        steps.extend(RouteStep(s, s.default_model) for s in rest)
        route = Route(
            steps=tuple(steps),
            kind=kind,
            context_tokens=tokens,
            complexity=complexity,
            tier=steps[0].spec.role if steps else rule.tier,
            rule=rule_text,
            excluded=tuple(excluded),
        )
        logger.debug("route: %s", route.reason)
        return route
