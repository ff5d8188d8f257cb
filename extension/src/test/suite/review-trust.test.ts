import assert from "node:assert/strict";
import * as vscode from "vscode";
import type { UnitLiveView } from "@optimus/shared";
import type { OptimusServices } from "../../services.js";
import { changeUri, type UnitRef } from "../../review/change-documents.js";
import { changeOfTab } from "../../review/change-tabs.js";
import { control, until } from "./helpers.js";

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * Issue 16, inside the extension host against the harness's farm: an approval binds to the version
 * seen, nothing runs behind the user's back, any change is reviewable in one editor, comment threads
 * behave, and a reviewer that never approves ends with the unit held for a person.
 */
export function defineReviewTrustTests(): void {
  let s: OptimusServices;
  const send = (instruction: string, files: string[]) =>
    vscode.commands.executeCommand<string>("optimus.send", undefined, undefined, { instruction, files });
  const awaiting = (ref: UnitRef, attempt?: number, timeoutMs?: number) =>
    until(
      `${ref.taskId}/${ref.unitId} to await approval${attempt ? ` at attempt ${attempt}` : ""}`,
      () => {
        const u = s.connection.views.unit(ref.taskId, ref.unitId);
        return u?.state === "awaiting_approval" && (attempt === undefined || u.evaluation?.attempt === attempt) && u;
      },
      timeoutMs,
    );
  const tabsOf = (ref: UnitRef) =>
    vscode.window.tabGroups.all
      .flatMap((g) => g.tabs)
      .filter((t) => changeOfTab(t)?.taskId === ref.taskId && changeOfTab(t)?.unitId === ref.unitId);
  const agentThreads = (ref: UnitRef) =>
    s.comments.threadsOf(ref).filter((t) => t.comments.some((c) => c.author.name === "reviewer (agent)"));
  const merged = (ref: UnitRef) =>
    until("the farm to merge it", async () => ((await s.connection.api.units.get.query(ref)).state === "merged" ? true : undefined));

  suite("Review a person can trust (issue 16)", () => {
    suiteSetup(async () => {
      s = (await vscode.extensions.getExtension<OptimusServices>("optimus.optimus-vscode")!.activate())!;
      if (!s.connection.connected) await until("the editor to be connected", () => s.connection.connected, 30_000);
      await vscode.commands.executeCommand("workbench.action.closeAllEditors");
    });

    test("an approval names the attempt seen: from an outdated editor it is refused with the newer attempt named; approving that one merges it", async () => {
      const ref = { taskId: await send("Fix add, then fix it again", ["src/add.js"]), unitId: "u1" };
      await awaiting(ref, 1);
      // Opened three times: one tab, and each agent comment once.
      for (let i = 0; i < 3; i++) await vscode.commands.executeCommand("optimus.unit.openChange", ref);
      assert.equal(tabsOf(ref).length, 1, "one editor for the change");
      assert.equal(agentThreads(ref).length, 1, "the reviewer's one comment shows once");
      const v1 = s.changes.known(ref, 1);
      assert.ok(v1, "attempt 1's change was fetched");
      // Attempt 2 arrives while the person still looks at attempt 1 (another reviewer sent it back).
      await s.connection.api.reviews.requestChanges.mutate({
        ...ref,
        attempt: 1,
        head: v1.head,
        comments: [{ body: "Another pass, please" }],
      });
      await awaiting(ref, 2);
      const outdated = await until("the attempt-1 editor to be marked outdated", () =>
        tabsOf(ref).find((t) => /#1 — OUTDATED: attempt 2 is newer/.test(t.label)),
      );
      assert.equal(changeOfTab(outdated)?.attempt, 1, "it still shows attempt 1");
      await until("attempt 1's agent thread to be marked outdated", () =>
        agentThreads(ref).some((t) => /attempt 1 · outdated/.test(t.label ?? "") && t.canReply === false),
      );

      // Approve pressed in the attempt-1 editor (its title bar passes the document's URI).
      const r = await vscode.commands.executeCommand<UnitLiveView | undefined>(
        "optimus.unit.approve",
        changeUri({ ...ref, attempt: 1, side: "proposed", path: "src/add.js" }),
      );
      assert.equal(r, undefined, "nothing was approved");
      assert.equal(s.actions.lastMessage?.level, "warning");
      assert.match(s.actions.lastMessage!.text, /updated to attempt 2 since you opened it \(you reviewed attempt 1\)/);
      const onFarm = await s.connection.api.units.get.query(ref);
      assert.equal(onFarm.state, "awaiting_approval", "not merged");
      assert.equal(onFarm.attempt, 2);

      // Open attempt 2 (what the message's button does), approve it from its editor: merged.
      await vscode.commands.executeCommand("optimus.unit.openChange", ref);
      assert.ok(
        tabsOf(ref).some((t) => changeOfTab(t)?.attempt === 2),
        "attempt 2 is open",
      );
      assert.ok(
        await vscode.commands.executeCommand(
          "optimus.unit.approve",
          changeUri({ ...ref, attempt: 2, side: "proposed", path: "src/add.js" }),
        ),
      );
      await merged(ref);
      const approved = (await s.connection.api.units.detail.query(ref)).history.filter((h) => h.type === "unit_approved");
      assert.equal(approved.length, 1, "one decision");
      // The merged change's threads are closed: read-only, none takes a reply.
      await until("the threads to close after the merge", () =>
        s.comments.threadsOf(ref).every((t) => t.canReply === false && /merged/.test(t.label ?? "")),
      );
      (globalThis as { staleTaskId?: string }).staleTaskId = ref.taskId;
    });

    test("a click while the farm is down fails at once and is never sent later; the views say they show the last known state", async () => {
      const ref = { taskId: await send("Fix add while the farm goes away", ["src/add.js"]), unitId: "u1" };
      await awaiting(ref, 1);
      const epoch = s.connection.views.epoch;
      await control("/farm/stop");
      try {
        await until("the editor to notice", () => s.connection.state === "connecting", 20_000);
        const item = s.unitsTree.getTreeItem({ kind: "unit", ...ref });
        assert.match(String(item.description), /^last known: awaiting approval/);
        assert.doesNotMatch(String(item.contextValue), /\b(approvable|rejectable|hasChange)\b/, "no buttons that cannot act");
        const workers = s.fleetTree.getChildren();
        assert.ok(workers.length >= 2);
        for (const w of workers)
          assert.match(
            String(s.fleetTree.getTreeItem(w).description),
            /unknown \(farm not connected\)$/,
            "the fleet is not called healthy",
          );
        const t0 = Date.now();
        const r = await vscode.commands.executeCommand("optimus.unit.approve", { kind: "unit", ...ref });
        assert.ok(Date.now() - t0 < 2_000, `refused at once (${Date.now() - t0} ms)`);
        assert.equal(r, undefined);
        assert.equal(s.actions.lastMessage?.level, "error");
        assert.match(s.actions.lastMessage!.text, /Not connected to the farm: .*nothing was sent/);
      } finally {
        await control("/farm/start");
      }
      await until("the editor to reconnect", () => s.connection.connected && s.connection.views.epoch > epoch, 30_000);
      await sleep(3_000); // a call kept for the reconnect would have been sent by now
      const u = await s.connection.api.units.get.query(ref);
      assert.equal(u.state, "awaiting_approval", "nothing was approved");
      const history = (await s.connection.api.units.detail.query(ref)).history;
      assert.ok(!history.some((h) => h.type === "unit_approved"), "the journal has no decision");
      assert.match(
        String(s.unitsTree.getTreeItem({ kind: "unit", ...ref }).contextValue),
        /\bapprovable\b/,
        "the buttons are back once live",
      );
      (globalThis as { offlineTaskId?: string }).offlineTaskId = ref.taskId;
    });

    test("a three-file change opens as one multi-file diff (added files have no left side, one path per file) and is approved from it", async () => {
      const ref = { taskId: await send("Add mul and sub beside add", ["src/add.js", "src/mul.js", "src/sub.js"]), unitId: "u1" };
      await awaiting(ref, 1);
      await vscode.commands.executeCommand("workbench.action.closeAllEditors");
      await vscode.commands.executeCommand("optimus.unit.openChange", ref);
      const change = s.changes.known(ref, 1)!;
      assert.deepEqual(change.files.map((f) => `${f.status} ${f.path}`).sort(), [
        "added src/mul.js",
        "added src/sub.js",
        "modified src/add.js",
      ]);
      const tab = await until("the multi-file diff", () => tabsOf(ref)[0]);
      // The tab lists the files the multi-file diff has loaded so far (it loads them as they scroll in).
      type Diffs = Array<{ original?: vscode.Uri; modified?: vscode.Uri }>;
      const diffs = await until("the multi-file diff's files", () => {
        const d = (tab.input as { textDiffs?: Diffs }).textDiffs;
        return d && d.length > 0 ? d : undefined;
      });
      for (const d of diffs) {
        const path = (d.modified ?? d.original)!.path.replace(/^\/[^/]+\/[^/]+\/\d+\//, "");
        const f = change.files.find((x) => x.path === path);
        assert.ok(f, `${path} is a file of the change`);
        if (f.status === "added") assert.equal(d.original, undefined, `${path}: an added file has no left side`);
        else assert.equal(d.original?.path, d.modified?.path, `${path}: a modified file has one path on both sides (not a rename)`);
      }
      // The title bar's Approve passes the multi-file diff's own URI: the change's.
      assert.ok(await vscode.commands.executeCommand("optimus.unit.approve", changeUri({ ...ref, attempt: 1, side: "review", path: "" })));
      await merged(ref);
    });

    test("a reviewer that always requests changes: the unit is held for a person after the attempt limit, with its last comments", async () => {
      const ref = { taskId: await send("[loop] Fix add, never good enough", ["src/add.js"]), unitId: "u1" };
      const u = await until(
        "the unit to be held for a person",
        () => {
          const x = s.connection.views.unit(ref.taskId, ref.unitId);
          return x?.state === "awaiting_approval" && x;
        },
        120_000,
      );
      assert.ok(
        u.risk?.reasons.some((r) => /requested changes/.test(r)),
        `held because of the reviewer: ${JSON.stringify(u.risk)}`,
      );
      const last = u.evaluation!.attempt;
      assert.ok(last >= 2, `it went through attempts (ended at ${last})`);
      assert.match(String(s.unitsTree.getTreeItem({ kind: "unit", ...ref }).description), /awaiting approval/);
      await vscode.commands.executeCommand("optimus.unit.openChange", ref);
      const threads = agentThreads(ref);
      assert.equal(threads.length, 1, "the last review's comment");
      const body = threads[0]!.comments[0]!.body;
      assert.match(typeof body === "string" ? body : body.value, /Still not right/);
      // Still the unit's to decide on: a person can reject it.
      const rejected = await vscode.commands.executeCommand<UnitLiveView | undefined>(
        "optimus.unit.reject",
        { taskId: ref.taskId, unitId: ref.unitId },
        { reason: "the reviewer never agreed" },
      );
      assert.ok(rejected, "rejected");
      assert.match(
        String(s.unitsTree.getTreeItem({ kind: "unit", ...ref }).description),
        await until("the tree to show it cancelled", () =>
          /cancelled/.test(String(s.unitsTree.getTreeItem({ kind: "unit", ...ref }).description)) ? /cancelled/ : undefined,
        ),
      );
    });
  });
}
