/**
 * The llm-lsp VS Code extension: starts `llm-lsp serve` on vscode-languageclient, passes the
 * workspace's trust and the API key (SecretStorage → the child's environment), and maps the
 * commands onto the server's `workspace/executeCommand` names.
 */
import { execFile } from "node:child_process";
import * as vscode from "vscode";
import {
  ExecuteCommandRequest,
  LanguageClient,
  RevealOutputChannelOn,
  type LanguageClientOptions,
  type Middleware,
  type ServerOptions,
  type StaticFeature,
} from "vscode-languageclient/node";
import { HEALTH_NOTIFICATION, IDLE, statusFromHealth, type StatusView } from "./health";
import { EXPLANATION_READY, parseExplanationReady, shouldReshow, withCapability } from "./hover";
import {
  MODULE_ARGS,
  describeLaunch,
  missingServerMessage,
  resolveLaunch,
  type ServerLaunch,
} from "./launch";
import {
  CLIENT_KEYS,
  explicitValue,
  initializationOptions,
  needsRestart,
  serverEnvironment,
  serverSection,
} from "./options";
import {
  SERVER,
  actionArgs,
  isFixKind,
  resultUri,
  serverOffers,
  unsupportedMessage,
} from "./requests";

const SECTION = "llmLsp";
const SECRET_KEY = "llmLsp.apiKey";
const PROBE_TIMEOUT_MS = 60_000;

let controller: Controller | undefined;

export async function activate(context: vscode.ExtensionContext): Promise<void> {
  controller = new Controller(context);
  controller.registerCommands();
  await controller.start();
}

export async function deactivate(): Promise<void> {
  await controller?.stop();
  controller = undefined;
}

/** The trusted-only settings, from the manifest's `restrictedConfigurations` (generated). */
function restrictedKeys(context: vscode.ExtensionContext): ReadonlySet<string> {
  const manifest = context.extension.packageJSON as {
    capabilities?: { untrustedWorkspaces?: { restrictedConfigurations?: string[] } };
  };
  const listed = manifest.capabilities?.untrustedWorkspaces?.restrictedConfigurations ?? [];
  return new Set(listed.map((name) => name.replace(`${SECTION}.`, "")));
}

/** The names of the contributed `llmLsp` settings, without the prefix. */
function contributedKeys(context: vscode.ExtensionContext): string[] {
  const manifest = context.extension.packageJSON as {
    contributes?: { configuration?: { properties?: Record<string, unknown> } };
  };
  return Object.keys(manifest.contributes?.configuration?.properties ?? {})
    .map((name) => name.slice(SECTION.length + 1))
    .filter((key) => !CLIENT_KEYS.has(key.split(".")[0] ?? key));
}

/** The `llmLsp` section with only the values set explicitly (never VS Code's defaults). */
function explicitSection(keys: readonly string[], scopeUri: string | undefined): Record<string, unknown> {
  const scope = scopeUri ? vscode.Uri.parse(scopeUri) : undefined;
  const config = vscode.workspace.getConfiguration(SECTION, scope);
  const section: Record<string, unknown> = {};
  for (const key of keys) {
    const value = explicitValue(config.inspect(key));
    if (value !== undefined) {
      section[key] = value;
    }
  }
  return section;
}

/** The user-level (never the workspace's) values of the `llmLsp` settings. */
function userValues(keys: ReadonlySet<string>): Record<string, unknown> {
  const config = vscode.workspace.getConfiguration(SECTION);
  const values: Record<string, unknown> = {};
  for (const key of keys) {
    const inspected = config.inspect(key);
    if (inspected?.globalValue !== undefined) {
      values[key] = inspected.globalValue;
    }
  }
  return values;
}

interface PythonApi {
  environments?: {
    getActiveEnvironmentPath?(resource?: vscode.Uri): { path: string } | undefined;
    resolveEnvironment?(
      env: { path: string },
    ): Promise<{ executable?: { uri?: vscode.Uri } } | undefined>;
  };
  settings?: { getExecutionDetails?(resource?: vscode.Uri): { execCommand?: string[] } };
}

/** The Python extension's selected interpreter, when that extension is installed. */
async function pythonInterpreter(): Promise<string | undefined> {
  const extension = vscode.extensions.getExtension<PythonApi>("ms-python.python");
  if (extension === undefined) {
    return undefined;
  }
  try {
    const api = extension.isActive ? extension.exports : await extension.activate();
    const resource = vscode.workspace.workspaceFolders?.[0]?.uri;
    const active = api.environments?.getActiveEnvironmentPath?.(resource);
    if (active !== undefined) {
      const resolved = await api.environments?.resolveEnvironment?.(active);
      return resolved?.executable?.uri?.fsPath ?? active.path;
    }
    return api.settings?.getExecutionDetails?.(resource)?.execCommand?.[0];
  } catch {
    return undefined;
  }
}

