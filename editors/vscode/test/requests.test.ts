import assert from "node:assert/strict";
import { test } from "node:test";
import { actionArgs, isFixKind, resultUri, serverOffers, unsupportedMessage } from "../src/requests.ts";

test("a selection becomes 1-based inclusive lines", () => {
  assert.deepEqual(actionArgs("file:///a.py", { startLine: 4, endLine: 6, endCharacter: 3 }), {
    uri: "file:///a.py",
    start: 5,
    end: 7,
    diagnostic: null,
  });
});

test("a selection ending at column 0 stops on the line above", () => {
  assert.equal(actionArgs("u", { startLine: 4, endLine: 6, endCharacter: 0 }).end, 6);
  assert.equal(actionArgs("u", { startLine: 4, endLine: 4, endCharacter: 0 }).end, 5);
});

test("commands the server lacks are told apart", () => {
  assert.ok(serverOffers(["llmLsp.explain"], "llmLsp.explain"));
  assert.ok(!serverOffers(["llmLsp.explain"], "llmLsp.regenerate"));
  assert.ok(!serverOffers(undefined, "llmLsp.explain"));
  assert.match(unsupportedMessage("Regenerate"), /no "Regenerate" yet/);
});

test("result uris and fix kinds", () => {
  assert.equal(resultUri({ ok: true, uri: "file:///x.md" }), "file:///x.md");
  assert.equal(resultUri({ ok: false }), undefined);
  assert.equal(resultUri(null), undefined);
  assert.ok(isFixKind("quickfix.llm"));
  assert.ok(!isFixKind("refactor.llm.explain"));
  assert.ok(!isFixKind(undefined));
});
