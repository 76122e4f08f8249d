import assert from "node:assert/strict";
import { test } from "node:test";
import { describeLaunch, missingServerMessage, resolveLaunch } from "../src/launch.ts";

test("the setting's command line wins over any interpreter", () => {
  assert.deepEqual(resolveLaunch(["/opt/llm/bin/llm-lsp", "serve"], "/usr/bin/python3.12"), {
    command: "/opt/llm/bin/llm-lsp",
    args: ["serve"],
    source: "setting",
  });
});

test("a single string is the program, run with serve", () => {
  assert.deepEqual(resolveLaunch("llm-lsp", undefined), { command: "llm-lsp", args: ["serve"], source: "setting" });
});

test("the Python extension's interpreter runs the module", () => {
  assert.deepEqual(resolveLaunch(undefined, "/w/.venv/bin/python"), {
    command: "/w/.venv/bin/python",
    args: ["-P", "-m", "lsp_server", "serve"],
    source: "python-extension",
    python: "/w/.venv/bin/python",
  });
});

test("without either, python3 -m lsp_server", () => {
  const launch = resolveLaunch([], undefined);
  assert.ok(!("problem" in launch));
  assert.equal(describeLaunch(launch), "python3 -P -m lsp_server serve");
  assert.equal(launch.source, "default");
});

test("a malformed setting is a problem, not a launch", () => {
  assert.ok("problem" in resolveLaunch(["llm-lsp", 3], undefined));
  assert.ok("problem" in resolveLaunch({ cmd: "x" }, undefined));
});

test("the missing-server message names what to do", () => {
  const launch = resolveLaunch(undefined, "/w/py");
  assert.ok(!("problem" in launch));
  assert.match(missingServerMessage(launch, "/w/py: No module named lsp_server"), /not installed for \/w\/py.*pip/);
  assert.match(missingServerMessage(launch, "spawn /w/py ENOENT"), /not found \(\/w\/py -P -m lsp_server serve\)/);
  assert.equal(describeLaunch({ command: "/a b/py", args: ["serve"], source: "setting" }), '"/a b/py" serve');
});
