"""How a setting is declared, and how one layer of raw values is applied to the declarations.

A settings field is declared once, on the dataclass field itself, with `setting(...)`:
its `llmLsp.` key, its environment variable, its parser, its default, its description
and its trust level live in the field's metadata as a `Declaration`. `collect_specs`
walks the settings dataclasses (groups included) and returns one `Spec` per setting;
`settings.build_settings`, the README table and the editor clients' schema
(`settings_docs`) are all derived from those specs, so nothing is listed twice.

Trust: a repository's own configuration (VS Code's `.vscode/settings.json`, answered
through `workspace/configuration`) is written by whoever wrote the repository. A
setting that chooses where keys and data go or what runs is declared `Trust.USER`
and is taken from the workspace layer only when the client declares the workspace
trusted; otherwise the value is ignored (the layer below stays) and reported once as
an `IgnoredSettings` notice. `apply_layer` never raises: a value that cannot be read,
whatever its type or depth, becomes a `SettingsProblem`.
"""

from __future__ import annotations

import dataclasses
import difflib
import enum
import reprlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lsp_server.settings_values import Parser, parse_providers, parse_secret

SECTION = "llmLsp"
TRUST_FLAG = "trustedWorkspace"
"""The `initializationOptions` flag by which a client declares the workspace trusted."""
CLIENT_KEYS = frozenset({"trace", "serverCommand"})
"""Keys of the `llmLsp` section that belong to the editor client (VS Code's `trace.server`)."""

_META = "llm_lsp_setting"


class Trust(enum.Enum):
    """Which layers may set a setting."""

    WORKSPACE = "workspace"
    """Any layer, an untrusted workspace's configuration included."""
    USER = "user"
    """The environment, `initializationOptions`, or a workspace the client declares trusted."""


@dataclass(frozen=True, slots=True)
class Declaration:
    """What the metadata of one settings field says about it."""

    key: str
    env: str | None
    parse: Parser
    doc: str
    trust: Trust
    shown_default: str | None = None
    env_default: Callable[[Mapping[str, str]], Any] | None = None
    needs_trust: Callable[[Any], bool] | None = None
    """For a `Trust.WORKSPACE` setting of which some values need trust: says which."""
    trust_note: str | None = None


def setting(
    default: Any = None,
    *,
    key: str,
    env: str | None,
    parse: Parser,
    doc: str,
    trust: Trust = Trust.WORKSPACE,
    shown_default: str | None = None,
    env_default: Callable[[Mapping[str, str]], Any] | None = None,
    needs_trust: Callable[[Any], bool] | None = None,
    trust_note: str | None = None,
) -> Any:
    """A dataclass field declaring one setting (see `Declaration`).

    `env_default` computes the default from the environment (paths under XDG
    directories); a bare dataclass instance uses it with an empty environment.
    """
    declaration = Declaration(
        key, env, parse, doc, trust, shown_default, env_default, needs_trust, trust_note
    )
    metadata = {_META: declaration}
    if env_default is not None:
        return field(default_factory=lambda: env_default({}), metadata=metadata)
    return field(default=default, metadata=metadata)


@dataclass(frozen=True, slots=True)
class Spec:
    """One declared setting and where it lives (`path`, e.g. ``("llm", "base_url")``)."""

    path: tuple[str, ...]
    declaration: Declaration
    field_default: Any

    @property
    def name(self) -> str:
        """The dotted attribute path, e.g. ``llm.base_url``."""
        return ".".join(self.path)

    @property
    def key(self) -> str:
        """The `llmLsp.` key (camelCase)."""
        return self.declaration.key

    def default(self, env: Mapping[str, str]) -> Any:
        """The default value for this environment."""
        compute = self.declaration.env_default
        return compute(env) if compute is not None else self.field_default

    def needs_trust(self, value: Any) -> bool:
        """Whether the workspace layer may set `value` only when trusted."""
        if self.declaration.trust is Trust.USER:
            return True
        check = self.declaration.needs_trust
        return check is not None and check(value)


def collect_specs(cls: type[Any], prefix: tuple[str, ...] = ()) -> tuple[Spec, ...]:
    """Every declared setting of the dataclass `cls`, groups (nested dataclasses) included."""
    out: list[Spec] = []
    for f in dataclasses.fields(cls):
        declaration = f.metadata.get(_META)
        if isinstance(declaration, Declaration):
            default = f.default if f.default is not dataclasses.MISSING else None
            out.append(Spec((*prefix, f.name), declaration, default))
        elif isinstance(f.default_factory, type) and dataclasses.is_dataclass(f.default_factory):
            out.extend(collect_specs(f.default_factory, (*prefix, f.name)))
    return tuple(out)


def assemble(cls: type[Any], values: Mapping[str, Any], prefix: tuple[str, ...] = ()) -> Any:
    """An instance of `cls` (groups included) from values keyed by `Spec.name`."""
    kwargs: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        path = (*prefix, f.name)
        if _META in f.metadata:
            kwargs[f.name] = values[".".join(path)]
        elif isinstance(f.default_factory, type) and dataclasses.is_dataclass(f.default_factory):
            kwargs[f.name] = assemble(f.default_factory, values, path)
    return cls(**kwargs)


@dataclass(frozen=True, slots=True)
class SettingsProblem:
    """One invalid value: where it came from, what it was, what is used instead."""

    setting: str
    source: str
    value: str
    used: str
    reason: str

    def message(self) -> str:
        """A one-line, user-facing description."""
        return (
            f"llm-lsp: invalid {self.setting} from {self.source} ({self.value}): "
            f"{self.reason}; using {self.used}"
        )


