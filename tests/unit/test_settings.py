"""Settings: one declaration, layering, validation, trust, and the key never showing."""

from __future__ import annotations

import dataclasses
import json
import random
from pathlib import Path
from typing import Any

import pytest

from lsp_server import cli
from lsp_server.settings import (
    SPECS,
    IgnoredSettings,
    Settings,
    SettingsProblem,
    UnknownSetting,
    build_settings,
)
from lsp_server.settings_docs import json_schema, markdown_table, readme_table
from lsp_server.settings_spec import Trust
from lsp_server.settings_values import Secret

README = Path(__file__).resolve().parents[2] / "README.md"


def _value(settings: Settings, name: str) -> Any:
    value: Any = settings
    for part in name.split("."):
        value = getattr(value, part)
    return value


def test_defaults_follow_the_environment_contract() -> None:
    settings, problems = build_settings(env={"HOME": "/home/u"})
    assert problems == []
    assert settings.llm.model == "gpt-4o"
    assert settings.llm.cheap_model == "gpt-4o-mini"
    assert settings.llm.api_key is None
    assert settings.storage.cache_dir == Path("/home/u/.cache/llm-lsp")
    assert settings.storage.usage_log == Path("/home/u/.local/state/llm-lsp/usage.jsonl")


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
    llm = settings.llm
    assert llm.api_key == Secret("sk-abc")
    assert llm.base_url == "http://127.0.0.1:9/v1"
    assert (llm.model, llm.cheap_model) == ("gpt-4.1", "gpt-4.1-mini")
    assert llm.local_base_url == "http://127.0.0.1:8080/v1"
    assert llm.local_model == "qwen2.5-coder"
    assert llm.timeout == 12.5
    assert settings.storage.cache_dir == Path("/tmp/c")
    assert settings.storage.usage_log == Path("/tmp/u.jsonl")


def test_layers_later_wins_and_section_is_optional() -> None:
    settings, problems = build_settings(
        env={"LLM_MODEL": "from-env", "LLM_TIMEOUT": "5"},
        init_options={"llmLsp": {"model": "from-init", "timeout": 7}},
        workspace_config={"model": "from-config"},
    )
    assert problems == []
    assert settings.llm.model == "from-config"
    assert settings.llm.timeout == 7.0


def test_invalid_values_are_reported_and_the_layer_below_is_used() -> None:
    settings, problems = build_settings(
        env={"LLM_TIMEOUT": "soon", "LLM_LSP_AI_HOVER": "maybe"},
        init_options={"llmLsp": {"timeout": 9, "hoverContextTokens": -5}},
        workspace_config={"llmLsp": {"timeout": "nan", "localModel": 3, "aiHover": True}},
    )
    assert settings.llm.timeout == 9.0
    assert settings.hover.context_tokens == 2000
    assert settings.llm.local_model is None
    assert settings.hover.enabled is True
    assert all(isinstance(p, SettingsProblem) for p in problems)
    by_setting = {p.setting: p for p in problems if isinstance(p, SettingsProblem)}
    assert set(by_setting) == {
        "LLM_TIMEOUT",
        "LLM_LSP_AI_HOVER",
        "llmLsp.hoverContextTokens",
        "llmLsp.timeout",
        "llmLsp.localModel",
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
        env={"OPENAI_API_KEY": "sk-secret-value"}, init_options={"apiKey": 42}
    )
    assert "sk-secret-value" not in repr(settings)
    assert "sk-secret-value" not in str(settings.redacted())
    assert settings.redacted()["llm.api_key"] == "set"
    assert "sk-secret-value" not in problems[0].message()
    assert "<redacted>" in problems[0].message()
    assert settings.llm.api_key is not None and settings.llm.api_key.reveal() == "sk-secret-value"


def test_settings_object_is_immutable() -> None:
    settings = Settings()
    with pytest.raises(dataclasses.FrozenInstanceError):
        settings.llm.model = "x"  # type: ignore[misc]
    assert settings.llm.model == "gpt-4o"


# -- one declaration ---------------------------------------------------------------------


def test_every_field_is_declared_once_with_unique_key_and_variable() -> None:
    leaves: list[str] = []

    def walk(cls: type[Any], prefix: str) -> None:
        for f in dataclasses.fields(cls):
            if isinstance(f.default_factory, type) and dataclasses.is_dataclass(f.default_factory):
                walk(f.default_factory, f"{prefix}{f.name}.")
            else:
                leaves.append(prefix + f.name)

    walk(Settings, "")
    assert [s.name for s in SPECS] == leaves
    keys = [s.key for s in SPECS]
    envs = [s.declaration.env for s in SPECS]
    assert len(set(keys)) == len(keys) == 53
    assert len(set(envs)) == len(envs)
    assert all(s.declaration.doc for s in SPECS)


