"""The language server: state on a LanguageServer subclass, thin handlers.

Handlers hand their params to `features/` (which translate LSP to plain values
and call the pipelines through the engine) and answer through
`features.base.guarded`. Settings are built at `initialize` (environment ← initializationOptions),
refined from `workspace/configuration` once initialized and on every
`workspace/didChangeConfiguration` (settings pushed with it count as the
workspace layer, so the trust rules of `settings.py` apply to them too); invalid
and ignored values are shown to the user as warnings, each once. No handler
lets an exception reach the editor as a stack trace (`guarded`); `asyncio.CancelledError`
is left to pygls, which answers RequestCancelled.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import threading
from collections.abc import Awaitable
from pathlib import Path
from typing import Any

from lsprotocol import types
from pygls.capabilities import get_capability
from pygls.lsp.server import LanguageServer
from pygls.uris import to_fs_path

from lsp_server import __version__
from lsp_server.engine import Engine
from lsp_server.features import ask as ask_feature
from lsp_server.features import code_actions, regenerate
from lsp_server.features import health as health_feature
from lsp_server.features import hover as hover_feature
from lsp_server.features.base import guarded
from lsp_server.features.doctor import run_doctor_command
from lsp_server.limits.alerts import LimitEvent
from lsp_server.protocol import LlmProtocol
from lsp_server.settings import SECTION, Settings, SettingsNotice, build_settings
from lsp_server.settings_spec import trust_flag
from lsp_server.telemetry import export
from lsp_server.telemetry.tracing import request_span

logger = logging.getLogger(__name__)

CMD_DOCTOR = "llmLsp.doctor"
#: What a command answers when it failed unexpectedly (the user got a message).
COMMAND_FAILED = "llm-lsp: the command failed; see the server log"


class LlmLanguageServer(LanguageServer):
    """Holds the settings and the engine for one editor session."""

    def __init__(self) -> None:
        super().__init__("llm-lsp", __version__, protocol_cls=LlmProtocol)
        self.settings: Settings = Settings()
        self.engine: Engine | None = None
        self.init_options: dict[str, Any] = {}
        self.root: Path | None = None
        self.pending_problems: list[SettingsNotice] = []
        self._reported: set[str] = set()  # the notices of the last settings build
        self._background: set[asyncio.Task[None]] = set()
        self._buffers: dict[Path, str] = {}  # open documents by normalised absolute path
        self._buffers_lock = threading.Lock()

    @property
    def lsp_protocol(self) -> LlmProtocol:
        """The protocol, typed as ours."""
        assert isinstance(self.protocol, LlmProtocol)
        return self.protocol

    def uri_to_path(self, uri: str) -> Path | None:
        """A filesystem path for a file:// URI, else None."""
        path = to_fs_path(uri)
        # a NUL byte (file:///%00) names no file, and makes every os call raise ValueError
        return Path(path) if path and "\x00" not in path else None

    def read_buffer(self, path: Path) -> str | None:
        """The text of `path` if the editor has it open (unsaved changes included).

        A dict lookup, safe from any thread (the context engine calls it from
        worker threads, once per import hop). Buffers are filed under their
        path and its symlink-free form, so lookups never touch the disk.
        """
        key = _buffer_key(path)
        with self._buffers_lock:
            return self._buffers.get(key)

    def buffer_updated(self, uri: str) -> Path | None:
        """Copy the workspace's text of ``uri`` into the buffer map (didOpen/didChange)."""
        path = self.uri_to_path(uri)
        if path is None:
            return None
        text = str(self.workspace.get_text_document(uri).source)
        keys = _buffer_keys(path)
        with self._buffers_lock:
            for key in keys:
                self._buffers[key] = text
        return path

    def buffer_closed(self, uri: str) -> Path | None:
        """Forget the buffer of ``uri`` (didClose): its disk text counts again."""
        path = self.uri_to_path(uri)
        if path is None:
            return None
        keys = _buffer_keys(path)
        with self._buffers_lock:
            for key in keys:
                self._buffers.pop(key, None)
        return path

    def cancel_background(self) -> None:
        """Cancel background work (the workspace warm-up) at shutdown."""
        for task in list(self._background):
            task.cancel()

    def report_problems(self, problems: list[SettingsNotice]) -> None:
        """Tell the user about each settings notice the previous build did not already show."""
        messages = [problem.message() for problem in problems]
        for message in messages:
            if message not in self._reported:
                self.window_show_message(
                    types.ShowMessageParams(type=types.MessageType.Warning, message=message)
                )
        self._reported = set(messages)

    def show_limit_event(self, event: LimitEvent) -> None:
        """A budget alert (50/80/100 %) or a limits-store notice, as `window/showMessage`."""
        serious = event.kind == "backend" or event.threshold >= 80
        kind = types.MessageType.Warning if serious else types.MessageType.Info
        self.window_show_message(types.ShowMessageParams(type=kind, message=event.message))

    def spawn(self, coro: Awaitable[None], name: str) -> None:
        """Run background work, keeping a reference and logging its failure."""

        async def runner() -> None:
            try:
                await coro
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.exception("background task %s failed", name)

        task = asyncio.ensure_future(runner())
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def apply_settings(self, workspace_config: dict[str, Any] | None) -> None:
        """Rebuild settings from all layers and hand them to the engine."""
        settings, problems = build_settings(
            init_options=self.init_options, workspace_config=workspace_config
        )
        self.settings = settings
        _set_log_level(settings.log_level)
        _configure_telemetry(settings)
        if self.engine is None:
            self.engine = Engine(settings, self.root, self.read_buffer, self.show_limit_event)
        else:
            await self.engine.update_settings(settings)
        self.report_problems(problems)  # after the swap: what is reported is in force


