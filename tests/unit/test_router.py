"""The router: task kind, context size and complexity pick the starting tier."""

from __future__ import annotations

from typing import Any

import pytest

from lsp_server.llm.providers import tier_specs
from lsp_server.llm.router import Router, estimate_complexity
from lsp_server.llm.types import ChatRequest
from lsp_server.settings import build_settings
from lsp_server.settings_values import Secret

ENV = {
    "OPENAI_API_KEY": "sk-test-router",
    "LLM_LOCAL_BASE_URL": "http://127.0.0.1:9/v1",
    "LLM_LOCAL_MODEL": "qwen2.5-coder",
    "LLM_LOCAL_CONTEXT_TOKENS": "2048",
}


def router(**config: Any) -> Router:
    settings, problems = build_settings(env=ENV, init_options=config)
    assert problems == []
    return Router(tier_specs(settings.llm), settings.llm.routing_rules)


def req(
    kind: str = "hover", text: str = "x = 1", max_tokens: int = 100, **meta: str
) -> ChatRequest:
    return ChatRequest(
        messages=[{"role": "user", "content": text}],
        feature=kind,
        max_tokens=max_tokens,
        metadata=dict(meta),
    )


def roles(route: Any) -> list[str]:
    return [s.spec.role for s in route.steps]


def test_default_chain_from_the_environment() -> None:
    settings, _ = build_settings(env=ENV)
    specs = tier_specs(settings.llm)
    assert [(s.name, s.role, s.models) for s in specs] == [
        ("openai", "primary", ("gpt-4o",)),
        ("openai-cheap", "cheap", ("gpt-4o-mini",)),
        ("local", "local", ("qwen2.5-coder",)),
    ]
    assert specs[0].api_key == Secret("sk-test-router") and specs[2].api_key is None
    assert specs[0].same_account(specs[1]) and not specs[0].same_account(specs[2])
    assert specs[2].max_context_tokens == 2048


@pytest.mark.parametrize(
    ("kind", "expected", "rule"),
    [
        ("hover", ["primary", "cheap", "local"], "default"),
        ("explain", ["primary", "cheap", "local"], "default"),
        ("fix", ["primary", "cheap", "local"], "fixes need the strongest model"),
        ("summary", ["cheap", "primary", "local"], "summaries suit the cheap model"),
    ],
)
def test_task_kind_picks_the_start(kind: str, expected: list[str], rule: str) -> None:
    route = router().route(req(kind))
    assert roles(route) == expected
    assert route.reason == f"{kind}, ~2 tokens, low complexity -> {expected[0]} ({rule})"


def test_context_size_from_the_engine_and_too_big_for_local() -> None:
    route = router().route(req("summary", "y" * 8000, context_tokens="7000"))
    assert route.context_tokens == 7000
    assert roles(route) == ["cheap", "primary"]  # summary rule comes first
    assert route.reason.endswith("local left out: ~2100 tokens exceed its 2048-token context")
    route = router().route(req("explain", context_tokens="7000"))
    assert route.rule == "high complexity" and route.complexity == "high"


def test_complexity_rules() -> None:
    branchy = "\n".join(f"if a{i}:\n    for b in c:\n        pass" for i in range(15))
    assert estimate_complexity(branchy, 100) == "high"
    assert estimate_complexity("if a: pass", 100) == "low"
    assert estimate_complexity("x", 3000) == "medium"
    assert router().route(req("hover", complexity="high")).rule == "high complexity"


def test_user_rules_come_first_and_may_name_a_model() -> None:
    r = router(
        routingRules=[
            {"kind": ["hover"], "maxContextTokens": 1000, "tier": "cheap", "model": "gpt-4.1-nano"},
            {"kind": "explain", "complexity": "low", "tier": "local", "reason": "cheap and near"},
        ]
    )
    route = r.route(req("hover"))
    assert [(s.spec.role, s.model) for s in route.steps] == [
        ("cheap", "gpt-4.1-nano"),
        ("primary", "gpt-4o"),
        ("local", "qwen2.5-coder"),
    ]
    assert route.rule == "user rule 1"
    assert roles(r.route(req("hover", context_tokens="5000"))) == ["primary", "cheap", "local"]
    local = r.route(req("explain"))
    assert roles(local) == ["local", "primary", "cheap"]
    assert local.reason == "explain, ~2 tokens, low complexity -> local (cheap and near)"


def test_missing_tier_starts_at_the_next_one() -> None:
    settings, _ = build_settings(env={"LLM_LOCAL_BASE_URL": "http://127.0.0.1:9/v1"})
    route = Router(tier_specs(settings.llm)).route(req())
    assert roles(route) == ["local"]
    assert route.steps[0].model == ""  # discovered from /v1/models on first use
    assert route.rule == "default; no primary tier, starting at local"


@pytest.mark.parametrize(
    ("rules", "message"),
    [
        ([{"tier": "gpu"}], "tier must be one of primary, cheap, local"),
        ([{"tier": "cheap", "kind": "poem"}], "kind: expected some of hover"),
        ([{"tier": "cheap", "when": {}}], "unknown field(s) when"),
        ("[not json", "expected a JSON list of rule objects"),
    ],
)
def test_invalid_rules_are_reported(rules: Any, message: str) -> None:
    settings, problems = build_settings(env={}, init_options={"routingRules": rules})
    assert settings.llm.routing_rules == ()
    assert len(problems) == 1 and message in problems[0].message()


@pytest.mark.parametrize(
    ("provider", "message"),
    [
        ({"name": "a", "role": "primary", "models": ["m"], "apiKey": "sk-LEAK-ME"}, "apiKeyEnv"),
        ({"name": "a", "role": "boss", "models": ["m"]}, "role must be one of"),
        ({"name": "a", "role": "primary"}, "models must list at least one model"),
        ({"name": "a", "role": "local"}, "a local provider needs baseUrl"),
        ({"name": "a", "role": "cheap", "models": ["m"], "apiKeyEnv": "not a name"}, "apiKeyEnv"),
    ],
)
def test_invalid_providers_are_reported_without_leaking(
    provider: dict[str, Any], message: str
) -> None:
    settings, problems = build_settings(env=ENV, init_options={"providers": [provider]})
    assert settings.llm.providers is None  # the defaults stay in force
    assert len(problems) == 1
    text = problems[0].message()
    assert message in text and "sk-LEAK-ME" not in text


def test_providers_from_the_environment_as_json() -> None:
    env = {
        "LLM_LSP_PROVIDERS": '[{"name": "vllm", "role": "local", "baseUrl": '
        '"http://127.0.0.1:8000/v1", "apiKeyEnv": "VLLM_KEY", "models": "qwen"}]',
        "VLLM_KEY": "token-abc",
    }
    settings, problems = build_settings(env=env)
    assert problems == []
    [spec] = tier_specs(settings.llm)
    assert (spec.name, spec.models, spec.unavailable) == ("vllm", ("qwen",), None)
    assert spec.api_key == Secret("token-abc")
    assert "token-abc" not in repr(settings) and "token-abc" not in str(settings.redacted())