def test_readme_table_is_generated_from_the_declaration() -> None:
    table = readme_table(README.read_text(encoding="utf-8"))
    assert table is not None, "README lacks the settings-table markers"
    assert table == markdown_table(), (
        "README settings table is stale: run python -m lsp_server.settings_docs --write README.md"
    )


def test_json_schema_lists_every_setting_with_its_trust() -> None:
    properties = json_schema()["properties"]
    assert list(properties) == [f"llmLsp.{s.key}" for s in SPECS]
    restricted = {k for k, v in properties.items() if v["restricted"]}
    assert restricted == {
        "llmLsp.apiKey",
        "llmLsp.baseUrl",
        "llmLsp.localBaseUrl",
        "llmLsp.providers",
        "llmLsp.runTests",
        "llmLsp.cacheDir",
        "llmLsp.usageLog",
        "llmLsp.redisUrl",
        "llmLsp.budgets",
        "llmLsp.budgetSoftLimit",
        "llmLsp.rateLimits",
        "llmLsp.rateLimitWindow",
        "llmLsp.user",
        "llmLsp.team",
        "llmLsp.telemetryExporter",
        "llmLsp.telemetryFile",
        "llmLsp.telemetryRecordContent",
        "llmLsp.usageLogMaxMb",
    }
    assert properties["llmLsp.timeout"]["default"] == 30.0
    assert properties["llmLsp.timeout"]["x-env"] == "LLM_TIMEOUT"
    assert "default" not in properties["llmLsp.cacheDir"]  # depends on XDG directories