def _buffer_key(path: Path) -> Path:
    return Path(os.path.normpath(path.absolute()))


def _buffer_keys(path: Path) -> set[Path]:
    """Where a buffer is filed: its path as given and without symlinks."""
    keys = {_buffer_key(path)}
    with contextlib.suppress(OSError, RuntimeError):
        keys.add(_buffer_key(path.resolve()))
    return keys


def _set_log_level(level: str) -> None:
    logging.getLogger("lsp_server").setLevel(level)


def _configure_telemetry(settings: Settings) -> None:
    """Export traces and metrics as the settings say (nothing by default)."""
    t = settings.telemetry
    export.configure(export.ExportConfig(t.exporter, t.file, t.record_content, __version__))


def create_server() -> LlmLanguageServer:
    """A server with every feature registered."""
    server = LlmLanguageServer()

    @server.feature(types.INITIALIZE)
    def on_initialize(ls: LlmLanguageServer, params: types.InitializeParams) -> None:
        options = params.initialization_options
        ls.init_options = options if isinstance(options, dict) else {}
        root_uri = params.root_uri
        if params.workspace_folders:
            root_uri = params.workspace_folders[0].uri
        ls.root = ls.uri_to_path(root_uri) if root_uri else None
        settings, problems = build_settings(init_options=ls.init_options)
        ls.settings = settings
        ls.engine = Engine(settings, ls.root, ls.read_buffer, ls.show_limit_event)
        ls.pending_problems = problems
        _set_log_level(settings.log_level)
        _configure_telemetry(settings)
        trusted = trust_flag(ls.init_options, [])
        logger.info(
            "initialized for root %s (trusted workspace: %s) with %s",
            ls.root,
            trusted,
            settings.redacted(),
        )

    @server.feature(types.INITIALIZED)
    async def on_initialized(ls: LlmLanguageServer, params: types.InitializedParams) -> None:
        ls.report_problems(ls.pending_problems)
        ls.pending_problems = []
        await _pull_configuration(ls)
        if ls.engine is not None:
            ls.spawn(ls.engine.warm_up(), "warm-up")
            if health_feature.wants_notifications(ls.client_capabilities):
                ls.spawn(health_feature.publish_health(ls), "health notifications")
            if await _watch_files(ls):
                ls.engine.watch_files()

    @server.feature(types.WORKSPACE_DID_CHANGE_CONFIGURATION)
    async def on_did_change_configuration(
        ls: LlmLanguageServer, params: types.DidChangeConfigurationParams
    ) -> None:
        if not await _pull_configuration(ls):
            pushed = params.settings if isinstance(params.settings, dict) else None
            await ls.apply_settings(pushed)

    @server.feature(types.TEXT_DOCUMENT_DID_OPEN)
    def on_did_open(ls: LlmLanguageServer, params: types.DidOpenTextDocumentParams) -> None:
        path = ls.buffer_updated(params.text_document.uri)
        if ls.engine is not None:
            ls.engine.document_changed(path)

    @server.feature(types.TEXT_DOCUMENT_DID_CHANGE)
    def on_did_change(ls: LlmLanguageServer, params: types.DidChangeTextDocumentParams) -> None:
        path = ls.buffer_updated(params.text_document.uri)
        if ls.engine is not None:
            ls.engine.document_edited(path)
            code_actions.document_changed(ls, params.text_document.uri)  # fix applied?

    @server.feature(types.TEXT_DOCUMENT_DID_CLOSE)
    def on_did_close(ls: LlmLanguageServer, params: types.DidCloseTextDocumentParams) -> None:
        path = ls.buffer_closed(params.text_document.uri)
        if ls.engine is not None:
            ls.engine.document_edited(path)  # unsaved edits are gone: the disk counts again

    @server.feature(types.WORKSPACE_DID_CHANGE_WATCHED_FILES)
    def on_watched_files(ls: LlmLanguageServer, params: types.DidChangeWatchedFilesParams) -> None:
        if ls.engine is None:
            return
        for change in params.changes:
            ls.engine.document_changed(ls.uri_to_path(change.uri))

    @server.feature(types.TEXT_DOCUMENT_DID_SAVE)
    def on_did_save(ls: LlmLanguageServer, params: types.DidSaveTextDocumentParams) -> None:
        if ls.engine is not None:
            path = ls.uri_to_path(params.text_document.uri)
            ls.engine.document_changed(path)
            if path is not None:
                ls.spawn(ls.engine.file_saved(path), "question index update")

    @server.feature(types.TEXT_DOCUMENT_HOVER)
    async def on_hover(ls: LlmLanguageServer, params: types.HoverParams) -> types.Hover | None:
        with request_span(types.TEXT_DOCUMENT_HOVER):
            return await guarded(ls, hover_feature.hover(ls, params), None, name="hover")

    @server.feature(
        types.TEXT_DOCUMENT_CODE_ACTION,
        types.CodeActionOptions(
            code_action_kinds=[
                code_actions.KIND_EXPLAIN,
                code_actions.KIND_FIX,
                regenerate.KIND_REGENERATE,
            ],
            resolve_provider=True,
        ),
    )
    async def on_code_action(
        ls: LlmLanguageServer, params: types.CodeActionParams
    ) -> list[types.CodeAction | types.Command]:
        # Listing must never fail the editor: on a bug, offer nothing.
        with request_span(types.TEXT_DOCUMENT_CODE_ACTION):
            listing = code_actions.list_actions(ls, params)
            return await guarded(ls, listing, [], name="listing code actions")

    @server.feature(types.CODE_ACTION_RESOLVE)
    async def on_code_action_resolve(
        ls: LlmLanguageServer, action: types.CodeAction
    ) -> types.CodeAction:
        failure = f"llm-lsp: '{action.title}' failed; see the server log"
        with request_span(types.CODE_ACTION_RESOLVE, {"llm_lsp.action": action.title}):
            work = code_actions.resolve(ls, action)
            return await guarded(
                ls, work, action, name=f"resolving {action.title!r}", failure=failure
            )

    @server.command(code_actions.CMD_EXPLAIN)
    async def on_explain(ls: LlmLanguageServer, *args: Any) -> dict[str, Any]:
        return await _command(ls, code_actions.run_explain_command(ls, list(args)), "explain")

    @server.command(code_actions.CMD_FIX)
    async def on_fix(ls: LlmLanguageServer, *args: Any) -> dict[str, Any]:
        return await _command(ls, code_actions.run_fix_command(ls, list(args)), "fix")

    @server.command(ask_feature.CMD_ASK)
    async def on_ask(ls: LlmLanguageServer, *args: Any) -> dict[str, Any]:
        return await _command(ls, ask_feature.run_ask_command(ls, list(args)), "ask")

    @server.command(regenerate.CMD_REGENERATE)
    async def on_regenerate(ls: LlmLanguageServer, *args: Any) -> dict[str, Any]:
        explain = code_actions.run_explain_command  # for a range: the explanation
        work = regenerate.run_regenerate_command(ls, list(args), explain)
        return await _command(ls, work, "regenerate")

    @server.command(CMD_DOCTOR)
    async def on_doctor(ls: LlmLanguageServer, *args: Any) -> dict[str, Any]:
        return await _command(ls, run_doctor_command(ls, list(args)), "doctor")

    @server.command(health_feature.CMD_HEALTH)
    async def on_health(ls: LlmLanguageServer, *args: Any) -> dict[str, Any]:
        return await _command(ls, health_feature.run_health_command(ls, list(args)), "health")

    @server.command(health_feature.CMD_SHOW_REPORT)
    async def on_show_report(ls: LlmLanguageServer, *args: Any) -> dict[str, Any]:
        work = health_feature.run_show_report(ls, list(args))
        return await _command(ls, work, "showReport")

    @server.feature(types.SHUTDOWN)
    async def on_shutdown(ls: LlmLanguageServer, params: None) -> None:
        ls.cancel_background()
        if ls.engine is not None:
            await ls.engine.aclose()
        await asyncio.to_thread(export.shutdown)  # flush what is still batched

    return server


