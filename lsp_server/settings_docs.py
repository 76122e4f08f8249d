"""The settings' documentation, generated from their one declaration (`settings.SPECS`).

- `markdown_table()`: the README's settings table (between the markers
  `<!-- settings-table:start -->` and `<!-- settings-table:end -->`), with a Trust
  column saying which settings a workspace's own configuration may set. A unit test
  fails when the README and the declaration disagree; `python -m
  lsp_server.settings_docs --write README.md` brings the README up to date.
- `json_schema()`: the declarations as a JSON schema in the shape of VS Code's
  `contributes.configuration` (`llmLsp.<key>` properties with type, default,
  description, `restricted` for settings an untrusted workspace may not set, and the
  environment variable), for the editor clients' setting lists
  (`llm-lsp settings --json`).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from lsp_server.settings import SECTION, SPECS
from lsp_server.settings_spec import Spec, Trust
from lsp_server.settings_values import parser_schema

START = "<!-- settings-table:start -->"
END = "<!-- settings-table:end -->"


def _default_text(spec: Spec) -> str:
    shown = spec.declaration.shown_default
    if shown is not None:
        return shown
    value = spec.field_default
    if value is None:
        return "unset"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, str):
        return f"`{value}`"
    if value == ():
        return "none"
    return str(value)


def trust_text(spec: Spec) -> str:
    """Who may set the setting, as the README's Trust column says it."""
    declaration = spec.declaration
    if declaration.trust_note is not None:
        return declaration.trust_note
    return "trusted only" if declaration.trust is Trust.USER else "workspace"


def markdown_table() -> str:
    """The README's settings table, one row per declared setting."""
    rows = [
        "| environment | `llmLsp.` key | default | trust | meaning |",
        "| --- | --- | --- | --- | --- |",
    ]
    for spec in SPECS:
        d = spec.declaration
        env = f"`{d.env}`" if d.env else ""
        cells = (env, f"`{d.key}`", _default_text(spec), trust_text(spec), d.doc)
        rows.append("| " + " | ".join(cells) + " |")
    return "\n".join(rows) + "\n"


def _json_default(spec: Spec) -> tuple[bool, Any]:
    if spec.declaration.env_default is not None:
        return False, None  # depends on the user's environment (XDG directories)
    value = spec.field_default
    if isinstance(value, tuple):
        return True, list(value)
    return True, value


def json_schema() -> dict[str, Any]:
    """Every setting as a `contributes.configuration`-like JSON schema."""
    properties: dict[str, Any] = {}
    for spec in SPECS:
        d = spec.declaration
        entry: dict[str, Any] = parser_schema(d.parse)
        has_default, default = _json_default(spec)
        if has_default:
            entry["default"] = default
        entry["description"] = d.doc
        entry["restricted"] = d.trust is Trust.USER
        entry["x-trust"] = trust_text(spec)
        if d.env:
            entry["x-env"] = d.env
        properties[f"{SECTION}.{d.key}"] = entry
    return {"title": "llm-lsp", "type": "object", "properties": properties}


def readme_table(readme: str) -> str | None:
    """The table between the markers of `readme`, or None without markers."""
    start, end = readme.find(START), readme.find(END)
    if start < 0 or end < start:
        return None
    return readme[start + len(START) : end].strip("\n") + "\n"


def updated_readme(readme: str) -> str:
    """`readme` with the table between its markers regenerated."""
    start, end = readme.find(START), readme.find(END)
    if start < 0 or end < start:
        raise ValueError(f"the README has no {START} ... {END} markers")
    return readme[: start + len(START)] + "\n" + markdown_table() + readme[end:]


def main(argv: list[str] | None = None) -> int:
    """`python -m lsp_server.settings_docs [--check | --write] [README] | --json`."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("readme", nargs="?", type=Path, default=Path("README.md"))
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--check", action="store_true", help="fail if the README's table is stale")
    mode.add_argument("--write", action="store_true", help="regenerate the README's table")
    mode.add_argument("--json", action="store_true", help="print the settings' JSON schema")
    args = parser.parse_args(argv)
    if args.json:
        sys.stdout.write(json.dumps(json_schema(), indent=2) + "\n")
        return 0
    if not (args.check or args.write):
        sys.stdout.write(markdown_table())
        return 0
    text = args.readme.read_text(encoding="utf-8")
    if args.write:
        args.readme.write_text(updated_readme(text), encoding="utf-8")
        return 0
    if readme_table(text) != markdown_table():
        sys.stderr.write(f"{args.readme}: the settings table is stale; run with --write\n")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
