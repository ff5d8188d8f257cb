/**
 * The lifecycle table drives the farm's guards and the editor's tree alike (issue 15): every unit
 * state a person can see, reached through a real farm (real git, real evals in the sandbox, workers
 * over the API), and every action tried on it. What the tree offers must be exactly what the farm
 * accepts: an offered action is done, any other is refused with the table's sentence and changes
 * nothing.
 *
 * `submitted` is the one state no view can show: the farm enters it and leaves it in the same
 * journal batch (the submission and what follows it commit together), so it is covered by the
 * table's own test, not here.
 */
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { test } from "node:test";
import { build } from "esbuild";
import { errorCode, type FarmClient } from "@optimus/farm-server";
import { UnitAction, UnitState, type UnitLiveView } from "@optimus/shared";
import { httpClientFor, tokenFor } from "../helpers/clients.js";
import { makeFixtureRepo, patchFor } from "../helpers/fixture.js";
import { ROOT } from "../helpers/paths.js";
import { writeFarmConfig } from "../helpers/repo.js";
import { startTestFarm } from "../helpers/test-farm.js";
import { waitFor } from "../helpers/wait.js";
import { newLedger, startWorkers, stopAll } from "../helpers/workers.js";

type ViewContext = { now: number; live: boolean; approver: boolean; frontierConfigured?: boolean };
interface Tree {
  unitPresentation(u: UnitLiveView, c: ViewContext): { contextValue: string };
  ACTION_FLAGS: Record<UnitAction, string>;
}

