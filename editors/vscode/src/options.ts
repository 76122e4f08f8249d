/**
 * What the client tells the server: `initializationOptions` (the trust flag and the user's own
 * values of the trusted-only settings), the child's environment (the API key from SecretStorage,
 * never argv) and the `workspace/configuration` answer with the trusted-only keys removed.
 * Pure logic (no `vscode` import) so it is unit-tested.
 */

/** The server's trust flag in `initializationOptions` (README "Trust model"). */
export const TRUST_FLAG = "trustedWorkspace";
/** Where the API key reaches the server: the child's environment. */
export const API_KEY_ENV = "OPENAI_API_KEY";
/** Settings of the `llmLsp` section that belong to the client, not the server. */
export const CLIENT_KEYS: ReadonlySet<string> = new Set(["serverCommand", "trace"]);
/** Settings that turn on running the workspace's code; off in an untrusted workspace. */
export const RUN_SETTINGS: readonly string[] = ["runTests"];

/**
 * `initializationOptions`: the trust flag, then the user-level values of the trusted-only
 * settings (the user's own configuration, which the server honours even in an untrusted
 * workspace); in an untrusted workspace the settings that run code are forced off.
 */
export function initializationOptions(
  trusted: boolean,
  userValues: Readonly<Record<string, unknown>>,
  restricted: ReadonlySet<string>,
): Record<string, unknown> {
  const options: Record<string, unknown> = { [TRUST_FLAG]: trusted };
  for (const [key, value] of Object.entries(userValues)) {
    if (restricted.has(key) && !CLIENT_KEYS.has(key) && value !== undefined) {
      options[key] = value;
    }
  }
  if (!trusted) {
    for (const key of RUN_SETTINGS) {
      options[key] = false;
    }
  }
  return options;
}

/** The server's environment additions: the key from SecretStorage when there is one. */
export function serverEnvironment(apiKey: string | undefined): Record<string, string> {
  return apiKey ? { [API_KEY_ENV]: apiKey } : {};
}

/**
 * The `llmLsp` section as answered to `workspace/configuration`: without the client's own keys
 * and the trusted-only ones (those travel in `initializationOptions`, from user settings only).
 */
export function serverSection(section: unknown, restricted: ReadonlySet<string>): unknown {
  if (section === null || typeof section !== "object" || Array.isArray(section)) {
    return section;
  }
  const kept: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(section as Record<string, unknown>)) {
    if (!CLIENT_KEYS.has(key) && !restricted.has(key)) {
      kept[key] = value;
    }
  }
  return kept;
}

/** Whether a changed setting needs a restart (it travels in `initializationOptions` or argv). */
export function needsRestart(key: string, restricted: ReadonlySet<string>): boolean {
  return key === "serverCommand" || restricted.has(key);
}

/** What `WorkspaceConfiguration.inspect()` tells about one key (the parts we use). */
export interface Inspected {
  readonly globalValue?: unknown;
  readonly workspaceValue?: unknown;
  readonly workspaceFolderValue?: unknown;
}

/**
 * The value the user or workspace set explicitly, or undefined: VS Code's merged answer also
 * holds every contributed default, which would hide the server's environment layer.
 */
export function explicitValue(inspected: Inspected | undefined): unknown {
  return inspected?.workspaceFolderValue ?? inspected?.workspaceValue ?? inspected?.globalValue;
}