/** `python -m lsp_server --version`: "" when the server is installed, else the reason. */
function probe(python: string, env: NodeJS.ProcessEnv): Promise<string> {
  return new Promise((resolve) => {
    execFile(
      python,
      [...MODULE_ARGS, "--version"],
      { timeout: PROBE_TIMEOUT_MS, env },
      (error, _stdout, stderr) => {
        resolve(error ? `${error.message}\n${stderr}` : "");
      },
    );
  });
}

/** Advertises `capabilities.experimental.llmLspExplanationReady`: the server may then answer a
 * hover before the model and send `llmLsp/explanationReady` when the explanation is ready. */
const EXPLANATION_READY_FEATURE: StaticFeature = {
  fillClientCapabilities: (capabilities) => {
    capabilities.experimental = withCapability(capabilities.experimental);
  },
  initialize: () => undefined,
  getState: () => ({ kind: "static" }),
  clear: () => undefined,
};

/** Ask VS Code for the hover at the cursor again. `editor.action.showHover` only focuses a
 * hover that is visible (and with `focus: "noAutoFocus"` keeps its content): hide it first. */
async function showHoverAgain(): Promise<void> {
  try {
    await vscode.commands.executeCommand("editor.action.hideHover");
  } catch {
    // a VS Code without the command: the hover is focused instead, as the user's own K would
  }
  await vscode.commands.executeCommand("editor.action.showHover", { focus: "noAutoFocus" });
}

/** `llmLsp/explanationReady`: when the cursor is still on the symbol in the same document
 * version, VS Code asks for the hover again (the server answers from its cache); see hover.ts. */
function reshowHover(params: unknown): void {
  const ready = parseExplanationReady(params);
  const editor = vscode.window.activeTextEditor;
  if (ready === undefined || editor === undefined) {
    return;
  }
  const state = {
    uri: editor.document.uri.toString(),
    version: editor.document.version,
    cursors: editor.selections.map((s) => ({ line: s.active.line, character: s.active.character })),
  };
  if (shouldReshow(ready, state)) {
    void showHoverAgain();
  }
}

class Controller {
  private client: LanguageClient | undefined;
  private readonly status: vscode.StatusBarItem;
  private readonly output: vscode.LogOutputChannel;
  private readonly restricted: ReadonlySet<string>;
  private conversation: { id: string; question: string } | undefined;
  private restarting: Promise<void> = Promise.resolve();
  private readonly context: vscode.ExtensionContext;

  constructor(context: vscode.ExtensionContext) {
    this.context = context;
    this.restricted = restrictedKeys(context);
    this.output = vscode.window.createOutputChannel("llm-lsp", { log: true });
    this.status = vscode.window.createStatusBarItem("llmLsp.status", vscode.StatusBarAlignment.Right, 100);
    this.status.name = "llm-lsp";
    this.status.command = { title: "llm-lsp", command: "workbench.action.quickOpen", arguments: [">llm-lsp: "] };
    this.show(IDLE);
    this.status.show();
    context.subscriptions.push(
      this.output,
      this.status,
      vscode.workspace.onDidGrantWorkspaceTrust(() => this.restart("the workspace is now trusted")),
      vscode.workspace.onDidChangeConfiguration((event) => {
        const key = [...this.restricted, "serverCommand"].find(
          (name) => needsRestart(name, this.restricted) && event.affectsConfiguration(`${SECTION}.${name}`),
        );
        if (key !== undefined) {
          void this.restart(`llmLsp.${key} changed`);
        }
      }),
      context.secrets.onDidChange((event) => {
        if (event.key === SECRET_KEY) {
          void this.restart("the API key changed");
        }
      }),
    );
  }

  private show(view: StatusView): void {
    this.status.text = view.text;
    this.status.tooltip = view.tooltip;
    this.status.backgroundColor =
      view.severity === "error"
        ? new vscode.ThemeColor("statusBarItem.errorBackground")
        : view.severity === "warning"
          ? new vscode.ThemeColor("statusBarItem.warningBackground")
          : undefined;
  }

  registerCommands(): void {
    const register = (id: string, run: () => Promise<void>): void => {
      this.context.subscriptions.push(
        vscode.commands.registerCommand(id, async () => {
          try {
            await run();
          } catch (error) {
            this.output.error(`${id} failed: ${String(error)}`);
            void vscode.window.showErrorMessage(`llm-lsp: ${id.replace("llm-lsp.", "")} failed; see the llm-lsp output.`);
          }
        }),
      );
    };
    register("llm-lsp.explain", () => this.rangeCommand(SERVER.explain, "Explain"));
    register("llm-lsp.fix", () => this.fix());
    register("llm-lsp.regenerate", () => this.rangeCommand(SERVER.regenerate, "Regenerate"));
    register("llm-lsp.ask", () => this.ask());
    register("llm-lsp.showReport", () => this.showReport());
    register("llm-lsp.doctor", () => this.doctor());
    register("llm-lsp.restart", () => this.restart("asked by the user"));
    register("llm-lsp.setApiKey", () => this.setApiKey());
    register("llm-lsp.clearApiKey", async () => {
      await this.context.secrets.delete(SECRET_KEY);
      void vscode.window.showInformationMessage("llm-lsp: API key removed.");
    });
  }