async def _command(
    ls: LlmLanguageServer, work: Awaitable[dict[str, Any]], name: str
) -> dict[str, Any]:
    """A command's answer; ``$/cancelRequest`` cancels it; never a traceback."""
    with request_span(types.WORKSPACE_EXECUTE_COMMAND, {"llm_lsp.command": name}):
        return await guarded(
            ls, work, {"ok": False}, name=f"command {name}", failure=COMMAND_FAILED, track=True
        )


async def _watch_files(ls: LlmLanguageServer) -> bool:
    """Ask the client to report changes to workspace Python files; False if it cannot."""
    caps = ls.client_capabilities
    if not get_capability(caps, "workspace.did_change_watched_files.dynamic_registration", False):
        return False
    options = types.DidChangeWatchedFilesRegistrationOptions(
        watchers=[types.FileSystemWatcher(glob_pattern="**/*.py")]
    )
    registration = types.Registration(
        id="llm-lsp-watch-python",
        method=types.WORKSPACE_DID_CHANGE_WATCHED_FILES,
        register_options=options,
    )
    try:
        await asyncio.wait_for(
            ls.client_register_capability_async(types.RegistrationParams([registration])),
            timeout=5.0,
        )
    except Exception as exc:  # optional: without it, changed files are found by mtime
        logger.warning("registering for file changes failed: %s", exc)
        return False
    return True


async def _pull_configuration(ls: LlmLanguageServer) -> bool:
    """Ask the client for the `llmLsp` section; False if it cannot answer."""
    if not get_capability(ls.client_capabilities, "workspace.configuration", False):
        return False
    try:
        result = await asyncio.wait_for(
            ls.workspace_configuration_async(
                types.ConfigurationParams(items=[types.ConfigurationItem(section=SECTION)])
            ),
            timeout=5.0,
        )
    except Exception as exc:  # the client's answer is optional: log it, use defaults
        logger.warning("workspace/configuration failed: %s", exc)
        return False
    section = result[0] if result else None
    await ls.apply_settings(section if isinstance(section, dict) else None)
    return True
