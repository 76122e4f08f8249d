/**
 * The extension's commands and the server's `workspace/executeCommand` names they map to, with
 * the argument shapes the server expects. Pure logic (no `vscode` import) so it is unit-tested.
 */

/** Server command names (see `lsp_server/server.py` and `features/`). */
export const SERVER = {
  explain: "llmLsp.explain",
  fix: "llmLsp.fix",
  ask: "llmLsp.ask",
  doctor: "llmLsp.doctor",
  regenerate: "llmLsp.regenerate",
  showReport: "llmLsp.showReport",
} as const;

export interface Span {
  /** 0-based line of the selection's start (VS Code's `Position.line`). */
  readonly startLine: number;
  readonly endLine: number;
  readonly endCharacter: number;
}

/** The server's action arguments: 1-based inclusive lines; a selection ending at column 0 stops above. */
export function actionArgs(
  uri: string,
  span: Span,
  diagnostic: string | null = null,
): { uri: string; start: number; end: number; diagnostic: string | null } {
  const start = span.startLine + 1;
  let end = span.endLine + 1;
  if (span.endLine > span.startLine && span.endCharacter === 0) {
    end -= 1;
  }
  return { uri, start, end: Math.max(start, end), diagnostic };
}

/** Whether the running server offers `command` (its `executeCommandProvider.commands`). */
export function serverOffers(commands: readonly string[] | undefined, command: string): boolean {
  return commands?.includes(command) ?? false;
}

/** The message for a command this server version does not have yet. */
export function unsupportedMessage(title: string): string {
  return `llm-lsp: this server version has no "${title}" yet; update llm-lsp (pip install -U llm-lsp).`;
}

/** A result's `uri` to open, when the server answered one. */
export function resultUri(result: unknown): string | undefined {
  if (result !== null && typeof result === "object" && "uri" in result) {
    const uri = (result).uri;
    return typeof uri === "string" ? uri : undefined;
  }
  return undefined;
}

/** Code-action kinds that are off in an untrusted workspace (Fix). */
export const FIX_KIND = "quickfix.llm";

export function isFixKind(kind: string | undefined): boolean {
  return kind !== undefined && (kind === FIX_KIND || kind.startsWith(`${FIX_KIND}.`));
}