def test_cli_prints_the_schema(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["settings", "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed == json.loads(json.dumps(json_schema()))


def test_cli_prints_the_settings_in_force_without_the_key(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-cli-secret")
    monkeypatch.setenv("LLM_TIMEOUT", "12")
    assert cli.main(["settings"]) == 0
    out = capsys.readouterr().out
    assert "llm.api_key = set" in out.splitlines()
    assert "llm.timeout = 12.0" in out.splitlines()
    assert "sk-cli-secret" not in out


# -- unknown keys ------------------------------------------------------------------------


def test_an_unknown_key_gets_one_warning_with_the_nearest_key() -> None:
    settings, problems = build_settings(
        env={}, workspace_config={"llmLsp": {"modle": "gpt-4.1", "timeout": 5, "zzzqqq": 1}}
    )
    assert settings.llm.model == "gpt-4o" and settings.llm.timeout == 5.0
    assert [p.message() for p in problems] == [
        "llm-lsp: unknown setting llmLsp.modle from workspace configuration; "
        "did you mean llmLsp.model?",
        "llm-lsp: unknown setting llmLsp.zzzqqq from workspace configuration; it is ignored",
    ]
    assert all(isinstance(p, UnknownSetting) for p in problems)


def test_client_keys_are_not_unknown() -> None:
    _, problems = build_settings(
        env={}, init_options={"trustedWorkspace": True, "llmLsp": {"trace": {"server": "off"}}}
    )
    assert problems == []


# -- trust -------------------------------------------------------------------------------

TRUSTED_ONLY = {
    "apiKey": ("llm.api_key", "sk-from-the-repository"),
    "baseUrl": ("llm.base_url", "http://attacker.example/v1"),
    "localBaseUrl": ("llm.local_base_url", "http://attacker.example/v1"),
    "providers": (
        "llm.providers",
        [{"name": "p", "role": "primary", "apiKeyEnv": "AWS_SECRET_ACCESS_KEY", "models": ["m"]}],
    ),
    "routingRules": ("llm.routing_rules", [{"tier": "primary", "model": "o1-pro"}]),
    "runTests": ("agent.run_tests", True),
    "cacheDir": ("storage.cache_dir", "/tmp/attacker-cache"),
    "usageLog": ("storage.usage_log", "~/.bashrc"),
    "redisUrl": ("storage.redis_url", "redis://attacker.example:6379/0"),
    "budgets": ("limits.budgets", {"user": {"dailyUsd": 100000}}),
    "budgetSoftLimit": ("limits.soft_limit", 0),
    "rateLimits": ("limits.rate_limits", {}),
    "rateLimitWindow": ("limits.rate_window", 1),
    "user": ("limits.user", "someone-else"),
    "team": ("limits.team", "someone-elses-team"),
    "telemetryExporter": ("telemetry.exporter", "file"),
    "telemetryFile": ("telemetry.file", "/tmp/attacker-traces.jsonl"),
    "telemetryRecordContent": ("telemetry.record_content", True),
    "usageLogMaxMb": ("storage.usage_log_max_mb", 1),
}
ENV = {"HOME": "/home/u", "OPENAI_API_KEY": "sk-user", "OPENAI_BASE_URL": "http://user.example/v1"}


def test_the_trusted_only_list_is_what_the_declaration_says() -> None:
    declared = {s.key for s in SPECS if s.declaration.trust is Trust.USER}
    assert declared == set(TRUSTED_ONLY) - {"routingRules"}


@pytest.mark.parametrize("key", sorted(TRUSTED_ONLY))
def test_an_untrusted_workspace_cannot_set(key: str) -> None:
    name, value = TRUSTED_ONLY[key]
    lower, _ = build_settings(env=ENV)
    settings, problems = build_settings(env=ENV, workspace_config={"llmLsp": {key: value}})
    assert _value(settings, name) == _value(lower, name)  # the lower layer stays
    assert problems == [IgnoredSettings((f"llmLsp.{key}",), "workspace configuration")]
    message = problems[0].message()
    assert f"ignored llmLsp.{key} from the workspace configuration" in message
    assert "not trusted" in message and "trustedWorkspace" in message


@pytest.mark.parametrize("key", sorted(TRUSTED_ONLY))
def test_a_trusted_workspace_and_the_user_may_set(key: str) -> None:
    name, value = TRUSTED_ONLY[key]
    lower, _ = build_settings(env=ENV)
    by_user, problems = build_settings(env=ENV, init_options={"llmLsp": {key: value}})
    assert problems == []
    assert _value(by_user, name) != _value(lower, name)
    trusted, problems = build_settings(
        env=ENV,
        init_options={"trustedWorkspace": True},
        workspace_config={"llmLsp": {key: value}},
    )
    assert problems == []
    assert _value(trusted, name) == _value(by_user, name)


def test_a_workspace_answer_full_of_defaults_is_quiet() -> None:
    # VS Code answers with every declared setting, defaults (from our schema) included.
    answer = {
        key.removeprefix("llmLsp."): entry.get("default")
        for key, entry in json_schema()["properties"].items()
    }
    settings, problems = build_settings(env=ENV, workspace_config={"llmLsp": answer})
    assert problems == []
    assert settings == build_settings(env=ENV)[0]


def test_the_environment_is_trusted() -> None:
    settings, problems = build_settings(
        env={**ENV, "LLM_LSP_RUN_TESTS": "1", "LLM_LSP_CACHE_DIR": "/tmp/c"}
    )
    assert problems == []
    assert settings.agent.run_tests and settings.storage.cache_dir == Path("/tmp/c")


def test_one_notice_names_every_ignored_setting_and_the_rest_applies() -> None:
    settings, problems = build_settings(
        env=ENV,
        workspace_config={
            "baseUrl": "http://attacker.example/v1",
            "runTests": True,
            "routingRules": [{"tier": "cheap", "kind": "hover"}],  # no model: allowed
            "model": "gpt-4.1",
        },
    )
    assert problems == [
        IgnoredSettings(("llmLsp.baseUrl", "llmLsp.runTests"), "workspace configuration")
    ]
    assert settings.llm.base_url == "http://user.example/v1"
    assert settings.agent.run_tests is False
    assert settings.llm.model == "gpt-4.1"
    assert [r.tier for r in settings.llm.routing_rules] == ["cheap"]


def test_a_workspace_cannot_declare_itself_trusted() -> None:
    settings, problems = build_settings(
        env=ENV,
        workspace_config={"llmLsp": {"trustedWorkspace": True, "runTests": True}},
    )
    assert settings.agent.run_tests is False
    assert problems == [
        IgnoredSettings(("llmLsp.trustedWorkspace", "llmLsp.runTests"), "workspace configuration")
    ]
    _, problems = build_settings(env=ENV, workspace_config={"trustedWorkspace": False})
    assert problems == []  # claiming nothing is no attempt


def test_the_trust_flag_may_sit_in_the_section_and_must_be_a_boolean() -> None:
    trusted, problems = build_settings(
        env=ENV,
        init_options={"llmLsp": {"trustedWorkspace": True}},
        workspace_config={"runTests": True},
    )
    assert problems == [] and trusted.agent.run_tests is True
    untrusted, problems = build_settings(
        env=ENV, init_options={"trustedWorkspace": "yes"}, workspace_config={"runTests": True}
    )
    assert untrusted.agent.run_tests is False
    assert [type(p) for p in problems] == [SettingsProblem, IgnoredSettings]
    assert "trustedWorkspace" in problems[0].message()


# -- never fatal -------------------------------------------------------------------------

ODD_VALUES: list[Any] = [
    None,
    True,
    False,
    0,
    -1,
    2**80,
    10**5000,
    1.5,
    float("nan"),
    float("inf"),
    -0.0,
    "",
    " ",
    "0",
    "\x00",
    "~nobody-of-that-name/x",
    "x" * 10_000,
    "[" * 5000,
    "[{}]",
    '[{"name": 1}]',
    [],
    [None],
    [[[]]],
    [{"name": "a", "role": "local", "baseUrl": "http://h/v1", "apiKeyEnv": "A"}, 1],
    {},
    {"a": {"b": {}}},
    {1: 2},
    [{1: 2}],
    [{"tier": "cheap", "kind": ["hover", 3]}],
    [{"name": "a", "role": "primary", "models": ["m"], "timeout": "x"}],
]


def _deep(depth: int) -> Any:
    value: Any = []
    for _ in range(depth):
        value = [value]
    return value


def _random_json(rng: random.Random, depth: int = 0) -> Any:
    kind = rng.randrange(8 if depth < 4 else 5)
    if kind == 0:
        return None
    if kind == 1:
        return rng.choice([True, False])
    if kind == 2:
        return rng.choice([0, 1, -7, 3.25, 1e308, -1e-9, 2**64])
    if kind == 3:
        return rng.choice(["", "a", "true", "http://x/v1", "ftp://x", "~", "DEBUG", "[]"])
    if kind == 4:
        return rng.choice([s.key for s in SPECS])
    if kind == 5:
        return [_random_json(rng, depth + 1) for _ in range(rng.randrange(3))]
    keys = ["name", "role", "tier", "model", "models", "baseUrl", "apiKeyEnv", "kind", "x"]
    return {rng.choice(keys): _random_json(rng, depth + 1) for _ in range(rng.randrange(4))}


@pytest.mark.parametrize("value", [*ODD_VALUES, _deep(50_000)], ids=range(len(ODD_VALUES) + 1))
def test_no_value_of_any_setting_is_fatal(value: Any) -> None:
    section = {s.key: value for s in SPECS}
    text = value if isinstance(value, str) else "[{"  # environment values are text
    for trust in (True, False):
        settings, problems = build_settings(
            env={s.declaration.env: text for s in SPECS if s.declaration.env},
            init_options={"trustedWorkspace": trust, "llmLsp": section},
            workspace_config={"llmLsp": section},
        )
        assert isinstance(settings, Settings)
        assert all(p.message() for p in problems)


def test_random_json_is_never_fatal() -> None:
    rng = random.Random(20261202)
    for _ in range(100):
        section = {s.key: _random_json(rng) for s in SPECS if rng.random() < 0.5}
        section[rng.choice(["modle", "x", "providerz"])] = _random_json(rng)
        settings, problems = build_settings(
            env={}, init_options={"llmLsp": section}, workspace_config=_random_json(rng)
        )
        assert isinstance(settings, Settings)
        assert all(p.message() for p in problems)


def test_ai_hover_modes_and_the_old_boolean_form() -> None:
    def mode(value: object) -> str:
        settings, problems = build_settings(env={}, init_options={"llmLsp": {"aiHover": value}})
        assert problems == []
        return settings.hover.mode

    assert [mode(v) for v in ("always", "onrepeat", "OFF", True, False, "yes")] == [
        "always",
        "onRepeat",
        "off",
        "always",
        "off",
        "always",
    ]
    settings, problems = build_settings(env={}, init_options={"llmLsp": {"aiHover": "sometimes"}})
    assert settings.hover.mode == "always" and settings.hover.enabled
    assert "always, onRepeat or off" in problems[0].message()
    assert build_settings(env={"LLM_LSP_HOVER_WAIT": "0"})[0].hover.wait == 0.0
