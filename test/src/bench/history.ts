// Measure: what a history of N finished units costs a farm that runs as its own process (`farm up`):
// time to serving, resident memory, the editor's first views message and the stop — first with the
// history hot (retention 365 days: how every farm behaved before finished tasks were archived),
// then after the archiver moved every finished task out of the in-memory state (retention 0).
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { FarmEvent, ServerConfigInput, UnitSpecInput } from "@optimus/shared";
import { createFarmClient, journalPathOf, type Lease } from "@optimus/farm-server";
import { tokenFor } from "../helpers/clients.js";
import { makeRepo } from "../helpers/repo.js";
import { startTestFarm, type ProcessTestFarm } from "../helpers/test-farm.js";
import { sleep, waitFor } from "../helpers/wait.js";
import { msSince, withTimeout } from "./stats.js";

export interface Figures {
  startMs: number;
  rssMB: number;
  firstViewsBytes: number;
  stopMs: number;
}
export interface HistoryBenchResult {
  units: number;
  tasks: number;
  buildMs: number;
  hot: Figures;
  archived: Figures;
  archiveMs: number;
}

const DAY = 24 * 3_600_000;
const UNITS_PER_TASK = 10;
const UNIT_GOAL = "Benchmark unit: do nothing useful, quickly. ".repeat(2).trim();
/** a large history replays for a while before the banner; a slow start is a figure, not a failure */
const START_TIMEOUT_MS = 600_000;

/** The farm's settings with a history retention (the test farm gives them to `farm up` as its config file). */
const settings = (retentionMs: number, sweepEveryMs: number): ServerConfigInput => ({
  files: { mirror: false, commit: false, debounceMs: 0 },
  prloop: { reviewEveryCodegenUnit: false },
  planner: { enabled: false },
  history: { retentionMs, sweepEveryMs },
});

/** Resident memory of a process, from the kernel (not the heap: SQLite's cache and native memory count too). */
function rssMB(pid: number): number {
  const m = /^VmRSS:\s+(\d+)\s+kB$/m.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
  if (!m) throw new Error(`no VmRSS for pid ${pid}`);
  return Number(m[1]) / 1024;
}

/** Sum over label sets of one sample of the farm's Prometheus text (undefined: not exposed). */
function metric(text: string, name: string): number | undefined {
  let sum: number | undefined;
  for (const line of text.split("\n")) {
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+(\S+)/.exec(line);
    if (m && m[1] === name) sum = (sum ?? 0) + Number(m[3]);
  }
  return sum;
}

/** Bytes of the first `views.stream` message an editor gets (a fresh editor: no cursor). */
async function firstViewsBytes(fp: ProcessTestFarm): Promise<number> {
  const token = await tokenFor(fp.url, fp.adminToken, "editor", "bench");
  const ws = createFarmClient({ url: fp.url, token, transport: "ws" });
  try {
    const first = new Promise<unknown>((resolve, reject) => {
      const sub = ws.client.views.stream.subscribe(
        { lastEventId: null },
        {
          onData: (env) => {
            sub.unsubscribe();
            resolve((env as { data: unknown }).data);
          },
          onError: reject,
        },
      );
    });
    return Buffer.byteLength(JSON.stringify(await withTimeout(first, 120_000, () => "the first views.stream message")));
  } finally {
    ws.close();
  }
}

const timed = async (f: () => Promise<void>): Promise<number> => {
  const t0 = process.hrtime.bigint();
  await f();
  return msSince(t0);
};

/** RSS once the farm has been idle ~2 s after its start (the start's garbage collected or not, as an operator sees it). */
async function idleRss(fp: ProcessTestFarm): Promise<number> {
  await sleep(2_000);
  return rssMB(fp.pid!);
}

/** Stops a farm (SIGTERM, waits for the exit); a stop that hit a deadline is said, since the figure is then a cap. */
async function stopMs(fp: ProcessTestFarm, log: (m: string) => void): Promise<number> {
  const ms = await timed(() => fp.stop());
  if (/did not stop within/.test(fp.log))
    log(
      `  the farm did not stop cleanly: ${fp.log
        .split("\n")
        .filter((l) => /did not stop/.test(l))
        .join(" / ")}`,
    );
  return ms;
}

/** A farm process's whole round: start, idle RSS, the first views message, stop. */
async function figures(start: () => Promise<ProcessTestFarm>, log: (m: string) => void): Promise<Figures> {
  let fp!: ProcessTestFarm;
  const startMs = await timed(async () => void (fp = await start()));
  const rss = await idleRss(fp);
  const bytes = await firstViewsBytes(fp);
  const f = { startMs, rssMB: rss, firstViewsBytes: bytes, stopMs: await stopMs(fp, log) };
  log(
    `  start ${f.startMs.toFixed(0)} ms, RSS ${f.rssMB.toFixed(1)} MB, first views message ${f.firstViewsBytes} B, stop ${f.stopMs.toFixed(0)} ms`,
  );
  return f;
}