  async start(): Promise<void> {
    const setting = vscode.workspace.getConfiguration(SECTION).inspect("serverCommand")?.globalValue;
    const launch = resolveLaunch(setting, setting === undefined ? await pythonInterpreter() : undefined);
    if ("problem" in launch) {
      this.failed(launch.problem);
      return;
    }
    const key = await this.context.secrets.get(SECRET_KEY);
    const env = { ...process.env, ...serverEnvironment(key) };
    this.output.info(`starting the server: ${describeLaunch(launch)} (${launch.source})`);
    if (launch.python !== undefined) {
      const reason = await probe(launch.python, env);
      if (reason !== "") {
        this.failed(missingServerMessage(launch, reason));
        return;
      }
    }
    const client = this.createClient(launch, env);
    this.client = client;
    try {
      await client.start();
      this.show(IDLE);
    } catch (error) {
      this.client = undefined;
      this.failed(missingServerMessage(launch, String(error)));
    }
  }

  async stop(): Promise<void> {
    const client = this.client;
    this.client = undefined;
    if (client !== undefined) {
      try {
        await client.stop();
      } catch (error) {
        this.output.warn(`stopping the server: ${String(error)}`);
      }
    }
  }

  restart(reason: string): Promise<void> {
    this.restarting = this.restarting.then(async () => {
      this.output.info(`restarting the server: ${reason}`);
      await this.stop();
      await this.start();
    });
    return this.restarting;
  }

  private failed(message: string): void {
    this.output.error(message);
    this.show({ text: "$(error) llm-lsp", tooltip: message, severity: "error" });
    const install = "How to install";
    const settings = "Open Settings";
    void vscode.window.showErrorMessage(message, install, settings).then(async (choice) => {
      if (choice === install) {
        const readme = vscode.Uri.joinPath(this.context.extensionUri, "README.md");
        await vscode.commands.executeCommand("markdown.showPreview", readme);
      } else if (choice === settings) {
        await vscode.commands.executeCommand("workbench.action.openSettings", "llmLsp.serverCommand");
      }
    });
  }

  /** `env` is the child's whole environment: for an executable, vscode-languageclient passes
   * `options.env` to `spawn` as is (it does not merge it with the extension host's). */
  private createClient(launch: ServerLaunch, env: NodeJS.ProcessEnv): LanguageClient {
    const trusted = vscode.workspace.isTrusted;
    const restricted = this.restricted;
    const keys = contributedKeys(this.context);
    const serverOptions: ServerOptions = {
      command: launch.command,
      args: [...launch.args],
      options: { env },
    };
    const middleware: Middleware = {
      workspace: {
        configuration: async (params, token, next) => {
          const result = await next(params, token);
          if (!Array.isArray(result)) {
            return result;
          }
          return result.map((value: unknown, i: number) => {
            const item = params.items[i];
            return item?.section === SECTION
              ? serverSection(explicitSection(keys, item.scopeUri), restricted)
              : value;
          });
        },
      },
      window: {
        showDocument: async (params, token, next) => {
          if (params.external) {
            return next(params, token);
          }
          const document = await vscode.workspace.openTextDocument(vscode.Uri.parse(params.uri));
          await vscode.window.showTextDocument(document, {
            viewColumn: vscode.ViewColumn.Beside,
            preserveFocus: params.takeFocus === false,
            preview: false,
          });
          return { success: true };
        },
      },
      provideCodeActions: async (document, range, context, token, next) => {
        const actions = await next(document, range, context, token);
        if (vscode.workspace.isTrusted || !actions) {
          return actions;
        }
        return actions.filter((action) => !("kind" in action && isFixKind(action.kind?.value)));
      },
    };
    const clientOptions: LanguageClientOptions = {
      documentSelector: [
        { scheme: "file", language: "python" },
        { scheme: "untitled", language: "python" },
      ],
      initializationOptions: initializationOptions(trusted, userValues(restricted), restricted),
      synchronize: { configurationSection: SECTION },
      outputChannel: this.output,
      revealOutputChannelOn: RevealOutputChannelOn.Never,
      markdown: { isTrusted: false, supportHtml: false },
      middleware,
    };
    const client = new LanguageClient("llmLsp", "llm-lsp", serverOptions, clientOptions);
    client.onNotification(HEALTH_NOTIFICATION, (params: unknown) => this.show(statusFromHealth(params)));
    client.registerFeature(EXPLANATION_READY_FEATURE);
    client.onNotification(EXPLANATION_READY, (params: unknown) => reshowHover(params));
    return client;
  }

