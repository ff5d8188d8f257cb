import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { existsSync, rmSync, statSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { httpClientFor } from "../helpers/clients.js";
import { extensionFarm } from "../helpers/extension-farm.js";
import { git } from "../helpers/fixture.js";
import { cloneDirFor } from "@optimus/farm-server";
import { ROOT } from "../helpers/paths.js";
import { waitFor } from "../helpers/wait.js";
import { openWorkbench, treeRow } from "../helpers/vscode/index.js";

const ARTIFACTS = join(ROOT, "test-artifacts", "vscode-ui");

/** Packages the extension the way a user gets it (`npm run package`): the .vsix the workbench installs. */
function packageExtension(): string {
  try {
    execFileSync("npm", ["run", "package", "-w", "extension"], { cwd: ROOT, stdio: "pipe" });
  } catch (err) {
    throw new Error(`npm run package failed:\n${String((err as { stderr?: Buffer }).stderr ?? err).slice(-2_000)}`, { cause: err });
  }
  const vsix = join(ROOT, "extension", "dist", "optimus.vsix");
  assert.ok(existsSync(vsix) && statSync(vsix).size > 10_000, "npm run package built a .vsix");
  return vsix;
}

test("in the real workbench: connect, Send to Optimus, watch the unit run, open the diff, approve in one click, see it merged", async (t) => {
  rmSync(ARTIFACTS, { recursive: true, force: true });
  const vsix = packageExtension();
  const h = await extensionFarm(t);
  const wb = await openWorkbench({ workspace: h.repo, vsix, artifactsDir: ARTIFACTS });
  t.after(async () => {
    // A failing run leaves a picture of where it stopped.
    if (!finished) await wb.screenshot("failed-here").catch(() => undefined);
    await wb.close();
  });
  let finished = false;
  const { page } = wb;
  const notification = (text: RegExp) => page.locator(".notifications-toasts .notification-toast").filter({ hasText: text });

  // Connect through the palette, as a user would: URL, then the token (a password box). A wrong
  // token first: one clear message, and its button is the way to fix it.
  // Each step of the connect prompt has its own title: wait for it, so text never lands in the previous box.
  const step = (n: 1 | 2) =>
    page
      .locator(".quick-input-widget .quick-input-title")
      .filter({ hasText: `(${n}/2)` })
      .first()
      .waitFor({ timeout: 15_000 });
  await wb.runCommand("Optimus: Connect to Farm");
  await step(1);
  await wb.fillQuickInput(h.url);
  await step(2);
  await wb.fillQuickInput("not-the-token");
  const refused = notification(/did not accept the token/).first();
  await refused.waitFor({ timeout: 30_000 });
  assert.doesNotMatch(await refused.innerText(), /\bat .*\.js:\d+/, "no stack trace");
  await wb.screenshot("wrong-token");
  await refused.getByRole("button", { name: "Enter Token" }).click();
  await step(2);
  await wb.fillQuickInput(h.editor);
  await notification(/connected to .* as editor:vscode-test/)
    .first()
    .waitFor({ timeout: 30_000 });
  await page
    .locator(".statusbar-item")
    .filter({ hasText: /Optimus: 0 running/ })
    .first()
    .waitFor({ timeout: 10_000 });
  await wb.screenshot("connected");

  await page.locator('.activitybar .action-item a[aria-label^="Optimus"]').first().click();
  await page.locator(".pane-header").filter({ hasText: /Units/ }).first().waitFor();
  await wb.screenshot("optimus-view");

  // Command palette → "Send to Optimus" → instruction → the task shows in the tree.
  await wb.runCommand("Send to Optimus");
  await wb.fillQuickInput("Fix add so it adds");
  await treeRow(page, "Fix add so it adds").first().waitFor({ timeout: 30_000 });
  await wb.screenshot("task-sent");

  // The unit's progress, live from the worker.
  const unitRow = () => treeRow(page, "u1").filter({ hasNotText: "review" }).first();
  await unitRow()
    .filter({ hasText: /running · coder/ })
    .waitFor({ timeout: 30_000 });
  await wb.screenshot("unit-running");
  await unitRow()
    .filter({ hasText: /awaiting approval/ })
    .waitFor({ timeout: 60_000 });
  await page.locator(".activitybar .badge").filter({ hasText: "1" }).first().waitFor({ timeout: 10_000 });
  await wb.screenshot("awaiting-approval");

  // Open the diff from the tree: a real diff editor with the proposed fix.
  await unitRow().click();
  const diff = page.locator(".monaco-diff-editor").first();
  await diff.waitFor({ timeout: 30_000 });
  await diff
    .locator(".editor.modified .view-lines")
    .filter({ hasText: /return\s+a\s+\+\s+b/ })
    .waitFor({ timeout: 15_000 });
  await diff
    .locator(".editor.original .view-lines")
    .filter({ hasText: /return\s+a\s+-\s+b/ })
    .waitFor({ timeout: 15_000 });
  await wb.screenshot("diff-open");

  // One click: the Approve button in the diff editor's title bar.
  await page.locator('.editor-actions .action-label[aria-label^="Approve"]').first().click();
  await notification(/Approved .*u1/)
    .first()
    .waitFor({ timeout: 30_000 });
  await unitRow()
    .filter({ hasText: /merged/ })
    .waitFor({ timeout: 60_000 });
  await wb.screenshot("merged");

  // The farm and git agree with what the tree shows.
  const task = [...h.server.services.state.projection.tasks.values()].find((x) => x.title === "Fix add so it adds")!;
  const u = h.server.services.state.projection.units.get(`${task.taskId}/u1`)!;
  assert.equal(u.state, "merged");
  const events = await h.server.services.state.journal.readAfter(0, 100_000);
  assert.equal(events.find((e) => e.type === "unit_approved")?.actor, "editor:vscode-test");
  // The unit's merge into the task's branch (in the farm's clone; the branch itself may already be
  // delivered and deleted) has the change.
  assert.match(
    git(cloneDirFor(h.repo), "show", `${u.mergedCommit}:src/add.js`),
    /return a \+ b/,
    "the change on the task's integration branch",
  );

  // Issue 16: a three-file change is one multi-file diff, with added / modified shown as such (no
  // renames), and is approved from that editor's title bar.
  const api = httpClientFor(h.url, h.editor);
  const awaitingOnFarm = (taskId: string) =>
    waitFor(
      () => h.server.services.state.projection.units.get(`${taskId}/u1`)?.state === "awaiting_approval",
      `${taskId}/u1 to await approval`,
      60_000,
    );
  const three = await api.tasks.create.mutate({ title: "Add mul and sub", files: ["src/add.js", "src/mul.js", "src/sub.js"] });
  await awaitingOnFarm(three.taskId);
  // With no change editor active, "Open Change" asks which unit's.
  await wb.runCommand("View: Close All Editors");
  await wb.runCommand("Optimus: Open Change");
  await wb.fillQuickInput(`${three.taskId}/u1`);
  const multi = page.locator(".monaco-component.multiDiffEditor").first();
  await multi.waitFor({ timeout: 30_000 });
  const header = (file: string) => page.locator(".multiDiffEntry .header").filter({ hasText: file }).first();
  for (const f of ["mul.js", "sub.js"]) {
    await header(f).locator(".status.added").filter({ hasText: "A" }).waitFor({ timeout: 15_000 });
  }
  await header("add.js").waitFor({ timeout: 15_000 });
  assert.equal(await page.locator(".multiDiffEntry .header .status.renamed").count(), 0, "no file shows as renamed");
  assert.equal(await header("add.js").locator(".status").innerText(), "", "a modified file has no A/D/R badge");
  await wb.screenshot("multi-file-diff");
  await page.locator('.editor-actions .action-label[aria-label^="Approve"]').first().click();
  await notification(new RegExp(`Approved ${three.taskId}/u1 attempt 1`))
    .first()
    .waitFor({ timeout: 30_000 });
  await waitFor(
    () => h.server.services.state.projection.units.get(`${three.taskId}/u1`)?.state === "merged",
    "the three-file change merged",
  );
  await wb.screenshot("multi-file-approved");

  // A click while the farm is down (the approval notification's own button) fails at once with a
  // message, and nothing is approved once the farm is back.
  const offline = await api.tasks.create.mutate({ title: "Fix add while the farm is down", files: ["src/add.js"] });
  const asked = notification(new RegExp(`${offline.taskId}/u1 attempt 1 needs your approval`)).first();
  await asked.waitFor({ timeout: 60_000 });
  await h.stop();
  await page
    .locator(".statusbar-item")
    .filter({ hasText: /reconnecting/ })
    .first()
    .waitFor({ timeout: 20_000 });
  const clicked = Date.now();
  await asked.getByRole("button", { name: "Approve" }).click();
  await notification(/Not connected to the farm: .*nothing was sent/)
    .first()
    .waitFor({ timeout: 5_000 });
  assert.ok(Date.now() - clicked < 5_000, "the error came at once");
  await wb.screenshot("approve-while-disconnected");
  await h.start();
  await page
    .locator(".statusbar-item")
    .filter({ hasText: /Optimus: \d+ running/ })
    .first()
    .waitFor({ timeout: 30_000 });
  await new Promise((r) => setTimeout(r, 3_000)); // a click kept for the reconnect would have run by now
  const after = await h.server.services.state.journal.readAfter(0, 100_000);
  assert.ok(!after.some((e) => e.type === "unit_approved" && e.data.taskId === offline.taskId), "no decision was recorded");
  assert.equal(h.server.services.state.projection.units.get(`${offline.taskId}/u1`)?.state, "awaiting_approval");
  finished = true;
});
