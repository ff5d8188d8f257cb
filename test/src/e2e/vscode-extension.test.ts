import assert from "node:assert/strict";
import { createServer, type Server } from "node:http";
import { join } from "node:path";
import { test } from "node:test";
import { BASE, extensionFarm, FIX } from "../helpers/extension-farm.js";
import { git } from "../helpers/fixture.js";
import { freePort } from "../helpers/farm-process.js";
import { ROOT } from "../helpers/paths.js";
import { runExtensionSuite } from "../helpers/vscode/index.js";

/** The harness's loopback control endpoint: the suite in VS Code asks it to stop and start the farm. */
async function controlServer(h: { stop(): Promise<void>; start(): Promise<void> }): Promise<{ url: string; server: Server }> {
  const server = createServer((req, res) => {
    const act = req.method === "POST" && req.url === "/farm/stop" ? h.stop() : req.method === "POST" && req.url === "/farm/start" ? h.start() : null;
    if (!act) return void res.writeHead(404).end("unknown control");
    act.then(() => res.writeHead(200).end("ok"), (err) => res.writeHead(500).end(String(err)));
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  return { url: `http://127.0.0.1:${(server.address() as { port: number }).port}`, server };
}

test("the extension's integration suite passes inside a real VS Code against a real farm", async (t) => {
  const h = await extensionFarm(t);
  const ctl = await controlServer(h);
  t.after(() => ctl.server.close());
  await runExtensionSuite({
    extensionDevelopmentPath: join(ROOT, "extension"),
    extensionTestsPath: join(ROOT, "extension", "dist", "test", "suite.js"),
    workspace: h.repo,
    artifactsDir: join(ROOT, "test-artifacts", "vscode-extension"),
    env: {
      OPTIMUS_TEST_FARM_URL: h.url,
      OPTIMUS_TEST_FARM_TOKEN: h.editor,
      OPTIMUS_TEST_CONTROL_URL: ctl.url,
      OPTIMUS_TEST_BASE_CONTENT: BASE,
      OPTIMUS_TEST_FIX_CONTENT: FIX,
      OPTIMUS_TEST_CLOSED_PORT: String(await freePort()),
    },
  });
  // What the suite did is on the farm and in git, with the user's identity.
  const events = await h.farm!.services.state.journal.readAfter(0, 100_000);
  const approvals = events.filter((e) => e.type === "unit_approved");
  assert.ok(approvals.length >= 1);
  assert.ok(approvals.every((e) => e.actor === "editor:vscode-test"));
  const requested = events.find((e) => e.type === "changes_requested");
  assert.equal(requested?.actor, "editor:vscode-test");
  const merged = events.find((e) => e.type === "unit_merged");
  assert.ok(merged);
  assert.match(git(h.repo, "show", "main:src/add.js"), /return a \+ b;\n\}\n\/\/ for .* attempt 2\n$/);
  assert.ok(events.some((e) => e.type === "escalation_requested" && e.actor === "editor:vscode-test"));
});