/** Drives `tasks` tasks of 10 units to completed through the in-process core, as store-throughput.ts does. */
async function buildHistory(repo: string, tasks: number, log: (m: string) => void): Promise<void> {
  // Its first admin token goes where `farm up` writes it: the processes that follow issue none (tokens exist).
  const farm = await startTestFarm(undefined, { repo, config: settings(365 * DAY, 60_000) });
  const { state, tasks: cmds, leases, dispatcher } = farm.server.services;
  const total = tasks * UNITS_PER_TASK;
  let completed = 0;
  let lastProgress = Date.now();
  state.on("committed", (es: FarmEvent[]) => {
    lastProgress = Date.now();
    for (const e of es) if (e.type === "unit_completed") completed++;
  });
  let rejected = 0;
  const nodeId = "bench-worker";
  await leases.register({ nodeId, role: "codegen", maxConcurrentTasks: 64, model: { primary: "bench" } }, "tok", "bench");
  const detach = dispatcher.attach(nodeId, {
    push(lease: Lease) {
      leases
        .submit(
          nodeId,
          { taskId: lease.taskId, unitId: lease.unitId, attempt: lease.attempt, leaseId: lease.leaseId },
          { outcome: "succeeded", summary: "" },
        )
        .catch(() => rejected++);
    },
  });
  try {
    const unitsOf = (t: number): UnitSpecInput[] =>
      Array.from({ length: UNITS_PER_TASK }, (_, i) => ({ id: `u${i}`, goal: `${UNIT_GOAL} #${t}.${i}` }));
    for (let t = 0; t < tasks; t++) {
      await cmds.create({ id: `hist-${t}`, title: `history task ${t}`, units: unitsOf(t), source: "api" }, "bench");
      if ((t + 1) % 1_000 === 0) log(`  created ${t + 1}/${tasks} tasks, ${completed} units completed`);
    }
    // Done when every unit completed; a core that stops committing for 10 s fails the run instead of hanging it.
    await waitFor(() => completed >= total || Date.now() - lastProgress > 10_000, `${total} units completed`, 30 * 60_000, 100);
    if (completed < total)
      throw new Error(`history not built: no commit for 10 s at ${completed}/${total} units completed, ${rejected} submissions rejected`);
    await state.settle();
    const p = state.projection;
    const unfinished = [...p.tasks.values()].filter((t) => p.taskView(t).state !== "completed").length;
    if (unfinished > 0) throw new Error(`${unfinished} of ${tasks} tasks are not completed after all their units completed`);
  } finally {
    detach();
    await farm.stop();
  }
}

const journalMB = (repo: string): string => {
  const j = journalPathOf(repo, {});
  const size = (f: string) => (existsSync(f) ? statSync(f).size : 0);
  return ((size(j) + size(`${j}-wal`)) / 2 ** 20).toFixed(1);
};

export async function benchHistory(units: number, log: (msg: string) => void): Promise<HistoryBenchResult> {
  const tasks = Math.ceil(units / UNITS_PER_TASK);
  const repo = makeRepo(undefined, "optimus-bench-history-");
  // The farm's home (journal, tokens, clone) for this repository: read by the in-process farm, by this
  // process's test farm (its admin token file) and, inherited and passed explicitly, by `farm up`.
  const home = mkdtempSync(join(tmpdir(), "optimus-bench-history-home-"));
  const prevHome = process.env.OPTIMUS_HOME;
  process.env.OPTIMUS_HOME = home;
  const env = { OPTIMUS_HOME: home };
  const running: ProcessTestFarm[] = [];
  const proc = (s: ServerConfigInput) => async () => {
    const fp = await startTestFarm(undefined, { mode: "process", repo, config: s, env, startTimeoutMs: START_TIMEOUT_MS });
    running.push(fp);
    return fp;
  };
  try {
    log(`history bench: ${tasks} tasks × ${UNITS_PER_TASK} units`);
    const buildMs = await timed(() => buildHistory(repo, tasks, log));
    log(`  built in ${buildMs.toFixed(0)} ms; journal ${journalMB(repo)} MB`);

    log("hot (retention 365 days):");
    const hot = await figures(proc(settings(365 * DAY, 60_000)), log);

    // Retention 0: the archiver's sweep at start finds every task due and archives it in batches.
    log("archiving (retention 0):");
    const t0 = process.hrtime.bigint();
    const fp = await proc(settings(0, 1_000))();
    const startedMs = msSince(t0);
    await waitFor(
      async () => metric(await (await fetch(`${fp.url}/metrics`)).text(), "optimus_units") === 0,
      "every unit archived (optimus_units = 0)",
      30 * 60_000,
      100,
    );
    const archiveMs = msSince(t0);
    const rss = await idleRss(fp);
    const stop = await stopMs(fp, log);
    log(
      `  start ${startedMs.toFixed(0)} ms, archived ${archiveMs.toFixed(0)} ms after spawn, RSS ${rss.toFixed(1)} MB, stop ${stop.toFixed(0)} ms; journal ${journalMB(repo)} MB`,
    );

    log("restart with all history archived:");
    const archived = await figures(proc(settings(0, 1_000)), log);
    return { units: tasks * UNITS_PER_TASK, tasks, buildMs, hot, archived, archiveMs };
  } finally {
    for (const fp of running) await fp.stop().catch(() => undefined);
    if (prevHome === undefined) delete process.env.OPTIMUS_HOME;
    else process.env.OPTIMUS_HOME = prevHome;
    if (process.env.OPTIMUS_KEEP_TEST_REPOS) log(`kept the repository ${repo} and the farm's home ${home}`);
    else for (const d of [repo, home]) rmSync(d, { recursive: true, force: true });
  }
}

if (process.argv[1]?.endsWith("history.js")) {
  benchHistory(Number(process.env.UNITS ?? 10_000), console.error).then(
    (r) => console.log(JSON.stringify(r, null, 2)),
    (err) => {
      console.error(err);
      process.exitCode = 1;
    },
  );
}
