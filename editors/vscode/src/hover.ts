/**
 * The hover that never waits for the model (issue 16), the VS Code side. Pure logic (no
 * `vscode` import) so it is unit-tested; `extension.ts` wires it to the client.
 *
 * The extension advertises `capabilities.experimental.llmLspExplanationReady`. A hover then
 * answers within the server's `hoverWait` with the static facts and a note that the
 * explanation is on its way, and the server sends `llmLsp/explanationReady` when the model
 * has answered (its answer is then in the server's cache). VS Code has no API to change a
 * hover that is showing, so the extension asks again: when the notification is about the
 * active editor's document, at the version it has, and the cursor is still on the symbol
 * (within `range`, or at `position`), it hides the hover and runs `editor.action.showHover`,
 * which asks every hover provider again at the cursor; ours answers from the cache at once.
 * (On a visible hover, `showHover` alone only focuses it, content unchanged: checked in
 * code-server 4.139 = VS Code 1.139.)
 *
 * A hover made with the mouse while the cursor is elsewhere is not re-shown:
 * `editor.action.showHover` shows the hover at the cursor, which would be another symbol's.
 * It shows the explanation the next time the mouse rests on the symbol.
 */

export const EXPLANATION_READY = "llmLsp/explanationReady";
export const CAPABILITY = "llmLspExplanationReady";

/** An LSP position (UTF-16 code units, as VS Code's `Position`). */
export interface Pos {
  readonly line: number;
  readonly character: number;
}

export interface Span {
  readonly start: Pos;
  readonly end: Pos;
}

/** The notification's params (see the protocol). */
export interface ExplanationReady {
  readonly uri: string;
  readonly version: number | null;
  readonly position: Pos;
  readonly range: Span | null;
  readonly markdown: string;
}

/** What the extension knows about the editor when the notification arrives. */
export interface EditorState {
  readonly uri: string;
  readonly version: number;
  /** The active position of each selection (the cursors). */
  readonly cursors: readonly Pos[];
}

function isPos(value: unknown): value is Pos {
  if (value === null || typeof value !== "object") {
    return false;
  }
  const pos = value as Record<string, unknown>;
  return typeof pos.line === "number" && typeof pos.character === "number";
}

function isSpan(value: unknown): value is Span {
  if (value === null || typeof value !== "object") {
    return false;
  }
  const span = value as Record<string, unknown>;
  return isPos(span.start) && isPos(span.end);
}

/** The params of `llmLsp/explanationReady`, or undefined when they are not well formed. */
export function parseExplanationReady(params: unknown): ExplanationReady | undefined {
  if (params === null || typeof params !== "object") {
    return undefined;
  }
  const p = params as Record<string, unknown>;
  const doc = p.textDocument as Record<string, unknown> | null | undefined;
  const contents = p.contents as Record<string, unknown> | null | undefined;
  if (doc === null || typeof doc !== "object" || typeof doc.uri !== "string" || !isPos(p.position)) {
    return undefined;
  }
  const version = typeof doc.version === "number" ? doc.version : null;
  const range = isSpan(p.range) ? p.range : null;
  const markdown = contents !== null && typeof contents === "object" && typeof contents.value === "string"
    ? contents.value
    : "";
  return { uri: doc.uri, version, position: p.position, range, markdown };
}

function before(a: Pos, b: Pos): boolean {
  return a.line < b.line || (a.line === b.line && a.character <= b.character);
}

/** Whether `pos` is on the symbol: within `range` (ends included), else exactly at `position`. */
export function onSymbol(ready: ExplanationReady, pos: Pos): boolean {
  if (ready.range !== null) {
    return before(ready.range.start, pos) && before(pos, ready.range.end);
  }
  return pos.line === ready.position.line && pos.character === ready.position.character;
}

/** Whether to run `editor.action.showHover` for `ready` in the active editor `state`. */
export function shouldReshow(ready: ExplanationReady, state: EditorState | undefined): boolean {
  if (state === undefined || state.uri !== ready.uri) {
    return false;
  }
  if (ready.version !== null && ready.version !== state.version) {
    return false; // edited since: the answer is stale (the server cancels those)
  }
  return state.cursors.some((cursor) => onSymbol(ready, cursor));
}

/** `capabilities.experimental` with ours added (others kept), for `fillClientCapabilities`. */
export function withCapability(experimental: unknown): Record<string, unknown> {
  const base = experimental !== null && typeof experimental === "object" ? experimental : {};
  return { ...(base as Record<string, unknown>), [CAPABILITY]: true };
}
