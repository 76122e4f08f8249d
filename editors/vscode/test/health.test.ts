import assert from "node:assert/strict";
import { test } from "node:test";
import { IDLE, statusFromHealth } from "../src/health.ts";

test("no payload or an unknown shape shows llm-lsp", () => {
  assert.deepEqual(statusFromHealth(undefined), IDLE);
  assert.deepEqual(statusFromHealth({ unrelated: 1 }), IDLE);
  assert.deepEqual(statusFromHealth([1, 2]), IDLE);
});

test("state and today's spend", () => {
  const view = statusFromHealth({ state: "ok", todayUsd: 0.4213 });
  assert.equal(view.text, "$(sparkle) llm-lsp · ok · $0.42 today");
  assert.equal(view.severity, "ok");
});

test("nested spend and the worst provider", () => {
  const view = statusFromHealth({
    providers: [{ name: "primary", state: "open" }, { name: "local", state: "closed" }],
    spend: { todayUsd: 0.002 },
  });
  assert.equal(view.text, "$(error) llm-lsp · open · $0.0020 today");
  assert.equal(view.severity, "error");
});

test("a degraded state warns", () => {
  assert.equal(statusFromHealth({ status: "degraded" }).severity, "warning");
});
