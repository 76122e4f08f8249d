import assert from "node:assert/strict";
import { test } from "node:test";
import {
  CAPABILITY,
  parseExplanationReady,
  shouldReshow,
  withCapability,
  type ExplanationReady,
} from "../src/hover.ts";

const URI = "file:///project/shop/basket.py";

function ready(overrides: Record<string, unknown> = {}): ExplanationReady {
  const parsed = parseExplanationReady({
    textDocument: { uri: URI, version: 3 },
    position: { line: 18, character: 17 },
    range: { start: { line: 18, character: 15 }, end: { line: 18, character: 29 } },
    contents: { kind: "markdown", value: "**apply_discount** … the explanation" },
    ...overrides,
  });
  assert.ok(parsed !== undefined);
  return parsed;
}

function editor(line: number, character: number, version = 3, uri = URI) {
  return { uri, version, cursors: [{ line, character }] };
}

test("the notification's params are read as the protocol fixes them", () => {
  const r = ready();
  assert.equal(r.uri, URI);
  assert.equal(r.version, 3);
  assert.deepEqual(r.range?.end, { line: 18, character: 29 });
  assert.equal(r.markdown, "**apply_discount** … the explanation");
  // version and range may be null
  const loose = ready({ textDocument: { uri: URI, version: null }, range: null });
  assert.equal(loose.version, null);
  assert.equal(loose.range, null);
  // not the notification at all
  assert.equal(parseExplanationReady(null), undefined);
  assert.equal(parseExplanationReady({ textDocument: { uri: URI } }), undefined);
  assert.equal(parseExplanationReady({ position: { line: 1, character: 1 } }), undefined);
});

test("the hover is shown again while the cursor is on the symbol of that version", () => {
  assert.ok(shouldReshow(ready(), editor(18, 17)));
  assert.ok(shouldReshow(ready(), editor(18, 15)), "range start");
  assert.ok(shouldReshow(ready(), editor(18, 29)), "range end (the cursor after the word)");
  assert.ok(shouldReshow(ready({ textDocument: { uri: URI, version: null } }), editor(18, 17, 9)));
});

test("not when the cursor moved on, the document changed or another editor is active", () => {
  assert.ok(!shouldReshow(ready(), editor(18, 30)));
  assert.ok(!shouldReshow(ready(), editor(17, 17)));
  assert.ok(!shouldReshow(ready(), editor(18, 17, 4)), "another version");
  assert.ok(!shouldReshow(ready(), editor(18, 17, 3, "file:///project/shop/pricing.py")));
  assert.ok(!shouldReshow(ready(), undefined), "no active editor");
});

test("without a range, only the exact position counts", () => {
  const r = ready({ range: null });
  assert.ok(shouldReshow(r, editor(18, 17)));
  assert.ok(!shouldReshow(r, editor(18, 16)));
});

test("any of several cursors on the symbol counts", () => {
  const state = { uri: URI, version: 3, cursors: [{ line: 2, character: 0 }, { line: 18, character: 20 }] };
  assert.ok(shouldReshow(ready(), state));
});

test("the capability is added to the experimental ones, others kept", () => {
  assert.deepEqual(withCapability(undefined), { [CAPABILITY]: true });
  assert.deepEqual(withCapability({ other: 1 }), { other: 1, llmLspExplanationReady: true });
});