@dataclass(frozen=True, slots=True)
class UnknownSetting:
    """A key of the `llmLsp` section that no setting declares (a typo, most often)."""

    setting: str
    source: str
    suggestion: str | None

    def message(self) -> str:
        """A one-line, user-facing description."""
        hint = f"did you mean {self.suggestion}?" if self.suggestion else "it is ignored"
        return f"llm-lsp: unknown setting {self.setting} from {self.source}; {hint}"


@dataclass(frozen=True, slots=True)
class IgnoredSettings:
    """Settings an untrusted workspace tried to set; the layer below stays in force."""

    settings: tuple[str, ...]
    source: str

    def message(self) -> str:
        """A one-line, user-facing description naming every ignored setting."""
        them = "it" if len(self.settings) == 1 else "them"
        return (
            f"llm-lsp: ignored {', '.join(self.settings)} from the {self.source}: "
            "the workspace is not trusted; these settings choose where your code and key "
            f"go or what runs, so set {them} in your user settings or the environment, "
            f"or trust the workspace (the editor client sends {TRUST_FLAG}: true)"
        )


SettingsNotice = SettingsProblem | UnknownSetting | IgnoredSettings
"""Anything about the settings the user should be told."""

_REPR = reprlib.Repr()
_REPR.maxstring = 60
_REPR.maxother = 60


def shown(spec: Spec, value: Any) -> str:
    """`value` as a message may show it: keys redacted, bounded in length and depth."""
    if spec.declaration.parse is parse_secret:
        return "<redacted>"
    if spec.declaration.parse is parse_providers:
        # A misplaced key inside a provider object must not reach a message.
        if isinstance(value, tuple):
            return "[" + ", ".join(getattr(p, "name", "?") for p in value) + "]"
        return "<provider list>" if value is not None else "the defaults"
    try:
        text = str(value) if isinstance(value, Path) else _REPR.repr(value)
    except Exception:  # a value whose repr fails still gets a message
        text = f"<{type(value).__name__}>"
    return text if len(text) <= 80 else text[:77] + "..."


def trust_flag(init_options: Mapping[Any, Any] | None, notices: list[SettingsNotice]) -> bool:
    """Whether the client declared the workspace trusted (`trustedWorkspace: true`)."""
    if not isinstance(init_options, Mapping):
        return False
    section = init_options.get(SECTION)
    flag = init_options.get(TRUST_FLAG)
    if flag is None and isinstance(section, Mapping):
        flag = section.get(TRUST_FLAG)
    if flag is None or isinstance(flag, bool):
        return flag is True
    notices.append(
        SettingsProblem(
            TRUST_FLAG,
            "initializationOptions",
            type(flag).__name__,
            "false (the workspace is not trusted)",
            "expected true or false",
        )
    )
    return False


def _parse(spec: Spec, raw: Any) -> tuple[Any, str | None]:
    """The parsed value, or the reason it cannot be read (never raises)."""
    try:
        return spec.declaration.parse(raw), None
    except ValueError as exc:
        return None, str(exc)
    except Exception:  # RecursionError on deep JSON, odd types from a client: a problem
        return None, f"could not be read as {spec.key}"


def _unset(spec: Spec, raw: Any) -> bool:
    """Whether `raw` is what a client sends for a setting nobody set (null or its default).

    VS Code answers `workspace/configuration` with every declared setting, defaults
    included; an untrusted workspace "setting" those is no attempt worth a warning.
    """
    default = spec.field_default
    try:
        return bool(raw is None or raw == "" or raw == default or (raw == [] and default == ()))
    except Exception:  # an odd value whose comparison fails is not a default
        return False


@dataclass(frozen=True, slots=True)
class Layer:
    """One layer of raw values: where it came from and whether it is trusted."""

    values: Mapping[Any, Any]
    source: str
    by_env: bool = False
    trusted: bool = True


def apply_layer(
    current: dict[str, Any],
    layer: Layer,
    specs: tuple[Spec, ...],
    notices: list[SettingsNotice],
) -> None:
    """Parse each value `layer` sets into `current` (keyed by `Spec.name`), never raising.

    Invalid values and unknown keys become notices; settings an untrusted layer may
    not set are collected into one `IgnoredSettings` notice, placed first.
    """
    first = len(notices)
    ignored: list[str] = []
    if layer.by_env:
        pairs = [(spec, spec.declaration.env) for spec in specs if spec.declaration.env]
        found = [(spec, name) for spec, name in pairs if name in layer.values]
    else:
        by_key = {spec.key: spec for spec in specs}
        found = []
        for raw_key in layer.values:
            key = str(raw_key)
            spec = by_key.get(key)
            if spec is not None:
                found.append((spec, raw_key))
            elif key == TRUST_FLAG:  # only the client may say so, in initializationOptions
                claimed = layer.values[raw_key]
                if not layer.trusted and claimed is not None and claimed is not False:
                    ignored.append(f"{SECTION}.{key}")
            elif key not in CLIENT_KEYS:
                close = difflib.get_close_matches(key, list(by_key), n=1)
                suggestion = f"{SECTION}.{close[0]}" if close else None
                notices.append(UnknownSetting(f"{SECTION}.{key}", layer.source, suggestion))
    for spec, name in found:
        setting_name = str(name) if layer.by_env else f"{SECTION}.{name}"
        raw = layer.values[name]
        if not layer.trusted and spec.declaration.trust is Trust.USER:
            if not _unset(spec, raw):
                ignored.append(setting_name)
            continue
        value, reason = _parse(spec, raw)
        if reason is not None:
            used = shown(spec, current[spec.name])
            notices.append(
                SettingsProblem(setting_name, layer.source, shown(spec, raw), used, reason)
            )
        elif not layer.trusted and spec.needs_trust(value):
            ignored.append(setting_name)
        else:
            current[spec.name] = value
    if ignored:
        notices.insert(first, IgnoredSettings(tuple(ignored), layer.source))
