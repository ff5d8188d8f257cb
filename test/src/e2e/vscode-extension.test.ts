import assert from "node:assert/strict";
import { createServer, type Server } from "node:http";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { pino } from "pino";
import { startFarm, type Farm, type Lease } from "@optimus/farm-server";
import { ServerConfig } from "@optimus/shared";
import { tokenFor } from "../helpers/clients.js";
import { git, makeFixtureRepo, patchFor } from "../helpers/fixture.js";
import { freePort } from "../helpers/farm-process.js";
import { ROOT } from "../helpers/paths.js";
import { sleep } from "../helpers/wait.js";
import { newLedger, startWorkers, stopAll } from "../helpers/workers.js";
import { runExtensionSuite } from "../helpers/vscode/index.js";

export const BASE = "export function add(a, b) {\n  return a - b;\n}\n";
export const FIX = "export function add(a, b) {\n  return a + b;\n}\n";
type Ctx = { base?: { branch: string } };

/**
 * A real farm on a fixture repository where every change waits for a human (auto-merge off), with
 * scripted workers standing in for a model that writes sensible code: the coder fixes `add` (and
 * says which task and attempt it worked for), reporting live progress; the reviewer approves with
 * a line comment. The farm can be stopped and started again on the same port.
 */
export async function extensionFarm(t: { after(fn: () => unknown): void }) {
  const repo = makeFixtureRepo(t, "planner: { enabled: false }\npolicy: { autoMerge: { enabled: false } }\n");
  const port = await freePort();
  const config = ServerConfig.parse({ ...(await import("yaml")).parse(readFileSync(join(repo, ".optimus", "config.yaml"), "utf8")), port, heartbeatIntervalMs: 500 });
  const log = pino({ level: process.env.OPTIMUS_LOG_LEVEL ?? "silent" });
  let farm: Farm | null = await startFarm({ repo, config, log });
  const url = farm.url;
  const admin = farm.startup.adminToken!.token;
  const editor = await tokenFor(url, admin, "editor", "vscode-test");
  const workerToken = await tokenFor(url, admin, "worker", "pool");
  const agents = await startWorkers(url, workerToken, [{ nodeId: "coder", role: "codegen", max: 2 }, { nodeId: "reviewer", role: "review", max: 1 }], newLedger(), async (lease: Lease, ctx) => {
    const c = (lease.context ?? {}) as Ctx;
    if (lease.spec.role === "review") {
      await sleep(300);
      return { outcome: "succeeded", summary: "looks right", review: { verdict: "approve", risk: "low", summary: "fixes the sign", comments: [{ path: "src/add.js", line: 2, body: "This is the actual fix." }] } };
    }
    for (const [phase, step] of [["reading", "src/add.js"], ["generating", "turn 1"], ["checking", "node test/add.test.js"]] as const) {
      ctx.progress({ phase, step, tokens: 120, elapsedMs: 0 });
      await sleep(700);
    }
    const files: Record<string, string> = lease.spec.files.includes("README.md")
      ? { "README.md": `# fixture\n\n${lease.taskId}\n` }
      : { "src/add.js": `${FIX}// for ${lease.taskId} attempt ${lease.attempt}\n` };
    return { outcome: "succeeded", summary: "fixed add", patch: patchFor(repo, c.base!.branch, files), signals: { model: "scripted", tokens: 360, confidence: 0.9, iterations: 1 } };
  });
  const handle = {
    repo, url, editor, admin,
    get farm() {
      return farm;
    },
    async stop() {
      await farm?.close();
      farm = null;
    },
    async start() {
      farm ??= await startFarm({ repo, config, log });
    },
  };
  t.after(async () => {
    await stopAll(agents);
    await handle.stop();
  });
  return handle;
}

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
