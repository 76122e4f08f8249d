import assert from "node:assert/strict";
import { test } from "node:test";
import { explicitValue, initializationOptions, needsRestart, serverEnvironment, serverSection } from "../src/options.ts";

const restricted = new Set(["apiKey", "baseUrl", "runTests", "cacheDir", "serverCommand"]);

test("a trusted workspace: the flag and the user's own trusted-only values", () => {
  const options = initializationOptions(true, { baseUrl: "http://127.0.0.1:9/v1", runTests: true, model: "m" }, restricted);
  assert.deepEqual(options, { trustedWorkspace: true, baseUrl: "http://127.0.0.1:9/v1", runTests: true });
});

test("an untrusted workspace: the flag is false and test runs are off whatever the user set", () => {
  const options = initializationOptions(false, { runTests: true, serverCommand: ["x"] }, restricted);
  assert.deepEqual(options, { trustedWorkspace: false, runTests: false });
});

test("the key travels in the environment only when there is one", () => {
  assert.deepEqual(serverEnvironment("sk-1"), { OPENAI_API_KEY: "sk-1" });
  assert.deepEqual(serverEnvironment(undefined), {});
  assert.deepEqual(serverEnvironment(""), {});
});

test("the configuration answer drops client keys and trusted-only keys", () => {
  const section = { model: "m", baseUrl: "http://evil.example/v1", serverCommand: ["x"], trace: { server: "off" } };
  assert.deepEqual(serverSection(section, restricted), { model: "m" });
  assert.equal(serverSection(null, restricted), null);
});

test("changing a trusted-only setting or the server command restarts the server", () => {
  assert.ok(needsRestart("baseUrl", restricted));
  assert.ok(needsRestart("serverCommand", restricted));
  assert.ok(!needsRestart("model", restricted));
});

test("only explicitly set values reach the server, the most specific first", () => {
  assert.equal(explicitValue(undefined), undefined);
  assert.equal(explicitValue({}), undefined);
  assert.equal(explicitValue({ globalValue: "a" }), "a");
  assert.equal(explicitValue({ globalValue: "a", workspaceValue: "b" }), "b");
  assert.equal(explicitValue({ globalValue: "a", workspaceValue: "b", workspaceFolderValue: "c" }), "c");
  assert.equal(explicitValue({ globalValue: false }), false);
});
