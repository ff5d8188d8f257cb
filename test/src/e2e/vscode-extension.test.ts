import assert from "node:assert/strict";
import { createServer, type Server } from "node:http";
import { join } from "node:path";
import { test } from "node:test";
import { BASE, extensionFarm, FIX } from "../helpers/extension-farm.js";
import { git } from "../helpers/fixture.js";
import { freePort } from "../helpers/ports.js";
import { ROOT } from "../helpers/paths.js";
import { runExtensionSuite } from "../helpers/vscode/index.js";

/** The harness's loopback control endpoint: the suite in VS Code asks it to stop and start the farm. */
async function controlServer(h: {
  stop(): Promise<void>;
  start(): Promise<void>;
  finished(n: number): Promise<void>;
}): Promise<{ url: string; server: Server }> {
  const server = createServer((req, res) => {
    const act =
      req.method !== "POST"
        ? null
        : req.url === "/farm/stop"
          ? h.stop()
          : req.url === "/farm/start"
            ? h.start()
            : req.url === "/farm/finished"
              ? h.finished(60)
              : null;
    if (!act) return void res.writeHead(404).end("unknown control");
    act.then(
      () => res.writeHead(200).end("ok"),
      (err) => res.writeHead(500).end(String(err)),
    );
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  return { url: `http://127.0.0.1:${(server.address() as { port: number }).port}`, server };
}

test("the extension's integration suite passes inside a real VS Code against a real farm", async (t) => {
  const h = await extensionFarm(t);
  // A history longer than the editor's first page: tasks recorded and cancelled on the farm.
  const finished = async (n: number) => {
    for (let i = 0; i < n; i++) {
      const taskId = `old-${String(i).padStart(3, "0")}`;
      await h.server.services.tasks.create(
        { id: taskId, title: `Old task ${i}`, units: [{ id: "u1", goal: "done long ago" }], source: "api" },
        "test",
      );
      await h.server.services.tasks.cancel(taskId, "history for the tree", "test");
    }
  };
  const ctl = await controlServer({ stop: () => h.stop(), start: () => h.start(), finished });
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
  const events = await h.server.services.state.journal.readAfter(0, 100_000);
  const approvals = events.filter((e) => e.type === "unit_approved");
  assert.ok(approvals.length >= 1);
  assert.ok(approvals.every((e) => e.actor === "editor:vscode-test"));
  const requested = events.find((e) => e.type === "changes_requested");
  assert.equal(requested?.actor, "editor:vscode-test");
  // The first task's unit merged its attempt 2 (later tests merge other changes into main after it).
  const first = [...h.server.services.state.projection.tasks.values()].find((x) => x.title === "Fix add so it adds")!;
  const merged = events.find((e) => e.type === "unit_merged" && e.data.taskId === first.taskId);
  assert.ok(merged && merged.type === "unit_merged");
  assert.match(git(h.repo, "show", `${merged.data.commit}:src/add.js`), /return a \+ b;\n\}\n\/\/ for .* attempt 2\n$/);
  // Issue 16: no escalation on a farm without a frontier model; the approval from the outdated editor
  // was refused (one decision, on attempt 2, naming its head); the click while the farm was down never ran.
  assert.ok(!events.some((e) => e.type === "escalation_requested"), "nothing was escalated");
  const tasks = [...h.server.services.state.projection.tasks.values()];
  const taskOf = (title: string) => tasks.find((x) => x.title === title)?.taskId;
  const stale = taskOf("Fix add, then fix it again");
  const staleApprovals = events.filter((e) => e.type === "unit_approved" && e.data.taskId === stale);
  assert.equal(staleApprovals.length, 1);
  assert.equal((staleApprovals[0]!.data as { attempt: number }).attempt, 2, "attempt 2 was approved, not the attempt-1 editor's");
  assert.ok((staleApprovals[0]!.data as { head?: string }).head, "the approval names the head commit seen");
  const offline = taskOf("Fix add while the farm goes away");
  assert.ok(offline);
  assert.ok(
    !events.some((e) => (e.type === "unit_approved" || e.type === "unit_rejected") && e.data.taskId === offline),
    "the click made while the farm was down was never sent",
  );
});
