import assert from "node:assert/strict";
import * as vscode from "vscode";
import type { UnitLiveView } from "@optimus/shared";
import type { OptimusServices } from "../../services.js";
import { FarmConnection, FarmConnectionError } from "../../farm/connection.js";
import { parseChangeUri } from "../../review/change-documents.js";
import { control, env, until } from "./helpers.js";

export function defineFarmIntegrationTests(): void {
  let s: OptimusServices;
  const farmUrl = () => env("OPTIMUS_TEST_FARM_URL");
  const token = () => env("OPTIMUS_TEST_FARM_TOKEN");

  suite("Optimus extension against a real farm", () => {
    suiteSetup(async () => {
      const ext = vscode.extensions.getExtension<OptimusServices>("optimus.optimus-vscode");
      assert.ok(ext, "the extension is installed");
      s = await ext.activate();
    });

    test("contributes and registers every command", async () => {
      const contributed = (
        vscode.extensions.getExtension("optimus.optimus-vscode")!.packageJSON.contributes.commands as Array<{ command: string }>
      ).map((c) => c.command);
      const registered = new Set(await vscode.commands.getCommands(true));
      assert.ok(contributed.length >= 20);
      assert.deepEqual(
        contributed.filter((c) => !registered.has(c)),
        [],
        "every contributed command has a handler",
      );
    });

    test("a wrong token and an unreachable farm each give one clear message, no stack trace", async () => {
      const probe = new FarmConnection();
      try {
        await assert.rejects(probe.connect(farmUrl(), "not-a-real-token"), (e: unknown) => {
          assert.ok(e instanceof FarmConnectionError);
          assert.equal(e.kind, "auth");
          assert.match(e.message, /did not accept the token/);
          assert.doesNotMatch(e.message, /\n\s+at /);
          return true;
        });
        const closed = `http://127.0.0.1:${env("OPTIMUS_TEST_CLOSED_PORT")}`;
        await assert.rejects(probe.connect(closed, token()), (e: unknown) => {
          assert.ok(e instanceof FarmConnectionError);
          assert.equal(e.kind, "unreachable");
          assert.equal(
            e.message,
            `Cannot reach the farm at ${closed}: nothing is listening there. Is it running (\`npm start\` or \`optimus farm up\`)?`,
          );
          return true;
        });
        assert.equal(probe.state, "disconnected");
      } finally {
        probe.dispose();
      }
    });

    test("connects, keeps the token in secret storage, and shows the farm in the status bar", async () => {
      const me = await vscode.commands.executeCommand<{ actor: string } | undefined>("optimus.connect", { url: farmUrl(), token: token() });
      assert.equal(me?.actor, "editor:vscode-test");
      assert.equal(s.connection.state, "connected");
      assert.equal(await s.credentials.token(), token());
      assert.equal(vscode.workspace.getConfiguration("optimus").get("farmUrl"), farmUrl());
      assert.ok(!JSON.stringify(vscode.workspace.getConfiguration("optimus")).includes(token()), "the token is not in settings");
      await until("the status bar to show the connection", () => /Optimus: \d+ running .*\$0\.00 today/.test(s.statusBar.text));
      await until("the fleet to list the harness's workers", () => s.fleetTree.getChildren().length >= 2);
      assert.deepEqual(
        s.fleetTree
          .getChildren()
          .map((w) => w.nodeId)
          .sort(),
        ["coder", "reviewer"],
      );
    });

    test("Send to Optimus creates the task; the tree follows its unit live to awaiting approval", async () => {
      const taskId = await vscode.commands.executeCommand<string>("optimus.send", undefined, undefined, {
        instruction: "Fix add so it adds",
        files: ["src/add.js"],
      });
      assert.ok(taskId, "a task id came back");
      const roots = s.unitsTree.getChildren();
      assert.ok(
        roots.some((n) => n.kind === "task" && n.taskId === taskId),
        "the task is in the tree",
      );
      const seen = new Set<string>();
      const unit = await until("the unit to await approval", () => {
        const u = s.connection.views.unit(taskId, "u1");
        if (u) seen.add(u.state);
        return u?.state === "awaiting_approval" ? u : undefined;
      });
      assert.ok(
        seen.has("leased") || seen.has("evaluating") || seen.has("reviewing"),
        `the tree saw the unit working (saw ${[...seen].join(", ")})`,
      );
      const children = s.unitsTree.getChildren({ kind: "task", taskId });
      assert.deepEqual(
        children.map((n) => (n.kind === "unit" ? n.unitId : n.kind)),
        ["u1", "u1-review"],
        "the task's units are its children in the tree",
      );
      const item = s.unitsTree.getTreeItem({ kind: "unit", taskId, unitId: "u1" });
      assert.match(String(item.contextValue), /\bapprovable\b/);
      assert.match(String(item.description), /awaiting approval/);
      assert.equal((item.iconPath as vscode.ThemeIcon).id, "bell-dot");
      assert.equal(s.unitsView.badge?.value, 1, "the badge counts units awaiting approval");
      assert.equal(unit.evaluation?.green, true);
      (globalThis as { taskId?: string }).taskId = taskId;
    });

    test("the change opens as a read-only diff with the base and proposed content", async () => {
      const taskId = (globalThis as { taskId?: string }).taskId!;
      await vscode.commands.executeCommand("optimus.unit.openChange", { taskId, unitId: "u1" });
      const tab = await until("a diff tab", () =>
        vscode.window.tabGroups.all.flatMap((g) => g.tabs).find((t) => t.input instanceof vscode.TabInputTextDiff),
      );
      const input = tab.input as vscode.TabInputTextDiff;
      assert.equal(parseChangeUri(input.original)?.side, "base");
      assert.equal(parseChangeUri(input.modified)?.path, "src/add.js");
      const base = await vscode.workspace.openTextDocument(input.original);
      const proposed = await vscode.workspace.openTextDocument(input.modified);
      assert.equal(base.getText(), env("OPTIMUS_TEST_BASE_CONTENT"));
      assert.equal(proposed.getText(), `${env("OPTIMUS_TEST_FIX_CONTENT")}// for ${taskId} attempt 1\n`);
      // Read-only: served by a content provider, with no file system behind it to write to.
      assert.equal(proposed.isDirty, false);
      assert.equal(vscode.workspace.fs.isWritableFileSystem("optimus-change"), undefined);
    });

    test("line comments are sent as request changes, recorded with the user's identity", async () => {
      const taskId = (globalThis as { taskId?: string }).taskId!;
      const before = s.connection.views.unit(taskId, "u1")!;
      const draft = s.comments.addDraftAt(
        { taskId, unitId: "u1" },
        before.evaluation!.attempt,
        "src/add.js",
        2,
        "Please keep the parameter names",
      );
      assert.ok(draft);
      assert.deepEqual(s.comments.drafts({ taskId, unitId: "u1" }), [
        { path: "src/add.js", line: 2, body: "Please keep the parameter names" },
      ]);
      const after = await vscode.commands.executeCommand<UnitLiveView | undefined>(
        "optimus.unit.requestChanges",
        { taskId, unitId: "u1" },
        { text: "" },
      );
      assert.ok(after, "the farm accepted the request");
      const onFarm = await s.connection.api.units.get.query({ taskId, unitId: "u1" });
      assert.ok(
        onFarm.feedback?.some((f) => f.includes("editor:vscode-test asks: src/add.js:2: Please keep the parameter names")),
        `feedback: ${JSON.stringify(onFarm.feedback)}`,
      );
      assert.deepEqual(s.comments.drafts({ taskId, unitId: "u1" }), [], "sent drafts are cleared");
      // A later attempt comes back for approval (attempt 2, or 3 when a loaded machine let attempt 2's
      // lease expire: the farm cannot tell a starved worker from a dead one, and hands the unit out again).
      await until("the next attempt to await approval", () => {
        const u = s.connection.views.unit(taskId, "u1");
        return u?.state === "awaiting_approval" && u.attempt >= 2;
      }).catch(async (err: Error) => {
        // Say what each side believed: the editor's view, the connection, and the farm's own answer.
        const seen = s.connection.views.unit(taskId, "u1");
        const farm = await s.connection.api.units.get.query({ taskId, unitId: "u1" }).catch((e: Error) => e.message);
        const history = await s.connection.api.units.detail.query({ taskId, unitId: "u1" }).then(
          (d) => d.history.map((h) => `${h.type}: ${h.summary}`).join(" | "),
          (e: Error) => e.message,
        );
        throw new Error(
          `${err.message}; the view: ${JSON.stringify({ state: seen?.state, attempt: seen?.attempt })}; connection: ${s.connection.state}; the farm: ${JSON.stringify(typeof farm === "string" ? farm : { state: farm.state, attempt: farm.attempt, reason: farm.reason })}; history: ${history}`,
        );
      });
    });

    test("approve in one click: the farm merges the unit and the tree shows it", async () => {
      const taskId = (globalThis as { taskId?: string }).taskId!;
      await vscode.commands.executeCommand("optimus.unit.approve", { kind: "unit", taskId, unitId: "u1" });
      const onFarm = await until("the farm to merge the unit", async () => {
        const u = await s.connection.api.units.get.query({ taskId, unitId: "u1" });
        return u.state === "merged" ? u : undefined;
      });
      assert.ok(onFarm.mergedCommit);
      await until("the tree to show the unit merged", () =>
        /merged/.test(String(s.unitsTree.getTreeItem({ kind: "unit", taskId, unitId: "u1" }).description)),
      );
      assert.equal(s.unitsView.badge, undefined, "nothing waits any more");
      const detail = await s.connection.api.units.detail.query({ taskId, unitId: "u1" });
      const approved = detail.history.find((h) => h.type === "unit_approved");
      assert.equal(approved?.actor, "editor:vscode-test", "the approval is recorded with the user's identity");
    });

    test("the unit detail panel and the dashboard open", async () => {
      const taskId = (globalThis as { taskId?: string }).taskId!;
      const panel = await vscode.commands.executeCommand<vscode.WebviewPanel>("optimus.unit.showDetail", { taskId, unitId: "u1" });
      assert.ok(panel);
      assert.match(panel.webview.html, /Content-Security-Policy/);
      assert.match(panel.webview.html, /default-src 'none'/);
      assert.doesNotMatch(panel.webview.html, /<script>(?!<)/, "no inline script without a nonce");
      const dash = await vscode.commands.executeCommand<vscode.WebviewPanel>("optimus.showDashboard");
      assert.ok(dash);
      assert.equal(s.dashboard.model().workers.length, 2);
      panel.dispose();
      dash.dispose();
    });

    test("an invalid manifest shows problems at the right lines; a valid one runs", async () => {
      const folder = vscode.workspace.workspaceFolders![0]!.uri;
      const bad = vscode.Uri.joinPath(folder, ".optimus", "tasks", "bad-one", "manifest.yaml");
      const text = [
        "apiVersion: optimus/v1",
        "kind: Task",
        "title: Bad one",
        "units:",
        "  - id: a",
        "    goal: do a",
        "    dependsOn: [nope]",
        "  - id: b",
        "    goal: 42",
        "    colour: red",
        "",
      ].join("\n");
      await vscode.workspace.fs.writeFile(bad, Buffer.from(text));
      await vscode.window.showTextDocument(await vscode.workspace.openTextDocument(bad));
      const diags = await until("problems for the bad manifest", () => {
        const d = vscode.languages.getDiagnostics(bad).filter((x) => x.source === "optimus");
        return d.length ? d : undefined;
      });
      const byField = Object.fromEntries(diags.map((d) => [String(d.code), d.range.start.line + 1]));
      assert.equal(byField["units[1].goal"], 9, JSON.stringify(byField));
      assert.equal(byField["units[1]"], 8, JSON.stringify(byField));
      assert.equal(await vscode.commands.executeCommand("optimus.runManifest", bad), undefined, "an invalid manifest is not sent");

      const uri = await vscode.commands.executeCommand<vscode.Uri>("optimus.newManifest", "Docs touch-up");
      assert.match(uri.path, /\.optimus\/tasks\/docs-touch-up\/manifest\.yaml$/);
      const doc = await vscode.workspace.openTextDocument(uri);
      assert.deepEqual(s.manifests.check(doc), [], "the template is a valid manifest");
      const taskId = await vscode.commands.executeCommand<string>("optimus.runManifest", uri);
      assert.equal(taskId, "docs-touch-up");
      await until("the manifest's task in the model", () => s.connection.views.tasks.get("docs-touch-up"));
      await s.connection.api.tasks.cancel.mutate({ taskId: "docs-touch-up", reason: "test" });
    });

    test("cancel from the tree is recorded on the farm; Escalate is not offered on a farm without a frontier model", async () => {
      const taskId = await vscode.commands.executeCommand<string>("optimus.send", undefined, undefined, {
        instruction: "Hold this one",
        files: ["README.md"],
      });
      const u = await until("the held unit", () => s.connection.views.unit(taskId, "u1"));
      assert.equal(s.connection.views.spend.frontierConfigured, false, "the harness's farm has no frontier model");
      assert.ok(!u.actions.includes("escalate"), `the farm offers no escalate: ${u.actions.join(", ")}`);
      const item = s.unitsTree.getTreeItem({ kind: "unit", taskId, unitId: "u1" });
      assert.doesNotMatch(String(item.contextValue), /\bescalatable\b/, "no Escalate button in the tree");
      assert.match(String(item.contextValue), /\bcancellable\b/);
      const escalated = await vscode.commands.executeCommand<UnitLiveView | undefined>(
        "optimus.unit.escalate",
        { taskId, unitId: "u1" },
        { reason: "local model keeps failing" },
      );
      assert.equal(escalated, undefined, "nothing was queued");
      assert.equal(s.actions.lastMessage?.level, "error");
      assert.match(s.actions.lastMessage!.text, /could not escalate .*no frontier model is configured/);
      const onFarm = await s.connection.api.units.get.query({ taskId, unitId: "u1" });
      assert.equal(onFarm.escalation, undefined, "the farm has no escalation for it");
      const cancelled = await vscode.commands.executeCommand<UnitLiveView>(
        "optimus.unit.cancel",
        { taskId, unitId: "u1" },
        { confirmed: true, reason: "test" },
      );
      assert.equal(cancelled?.state, "cancelled");
    });

    test("the farm restarting mid-run: the tree reconnects and catches up with no missed states", async () => {
      const taskId = await vscode.commands.executeCommand<string>("optimus.send", undefined, undefined, {
        instruction: "Fix add again after a restart",
        files: ["src/add.js"],
      });
      const epoch = s.connection.views.epoch;
      const states: string[] = [];
      const sub = s.connection.onDidChangeViews(() => {
        const u = s.connection.views.unit(taskId, "u1");
        if (u && states[states.length - 1] !== u.state) states.push(u.state);
      });
      try {
        await control("/farm/stop");
        await until("the editor to notice", () => s.connection.state === "connecting", 20_000);
        assert.match(s.statusBar.text, /reconnecting/);
        await control("/farm/start");
        await until("the editor to reconnect", () => s.connection.state === "connected" && s.connection.views.epoch > epoch, 30_000);
        const u = await until(
          "the unit to await approval after the restart",
          () => s.connection.views.unit(taskId, "u1")?.state === "awaiting_approval" && s.connection.views.unit(taskId, "u1"),
        );
        // The model equals the farm's own view of every unit: nothing missed, nothing stale.
        const farmUnits = await s.connection.api.units.list.query({ limit: 10_000 });
        for (const f of farmUnits) {
          const mine = s.connection.views.unit(f.taskId, f.unitId);
          assert.ok(mine, `${f.taskId}/${f.unitId} is in the editor's model`);
          assert.equal(mine.state, f.state, `${f.taskId}/${f.unitId}`);
          assert.equal(mine.attempt, f.attempt, `${f.taskId}/${f.unitId}`);
        }
        assert.equal(s.connection.views.units.size, farmUnits.length);
        assert.ok(u.evaluation?.green);
        assert.equal(states[states.length - 1], "awaiting_approval", `states seen: ${states.join(" → ")}`);
      } finally {
        sub.dispose();
      }
    });

    test("a long history: the tree shows a page of finished tasks and 'Show older tasks…' loads the rest", async () => {
      await control("/farm/finished");
      // A new epoch sends a fresh first message: live work and one page of history.
      const epoch = s.connection.views.epoch;
      await control("/farm/stop");
      await control("/farm/start");
      await until("the editor to reconnect", () => s.connection.state === "connected" && s.connection.views.epoch > epoch, 30_000);
      const more = await until("the tree to offer older tasks", () => s.unitsTree.getChildren().find((n) => n.kind === "more"));
      const item = s.unitsTree.getTreeItem(more);
      const m = /^Show older tasks… \((\d+) more finished\)$/.exec(String(item.label));
      assert.ok(m, `the node reads ${String(item.label)}`);
      const older = Number(m[1]);
      assert.ok(older >= 10, `${older} older tasks`);
      assert.ok(!s.connection.views.tasks.has("old-000"), "the oldest is not in the first message");
      const shown = s.connection.views.tasks.size;
      assert.equal(item.command?.command, "optimus.tasks.showMore");
      const loaded = await vscode.commands.executeCommand<number>(item.command!.command);
      assert.equal(loaded, older);
      assert.equal(s.connection.views.tasks.size, shown + older);
      assert.ok(
        s.unitsTree.getChildren().some((n) => n.kind === "task" && n.taskId === "old-000"),
        "the oldest is in the tree now",
      );
      assert.deepEqual(
        s.unitsTree
          .getChildren({ kind: "task", taskId: "old-000" })
          .map((n) => (n.kind === "unit" ? [n.unitId, s.connection.views.unit("old-000", n.unitId)?.state] : n.kind)),
        [
          ["u1", "cancelled"],
          ["u1-review", "cancelled"],
        ],
        "with its units",
      );
      assert.ok(!s.unitsTree.getChildren().some((n) => n.kind === "more"), "nothing older is left to show");
    });
  });
}