  /** Sends `command` if the running server offers it; undefined (after a message) if not. */
  private async execute(command: string, title: string, args: unknown[]): Promise<unknown> {
    const client = this.client;
    if (client === undefined || !client.isRunning()) {
      void vscode.window.showWarningMessage("llm-lsp: the server is not running; run \"llm-lsp: Restart server\".");
      return undefined;
    }
    const offered = client.initializeResult?.capabilities.executeCommandProvider?.commands;
    if (!serverOffers(offered, command)) {
      void vscode.window.showInformationMessage(unsupportedMessage(title));
      return undefined;
    }
    return client.sendRequest(ExecuteCommandRequest.type, { command, arguments: args });
  }

  private pythonEditor(): vscode.TextEditor | undefined {
    const editor = vscode.window.activeTextEditor;
    if (editor === undefined || editor.document.languageId !== "python") {
      void vscode.window.showInformationMessage("llm-lsp: open a Python file first.");
      return undefined;
    }
    return editor;
  }

  private async rangeCommand(command: string, title: string): Promise<void> {
    const editor = this.pythonEditor();
    if (editor === undefined) {
      return;
    }
    const { start, end, active } = editor.selection;
    const args = {
      ...actionArgs(editor.document.uri.toString(), {
        startLine: start.line,
        endLine: end.line,
        endCharacter: end.character,
      }),
      position: { line: active.line, character: active.character },
    };
    await this.execute(command, title, [args]);
  }

  private async fix(): Promise<void> {
    if (!vscode.workspace.isTrusted) {
      void vscode.window.showWarningMessage("llm-lsp: Fix is off in Restricted Mode; trust the workspace to use it.");
      return;
    }
    const editor = this.pythonEditor();
    if (editor === undefined) {
      return;
    }
    const { start, end } = editor.selection;
    const diagnostic = vscode.languages
      .getDiagnostics(editor.document.uri)
      .find((d) => d.range.intersection(editor.selection) !== undefined);
    const args = actionArgs(
      editor.document.uri.toString(),
      { startLine: start.line, endLine: end.line, endCharacter: end.character },
      diagnostic ? diagnostic.message : null,
    );
    await this.execute(SERVER.fix, "Fix", [args]);
  }

  private async ask(): Promise<void> {
    let conversation: string | null = null;
    if (this.conversation !== undefined) {
      const followUp = `Follow up on "${this.conversation.question}"`;
      const choice = await vscode.window.showQuickPick(["New question", followUp], {
        title: "llm-lsp: Ask about the workspace",
      });
      if (choice === undefined) {
        return;
      }
      conversation = choice === followUp ? this.conversation.id : null;
    }
    const question = await vscode.window.showInputBox({
      title: "llm-lsp: Ask about the workspace",
      prompt: "A question about this workspace, e.g. where do we retry failed requests?",
      ignoreFocusOut: true,
    });
    if (!question?.trim()) {
      return;
    }
    const result = await this.execute(SERVER.ask, "Ask about the workspace", [{ question, conversation }]);
    const id = (result as { conversation?: unknown } | undefined)?.conversation;
    if (typeof id === "string") {
      this.conversation = { id, question };
    }
  }

  private async showReport(): Promise<void> {
    const result = await this.execute(SERVER.showReport, "Show cost report", [{}]);
    const uri = resultUri(result);
    if (uri !== undefined) {
      const parsed = vscode.Uri.parse(uri);
      if (parsed.path.endsWith(".html")) {
        await vscode.env.openExternal(parsed);
      } else {
        await vscode.window.showTextDocument(parsed, { viewColumn: vscode.ViewColumn.Beside });
      }
    }
  }

  private async doctor(): Promise<void> {
    const result = await this.execute(SERVER.doctor, "Doctor", []);
    const report = (result as { report?: unknown } | undefined)?.report;
    if (typeof report === "string") {
      this.output.info(report);
      this.output.show(true);
    }
  }

  private async setApiKey(): Promise<void> {
    const key = await vscode.window.showInputBox({
      title: "llm-lsp: Set API Key",
      prompt: "The primary provider's API key, kept in VS Code's secret storage",
      password: true,
      ignoreFocusOut: true,
    });
    if (key === undefined || key.trim() === "") {
      return;
    }
    await this.context.secrets.store(SECRET_KEY, key.trim());
    void vscode.window.showInformationMessage("llm-lsp: API key saved; the server restarts with it.");
  }
}
