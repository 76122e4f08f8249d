/**
 * Which command starts the server: `llmLsp.serverCommand`, else the Python extension's
 * interpreter, else `python3 -m lsp_server`. Pure logic (no `vscode` import) so it is unit-tested.
 */

export type LaunchSource = "setting" | "python-extension" | "default";

export interface ServerLaunch {
  readonly command: string;
  readonly args: readonly string[];
  readonly source: LaunchSource;
  /** The interpreter to probe with `-m lsp_server --version`, when the launch is Python's. */
  readonly python?: string;
}

export interface LaunchProblem {
  readonly problem: string;
}

/** The fallback when nothing is configured and no Python extension answers. */
export const DEFAULT_PYTHON = "python3";
/**
 * `-P` (Python 3.11+, which llm-lsp requires): the server's working directory is the workspace,
 * and a repository's own `lsp_server/` must never be what `-m lsp_server` imports.
 */
export const MODULE_ARGS: readonly string[] = ["-P", "-m", "lsp_server"];

/**
 * The launch for a `llmLsp.serverCommand` value (an array of strings: the whole command line;
 * a single string: the program, run with `serve`) and the Python extension's interpreter.
 */
export function resolveLaunch(
  setting: unknown,
  pythonInterpreter: string | undefined,
): ServerLaunch | LaunchProblem {
  if (typeof setting === "string" && setting.trim() !== "") {
    return { command: setting.trim(), args: ["serve"], source: "setting" };
  }
  if (Array.isArray(setting) && setting.length > 0) {
    if (!setting.every((part): part is string => typeof part === "string" && part !== "")) {
      return { problem: "llmLsp.serverCommand must be a list of non-empty strings" };
    }
    const [command, ...args] = setting;
    return { command, args, source: "setting" };
  }
  if (setting !== null && setting !== undefined && !(Array.isArray(setting) || setting === "")) {
    return { problem: "llmLsp.serverCommand must be a list of strings" };
  }
  const python = pythonInterpreter?.trim() ? pythonInterpreter.trim() : undefined;
  if (python !== undefined) {
    return { command: python, args: [...MODULE_ARGS, "serve"], source: "python-extension", python };
  }
  return {
    command: DEFAULT_PYTHON,
    args: [...MODULE_ARGS, "serve"],
    source: "default",
    python: DEFAULT_PYTHON,
  };
}

/** The command line as the user would type it, for messages (never holds a key). */
export function describeLaunch(launch: ServerLaunch): string {
  return [launch.command, ...launch.args]
    .map((part) => (/^[\w@%+=:,./-]+$/.test(part) ? part : JSON.stringify(part)))
    .join(" ");
}

/** What the user reads when the server cannot start, from the probe's or spawn's error. */
export function missingServerMessage(launch: ServerLaunch, detail: string): string {
  const where = describeLaunch(launch);
  if (/ENOENT|not found|No such file/i.test(detail)) {
    return `llm-lsp: the server command was not found (${where}). Install llm-lsp or set llmLsp.serverCommand.`;
  }
  if (/No module named/i.test(detail)) {
    return `llm-lsp: the server is not installed for ${launch.python ?? launch.command} (${where}). Install it with pip or set llmLsp.serverCommand.`;
  }
  const first = detail.trim().split(/\r?\n/).slice(-1)[0] ?? "";
  return `llm-lsp: the server did not start (${where})${first ? `: ${first}` : ""}`;
}