/** The tree's own presentation module (extension/src/model), bundled as the extension bundles it. */
async function loadTree(): Promise<Tree> {
  const dir = mkdtempSync(join(tmpdir(), "optimus-tree-"));
  try {
    const out = join(dir, "presentation.mjs");
    await build({
      entryPoints: [join(ROOT, "extension", "src", "model", "unit-presentation.ts")],
      bundle: true,
      format: "esm",
      platform: "node",
      outfile: out,
      logLevel: "silent",
      banner: { js: 'import { createRequire as __r } from "node:module"; const require = __r(import.meta.url);' },
    });
    return (await import(pathToFileURL(out).href)) as Tree;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const FIX = "export function add(a, b) {\n  return a + b;\n}\n";

test("every state × action: the tree offers exactly what the farm accepts, and the farm refuses the rest with the table's reason", async (t) => {
  const tree = await loadTree();
  const repo = makeFixtureRepo(t);
  // A change that adds `slow` keeps its eval running (the unit stays `evaluating`); the rest are quick.
  writeFarmConfig(
    repo,
    `prloop:\n  eval:\n    - { name: tests, command: "if [ -f slow ]; then sleep 600; fi; node test/add.test.js", timeoutMs: 900000 }\nplanner: { enabled: false }\n`,
  );
  // A frontier model is configured (escalation is possible); it is never called here.
  const vaultVar = `OPTIMUS_TEST_SECRET_${randomBytes(4).toString("hex").toUpperCase()}`;
  process.env[`${vaultVar}_ANTHROPIC_KEY`] = "sk-ant-never-used";
  t.after(() => delete process.env[`${vaultVar}_ANTHROPIC_KEY`]);
  const { server: farm, adminToken: admin } = await startTestFarm(t, {
    repo,
    config: {
      heartbeatIntervalMs: 500,
      maxAttempts: 1,
      secrets: { vaults: { dev: { provider: "env", prefix: `${vaultVar}_` } } },
      gateway: { apiKey: "secrets-manager://dev/anthropic/key", baseUrl: "http://127.0.0.1:9" },
    },
  });
  // A person whose token may approve anything (protected paths too), so the tree hides nothing from them.
  const person: FarmClient = httpClientFor(
    farm.url,
    (await httpClientFor(farm.url, admin).admin.createToken.mutate({ role: "editor", name: "walker", approver: true })).token,
  );

  // Each task's goal says what its worker does: block (stay leased), fail, change, or hold a review.
  const blocked: Array<() => void> = [];
  const block = () => new Promise<never>((_, reject) => blocked.push(() => reject(new Error("test over"))));
  let workersStarted = false;
  const startTheWorkers = async () => {
    const coder = await tokenFor(farm.url, admin, "worker", "coders");
    const reviewer = await tokenFor(farm.url, admin, "worker", "reviewers");
    const agents = await startWorkers(
      farm.url,
      coder,
      [
        { nodeId: "coder", role: "codegen", max: 50 },
        { nodeId: "reviewer", role: "review", max: 50, token: reviewer },
      ],
      newLedger(),
      async (lease) => {
        const goal = lease.spec.goal;
        const base = (lease.context as { base?: { branch: string } } | undefined)?.base?.branch;
        if (lease.spec.role === "review") {
          if (goal.includes("[review-block]")) return block();
          return { outcome: "succeeded", summary: "", review: { verdict: "approve", risk: "low", summary: "fine", comments: [] } };
        }
        if (goal.includes("[block]")) return block();
        if (goal.includes("[fail]")) return { outcome: "failed", summary: "could not do it" };
        if (goal.includes("[noop]")) return { outcome: "succeeded", summary: "nothing to change" };
        // Each change adds its own file, so changes merged earlier in the walk never make it empty.
        const files: Record<string, string> = { "src/add.js": FIX, [`src/${lease.taskId}.js`]: `export const task = "${lease.taskId}";\n` };
        if (goal.includes("[slow]")) files["slow"] = "1\n";
        if (goal.includes("[protected]")) files[`.github/workflows/${lease.taskId}.yml`] = "on: [push, pull_request]\n";
        return { outcome: "succeeded", summary: "done", patch: patchFor(repo, base!, files) };
      },
    );
    t.after(async () => {
      for (const b of blocked) b();
      await stopAll(agents);
    });
    workersStarted = true;
  };

  let n = 0;
  const unitOf = (taskId: string, unitId: string) => person.units.get.query({ taskId, unitId });
  const until = (taskId: string, unitId: string, state: UnitState) =>
    waitFor(
      async () => {
        const u = await unitOf(taskId, unitId);
        return u.state === state ? u : null;
      },
      `${taskId}/${unitId} to be ${state}`,
      60_000,
    ).catch(async (e: Error) => {
      throw new Error(`${e.message}; it is ${JSON.stringify(await unitOf(taskId, unitId))}`);
    });
  const task = async (tag: string, extra: { review?: string } = {}) => {
    const id = `walk-${++n}`;
    const files = [
      "src/add.js",
      `src/${id}.js`,
      ...(tag === "[slow]" ? ["slow"] : []),
      ...(tag === "[protected]" ? [`.github/workflows/${id}.yml`] : []),
    ];
    await person.tasks.create.mutate({ id, title: `walk ${n}`, units: [{ id: "u", goal: `${tag} ${extra.review ?? ""}`, files }] });
    return id;
  };
  /** A fresh unit brought to `state` through the farm, as its workers and people would. */
  const reach = async (state: UnitState): Promise<{ taskId: string; unitId: string }> => {
    const code = ["src/add.js"];
    switch (state) {
      case "planned": {
        const id = `walk-${++n}`;
        await person.tasks.create.mutate({
          id,
          title: `walk ${n}`,
          units: [
            { id: "first", goal: "[block]", files: code },
            { id: "u", goal: "[block]", files: code, dependsOn: ["first"] },
          ],
        });
        return { taskId: id, unitId: "u" };
      }
      case "ready":
        return { taskId: await task("[block]"), unitId: "u" };
      case "leased": {
        const id = await task("[block]");
        await until(id, "u", "leased");
        return { taskId: id, unitId: "u" };
      }
      case "evaluating": {
        const id = await task("[slow]");
        await until(id, "u", "evaluating");
        return { taskId: id, unitId: "u" };
      }
      case "reviewing": {
        const id = await task("[change]", { review: "[review-block]" });
        await until(id, "u", "reviewing");
        return { taskId: id, unitId: "u" };
      }
      case "awaiting_approval": {
        const id = await task("[protected]");
        await until(id, "u", "awaiting_approval");
        return { taskId: id, unitId: "u" };
      }
      case "merged": {
        const id = await task("[change]");
        await until(id, "u", "merged");
        return { taskId: id, unitId: "u" };
      }
      case "completed": {
        const id = await task("[noop]");
        await until(id, "u", "completed");
        return { taskId: id, unitId: "u" };
      }
      case "dead": {
        const id = await task("[fail]");
        await until(id, "u", "dead");
        return { taskId: id, unitId: "u" };
      }
      case "cancelled": {
        const id = await task("[block]");
        await person.units.cancel.mutate({ taskId: id, unitId: "u", reason: "to walk the cancelled state" });
        return { taskId: id, unitId: "u" };
      }
      default:
        throw new Error(`the walk cannot reach ${state}`);
    }
  };

  /** Does `action` through the API as the tree's button would; the farm's answer. */
  const act = async (action: UnitAction, ref: { taskId: string; unitId: string }): Promise<unknown> => {
    const u = await unitOf(ref.taskId, ref.unitId);
    // A decision names the change the person saw; a unit without one gets a well-formed version.
    const seen = u.evaluation
      ? { attempt: u.evaluation.attempt, head: u.evaluation.commit }
      : { attempt: Math.max(1, u.attempt), head: "0".repeat(40) };
    const call = {
      approve: () => person.reviews.approve.mutate({ ...ref, ...seen }),
      reject: () => person.reviews.reject.mutate({ ...ref, ...seen, reason: "walked" }),
      request_changes: () => person.reviews.requestChanges.mutate({ ...ref, ...seen, comments: [{ body: "walked" }] }),
      escalate: () => person.units.escalate.mutate({ ...ref, reason: "walked" }),
      retry: () => person.units.retry.mutate(ref),
      cancel: () => person.units.cancel.mutate({ ...ref, reason: "walked" }),
    }[action];
    return call().then(
      () => "accepted",
      (e: unknown) => e,
    );
  };

  const offered = (u: UnitLiveView, withFarmActions: boolean): UnitAction[] => {
    const view = withFarmActions ? u : (({ actions: _a, ...rest }) => rest as UnitLiveView)(u);
    const flags = new Set(
      tree.unitPresentation(view, { now: Date.now(), live: true, approver: true, frontierConfigured: true }).contextValue.split(" "),
    );
    return UnitAction.options.filter((a) => flags.has(tree.ACTION_FLAGS[a]));
  };

  const walked: string[] = [];
  const walk = async (state: UnitState) => {
    const first = await reach(state);
    const u = await unitOf(first.taskId, first.unitId);
    assert.equal(u.state, state);
    const offers = offered(u, true);
    assert.deepEqual(offers, u.actions, `${state}: the tree offers the farm's actions`);
    // The tree's own reading of the table (used when a farm sends no actions) agrees too.
    assert.deepEqual(offered(u, false), offers, `${state}: the tree's fallback offers the same actions`);
    for (const action of UnitAction.options.filter((a) => !offers.includes(a))) {
      const answer = await act(action, first);
      assert.equal(errorCode(answer), "CONFLICT", `${state} × ${action}: not offered, so the farm must refuse it (got ${String(answer)})`);
      assert.match(
        (answer as Error).message,
        /^cannot [a-z ]+ unit walk-\d+\/u: /,
        `${state} × ${action}: refused with the table's sentence`,
      );
      const after = await unitOf(first.taskId, first.unitId);
      assert.deepEqual([after.state, after.attempt], [u.state, u.attempt], `${state} × ${action}: a refusal changes nothing`);
      walked.push(`${state} × ${action}: refused`);
    }
    for (const [i, action] of offers.entries()) {
      const ref = i === 0 ? first : await reach(state);
      const answer = await act(action, ref);
      assert.equal(answer, "accepted", `${state} × ${action}: offered, so the farm must accept it (got ${String(answer)})`);
      walked.push(`${state} × ${action}: accepted`);
    }
  };

  // Before any worker runs, units wait as planned and ready.
  for (const state of ["planned", "ready"] as const) await walk(state);
  for (let i = 1; i <= n; i++) await person.tasks.cancel.mutate({ taskId: `walk-${i}` }).catch(() => undefined);
  await startTheWorkers();
  assert.ok(workersStarted);
  for (const state of UnitState.options) if (state !== "planned" && state !== "ready" && state !== "submitted") await walk(state);

  assert.equal(walked.length, (UnitState.options.length - 1) * UnitAction.options.length, "every pair but `submitted`'s was walked");
});
