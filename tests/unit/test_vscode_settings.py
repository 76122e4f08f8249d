"""The VS Code extension's settings cannot drift from the server's declaration."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from types import ModuleType

from lsp_server.settings import SPECS
from lsp_server.settings_spec import CLIENT_KEYS, Trust

ROOT = Path(__file__).resolve().parents[2]


def _generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "vscode_settings", ROOT / "scripts" / "vscode_settings.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _manifest() -> dict[str, object]:
    data = json.loads((ROOT / "editors" / "vscode" / "package.json").read_text())
    assert isinstance(data, dict)
    return data


def test_package_json_is_generated_from_the_declaration() -> None:
    generator = _generator()
    text = (ROOT / "editors" / "vscode" / "package.json").read_text()
    assert generator.render(generator.updated(json.loads(text))) == text, (
        "editors/vscode/package.json is stale: python scripts/vscode_settings.py --write"
    )


def test_every_server_setting_is_contributed_but_the_key() -> None:
    manifest = _manifest()
    properties = manifest["contributes"]["configuration"]["properties"]  # type: ignore[index]
    declared = {f"llmLsp.{spec.declaration.key}" for spec in SPECS}
    assert declared - set(properties) == {"llmLsp.apiKey"}
    assert not any("apiKey" in name for name in properties)


def test_trusted_only_settings_are_machine_scoped_and_restricted() -> None:
    manifest = _manifest()
    properties = manifest["contributes"]["configuration"]["properties"]  # type: ignore[index]
    restricted = manifest["capabilities"]["untrustedWorkspaces"]["restrictedConfigurations"]  # type: ignore[index]
    for spec in SPECS:
        name = f"llmLsp.{spec.declaration.key}"
        if name not in properties:
            continue
        user_only = spec.declaration.trust is Trust.USER
        assert (properties[name].get("scope") == "machine") == user_only, name
        assert (name in restricted) == user_only, name
    assert properties["llmLsp.serverCommand"]["scope"] == "machine"
    assert "llmLsp.serverCommand" in restricted


def test_the_client_settings_are_known_to_the_server() -> None:
    properties = _manifest()["contributes"]["configuration"]["properties"]  # type: ignore[index]
    client = {name.split(".")[1] for name in _generator().CLIENT_SETTINGS}
    assert client <= CLIENT_KEYS
    assert {n.split(".")[1] for n in properties} - {s.declaration.key for s in SPECS} == client
