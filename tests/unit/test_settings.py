"""Settings: layering, validation, and the key never showing."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from lsp_server.settings import Settings, build_settings
from lsp_server.settings_values import Secret


def test_defaults_follow_the_environment_contract() -> None:
    settings, problems = build_settings(env={"HOME": "/home/u"})
    assert problems == []
    assert settings.model == "gpt-4o"
    assert settings.cheap_model == "gpt-4o-mini"
    assert settings.api_key is None and not settings.ai_enabled
    assert settings.cache_dir == Path("/home/u/.cache/llm-lsp")
    assert settings.usage_log == Path("/home/u/.local/state/llm-lsp/usage.jsonl")


def test_environment_variables_are_read() -> None:
    env = {
        "HOME": "/h",
        "OPENAI_API_KEY": "sk-abc",
        "OPENAI_BASE_URL": "http://127.0.0.1:9/v1",
        "LLM_MODEL": "gpt-4.1",
        "LLM_CHEAP_MODEL": "gpt-4.1-mini",
        "LLM_LOCAL_BASE_URL": "http://127.0.0.1:8080/v1",
        "LLM_LOCAL_MODEL": "qwen2.5-coder",
        "LLM_TIMEOUT": "12.5",
        "LLM_LSP_CACHE_DIR": "/tmp/c",
        "LLM_LSP_USAGE_LOG": "/tmp/u.jsonl",
        "XDG_CACHE_HOME": "/ignored",
    }
    settings, problems = build_settings(env=env)
    assert problems == []
    assert settings.api_key == Secret("sk-abc")
    assert settings.base_url == "http://127.0.0.1:9/v1"
    assert (settings.model, settings.cheap_model) == ("gpt-4.1", "gpt-4.1-mini")
    assert settings.local_base_url == "http://127.0.0.1:8080/v1"
    assert settings.local_model == "qwen2.5-coder"
    assert settings.timeout == 12.5
    assert settings.cache_dir == Path("/tmp/c")
    assert settings.usage_log == Path("/tmp/u.jsonl")


def test_layers_later_wins_and_section_is_optional() -> None:
    settings, problems = build_settings(
        env={"LLM_MODEL": "from-env", "LLM_TIMEOUT": "5"},
        init_options={"llmLsp": {"model": "from-init", "timeout": 7}},
        workspace_config={"model": "from-config"},
    )
    assert problems == []
    assert settings.model == "from-config"
    assert settings.timeout == 7.0


def test_invalid_values_are_reported_and_the_layer_below_is_used() -> None:
    settings, problems = build_settings(
        env={"LLM_TIMEOUT": "soon", "LLM_LSP_AI_HOVER": "maybe"},
        init_options={"llmLsp": {"timeout": 9, "hoverContextTokens": -5}},
        workspace_config={"llmLsp": {"timeout": "nan", "baseUrl": "ftp://x", "aiHover": True}},
    )
    assert settings.timeout == 9.0
    assert settings.hover_context_tokens == 2000
    assert settings.base_url is None
    assert settings.ai_hover is True
    by_setting = {p.setting: p for p in problems}
    assert set(by_setting) == {
        "LLM_TIMEOUT",
        "LLM_LSP_AI_HOVER",
        "llmLsp.hoverContextTokens",
        "llmLsp.timeout",
        "llmLsp.baseUrl",
    }
    message = by_setting["LLM_TIMEOUT"].message()
    assert "LLM_TIMEOUT" in message and "'soon'" in message and "using 30.0" in message
    assert "using 9.0" in by_setting["llmLsp.timeout"].message()


def test_not_an_object_is_a_problem_not_a_crash() -> None:
    settings, problems = build_settings(env={}, init_options=["x"])  # type: ignore[arg-type]
    assert settings == build_settings(env={})[0]
    assert len(problems) == 1 and "expected an object" in problems[0].message()


def test_key_never_shows() -> None:
    settings, problems = build_settings(
        env={"OPENAI_API_KEY": "sk-secret-value"}, workspace_config={"apiKey": 42}
    )
    assert "sk-secret-value" not in repr(settings)
    assert "sk-secret-value" not in str(settings.redacted())
    assert settings.redacted()["api_key"] == "set"
    assert "sk-secret-value" not in problems[0].message()
    assert "<redacted>" in problems[0].message()
    assert settings.api_key is not None and settings.api_key.reveal() == "sk-secret-value"


def test_settings_object_is_immutable() -> None:
    settings = Settings()
    with pytest.raises(dataclasses.FrozenInstanceError):
        settings.model = "x"  # type: ignore[misc]
    assert settings.model == "gpt-4o"
