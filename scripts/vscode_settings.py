"""The VS Code extension's setting list, generated from the server's one declaration.

`editors/vscode/package.json` contributes every server setting under `llmLsp.*`
(`contributes.configuration`) and lists the trusted-only ones as
`capabilities.untrustedWorkspaces.restrictedConfigurations`; both are generated here from
`lsp_server.settings_docs.json_schema()` (what `llm-lsp settings --json` prints), so they
cannot drift: `tests/unit/test_vscode_settings.py` fails when they disagree.

- Trusted-only settings get `"scope": "machine"`: a repository's `.vscode/settings.json`
  cannot set them, and VS Code ignores them in Restricted Mode.
- `apiKey` is not contributed: the key lives in VS Code's SecretStorage
  ("llm-lsp: Set API Key") and reaches the server through its environment.
- The client's own settings (`serverCommand`, `trace.server`) are added here.

Usage: `python scripts/vscode_settings.py --check | --write`.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from lsp_server.settings import SECTION
from lsp_server.settings_docs import json_schema

ROOT = Path(__file__).resolve().parents[1]
PACKAGE_JSON = ROOT / "editors" / "vscode" / "package.json"

#: Server settings the extension does not contribute, with the reason.
NOT_CONTRIBUTED = {f"{SECTION}.apiKey": "kept in SecretStorage, never in settings.json"}

#: Settings of the client itself (the server ignores them: `settings_spec.CLIENT_KEYS`).
CLIENT_SETTINGS: dict[str, dict[str, Any]] = {
    f"{SECTION}.serverCommand": {
        "type": ["array", "null"],
        "items": {"type": "string"},
        "default": None,
        "scope": "machine",
        "markdownDescription": (
            "The command line that starts the server, e.g. "
            '`["/home/me/.venv/bin/llm-lsp", "serve"]`. Unset: the Python extension\'s '
            "interpreter runs `-P -m lsp_server serve`, else `python3 -P -m lsp_server serve`. "
            "User settings only (a workspace cannot choose what runs)."
        ),
    },
    f"{SECTION}.trace.server": {
        "type": "string",
        "enum": ["off", "messages", "verbose"],
        "default": "off",
        "description": "Traces the LSP messages between VS Code and the server.",
    },
}

_DROPPED = {"restricted", "x-trust", "x-env", "description"}


def _property(entry: dict[str, Any]) -> dict[str, Any]:
    prop = {k: v for k, v in entry.items() if k not in _DROPPED}
    text = entry["description"].rstrip(".")
    env = entry.get("x-env")
    text = f"{text[:1].upper()}{text[1:]}."
    if env:
        text += f" Environment variable: `{env}`."
    if entry["restricted"]:
        prop["scope"] = "machine"
        text += " Trusted only: user settings, never a workspace's."
    prop["markdownDescription"] = text
    return prop


def contributed() -> tuple[dict[str, Any], list[str]]:
    """The `contributes.configuration.properties` and the restricted setting names."""
    properties: dict[str, Any] = {}
    restricted: list[str] = []
    for name, entry in json_schema()["properties"].items():
        if name in NOT_CONTRIBUTED:
            continue
        properties[name] = _property(entry)
        if entry["restricted"]:
            restricted.append(name)
    for name, prop in CLIENT_SETTINGS.items():
        properties[name] = prop
        if prop.get("scope") == "machine":
            restricted.append(name)
    return properties, restricted


def updated(manifest: dict[str, Any]) -> dict[str, Any]:
    """`manifest` with its settings regenerated (a new dict; the rest unchanged)."""
    result = json.loads(json.dumps(manifest))
    properties, restricted = contributed()
    result["contributes"]["configuration"]["properties"] = properties
    result["capabilities"]["untrustedWorkspaces"]["restrictedConfigurations"] = restricted
    return result


def render(manifest: dict[str, Any]) -> str:
    return json.dumps(manifest, indent=2, ensure_ascii=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--check", action="store_true", help="fail if package.json is stale")
    mode.add_argument("--write", action="store_true", help="regenerate package.json's settings")
    args = parser.parse_args(argv)
    text = PACKAGE_JSON.read_text(encoding="utf-8")
    fresh = render(updated(json.loads(text)))
    if args.write:
        if fresh != text:
            PACKAGE_JSON.write_text(fresh, encoding="utf-8")
        return 0
    if fresh != text:
        print(
            f"{PACKAGE_JSON.relative_to(ROOT)} settings differ from the server's declaration; "
            "run: python scripts/vscode_settings.py --write",
            file=sys.stderr,
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
