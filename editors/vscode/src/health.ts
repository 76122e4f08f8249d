/**
 * The status-bar item's text from the server's `llmLsp/health` notification (provider state
 * and today's spend). Tolerant of the payload's shape: an unknown shape shows "llm-lsp".
 * Pure logic (no `vscode` import) so it is unit-tested.
 */

export const HEALTH_NOTIFICATION = "llmLsp/health";

export type Severity = "ok" | "warning" | "error";

export interface StatusView {
  readonly text: string;
  readonly tooltip: string;
  readonly severity: Severity;
}

export const IDLE: StatusView = { text: "llm-lsp", tooltip: "llm-lsp", severity: "ok" };

const BAD = new Set(["down", "error", "open", "failed", "offline", "unavailable"]);
const WEAK = new Set(["degraded", "half-open", "half_open", "fallback", "limited", "slow", "warning"]);

function record(value: unknown): Record<string, unknown> | undefined {
  return value !== null && typeof value === "object" && !Array.isArray(value)
    ? (value as Record<string, unknown>)
    : undefined;
}

function firstNumber(source: Record<string, unknown>, keys: readonly string[]): number | undefined {
  for (const key of keys) {
    const value = source[key];
    if (typeof value === "number" && Number.isFinite(value)) {
      return value;
    }
  }
  return undefined;
}

function firstString(source: Record<string, unknown>, keys: readonly string[]): string | undefined {
  for (const key of keys) {
    const value = source[key];
    if (typeof value === "string" && value !== "") {
      return value;
    }
  }
  return undefined;
}

const SPEND_KEYS = ["todayUsd", "spentTodayUsd", "costTodayUsd", "spendTodayUsd", "today_usd", "today"];

/** Today's spend in USD, wherever the payload keeps it. */
export function todaySpend(payload: Record<string, unknown>): number | undefined {
  const direct = firstNumber(payload, SPEND_KEYS);
  if (direct !== undefined) {
    return direct;
  }
  for (const key of ["spend", "cost", "budget", "usage"]) {
    const nested = record(payload[key]);
    const value = nested ? firstNumber(nested, [...SPEND_KEYS, "usd", "spentUsd"]) : undefined;
    if (value !== undefined) {
      return value;
    }
  }
  return undefined;
}

/** The provider state: the payload's own word, or the worst of its providers'. */
export function providerState(payload: Record<string, unknown>): string | undefined {
  const own = firstString(payload, ["state", "status", "provider_state", "providerState"]);
  if (own !== undefined) {
    return own;
  }
  const providers = payload.providers;
  const states: string[] = [];
  if (Array.isArray(providers)) {
    for (const item of providers) {
      const entry = record(item);
      const state = entry ? firstString(entry, ["state", "status"]) : undefined;
      if (state) states.push(state);
    }
  } else {
    const entries = record(providers);
    for (const value of Object.values(entries ?? {})) {
      const entry = record(value);
      const state = typeof value === "string" ? value : entry ? firstString(entry, ["state", "status"]) : undefined;
      if (state) states.push(state);
    }
  }
  return states.find((s) => BAD.has(s.toLowerCase())) ?? states.find((s) => WEAK.has(s.toLowerCase())) ?? states[0];
}

export function formatUsd(value: number): string {
  return value < 0.01 && value > 0 ? `$${value.toFixed(4)}` : `$${value.toFixed(2)}`;
}

/** The status-bar view for one `llmLsp/health` payload. */
export function statusFromHealth(params: unknown): StatusView {
  const payload = record(params);
  if (payload === undefined) {
    return IDLE;
  }
  const state = providerState(payload);
  const spend = todaySpend(payload);
  if (state === undefined && spend === undefined) {
    return IDLE;
  }
  const parts = ["llm-lsp"];
  if (state !== undefined) parts.push(state);
  if (spend !== undefined) parts.push(`${formatUsd(spend)} today`);
  const lowered = state?.toLowerCase() ?? "";
  const severity: Severity = BAD.has(lowered) ? "error" : WEAK.has(lowered) ? "warning" : "ok";
  const icon = severity === "error" ? "$(error)" : severity === "warning" ? "$(warning)" : "$(sparkle)";
  const tooltip = [
    `llm-lsp provider: ${state ?? "unknown"}`,
    spend !== undefined ? `spent today: ${formatUsd(spend)}` : "spent today: unknown",
    typeof payload.message === "string" ? payload.message : "",
  ]
    .filter((line) => line !== "")
    .join("\n");
  return { text: `${icon} ${parts.join(" · ")}`, tooltip, severity };
}
