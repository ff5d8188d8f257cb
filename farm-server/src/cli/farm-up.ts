import { chmodSync, existsSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { repoSlot } from "../home/farm-home.js";
import type { ServerConfig } from "@optimus/shared";
import { startFarm, stateDirOf, type Farm } from "../farm.js";
import { NotLeaderError } from "../store/leader-lease.js";
import { FencedError } from "../store/journal.js";
import { LeadLostError } from "../store/lead-keeper.js";
import { FARM_VERSION } from "../version.js";
import { standBy } from "./standby.js";
import { adminTokenFile, loadConfig, resolveRepo } from "./context.js";
import { CliError } from "./errors.js";
import { FarmError } from "../errors/farm-error.js";
import { OriginError } from "../delivery/origin.js";
import { progressLine } from "./progress.js";
import { startLocalWorkers } from "./local-workers.js";
import { openModel } from "./worker-command.js";
import { printable } from "./printable.js";
import { exitSoon, firstStopSignal, STOP_DEADLINE_MS, within } from "./shutdown.js";
import { hostname } from "node:os";

export interface FarmUpOptions {
  repo?: string;
  origin?: string;
  config?: string;
  port?: string;
  host?: string;
  heartbeatMs?: string;
  maxAttempts?: string;
  resetAdminToken?: boolean;
  workers?: string;
  workerModel?: string;
  workerModelName?: string;
  threads?: string;
}

const int = (v: string | undefined, name: string): number | undefined => {
  if (v === undefined) return undefined;
  if (!/^\d+$/.test(v)) throw new CliError(`--${name} must be a whole number, got '${v}'`, 2);
  return Number(v);
};

/** `optimus farm up`: runs the farm server in the foreground until Ctrl-C or SIGTERM. */
export async function farmUp(o: FarmUpOptions): Promise<void> {
  // The origin: --origin, else the repository folder (--repo, or the work tree here) taken as the origin.
  const repo = o.origin ? o.origin.trim() : resolveRepo(o.repo);
  const overrides: Partial<ServerConfig> = {
    port: int(o.port, "port"),
    host: o.host,
    heartbeatIntervalMs: int(o.heartbeatMs, "heartbeat-ms"),
    maxAttempts: int(o.maxAttempts, "max-attempts"),
  };
  // Settings: --config, else the farm's own file for this origin in its home, else the
  // repository folder's .optimus/config.yaml (a --repo folder, or a local origin's work tree).
  const homeConfig = join(repoSlot(repo), "config.yaml");
  const folder = o.repo
    ? resolveRepo(o.repo)
    : o.origin
      ? /^[a-z][a-z0-9+.-]*:\/\/|^[^/@:]+@[^/:]+:/i.test(repo)
        ? null
        : resolve(repo)
      : repo;
  const config = loadConfig(folder, overrides, o.config ?? (existsSync(homeConfig) ? homeConfig : undefined));
  const workerCount = int(o.workers, "workers") ?? 0;
  // The model is opened before the farm starts, so a missing model fails fast with its one line.
  const model = workerCount > 0 ? await openModel(o.workerModel, o.workerModelName, int(o.threads, "threads")) : null;
  const progress = progressLine(process.stderr);
  // Signals are watched from the first time this node serves or stands by: the first stops it
  // cleanly, a second exits at once.
  const stopping = new AbortController();
  let stopSignal: Promise<NodeJS.Signals> | null = null;
  const watchStop = () => {
    if (!stopSignal) {
      stopSignal = firstStopSignal((m) => console.error(m));
      void stopSignal.then(() => stopping.abort());
    }
    return stopSignal;
  };
  // Farm nodes sharing a PostgreSQL store: one leads, the others stand by (answering on their port
  // with where the leader is) and take over when its lease runs out; a leader that loses the lead
  // steps down and stands by again.
  for (let round = 0; ; round++) {
    let farm;
    try {
      farm = await startFarm({
        repo,
        config,
        resetAdminToken: round === 0 ? o.resetAdminToken : false,
        onProgress: (what, done, total) => progress.update(`${what}: ${done}${total ? `/${total}` : ""}`),
      });
    } catch (err) {
      progress.done();
      // Another node leads (or took over while this one was starting): stand by.
      if (err instanceof NotLeaderError || err instanceof FencedError || err instanceof LeadLostError) {
        if (stopping.signal.aborted) break;
        watchStop();
        const takeOver = await standBy({
          config,
          stateDir: stateDirOf(repo, config),
          version: FARM_VERSION,
          say: (line) => console.error(line),
          signal: stopping.signal,
          firstReady: (url) => console.error(`Optimus farm standing by on ${url} (origin ${printable(repo)}): ${printable(err.message)}`),
        });
        if (!takeOver) break;
        console.error("the leader's lease ran out: taking over");
        continue;
      }
      const e = err as NodeJS.ErrnoException;
      if (err instanceof FarmError) throw new CliError(err.message);
      if (err instanceof OriginError) throw new CliError(err.message, 2);
      if (e.code === "EADDRINUSE")
        throw new CliError(`port ${config.port} on ${config.host} is in use (is a farm already running?); choose another with --port`);
      if (e.code === "SQLITE_BUSY") throw new CliError(`the journal in ${stateDirOf(repo, config)} is locked by another farm server`);
      throw err;
    }
    progress.done();
    const lost = await serve(farm, o, repo, config, model, workerCount, watchStop, round);
    if (!lost) return;
    console.error(`stepped down: ${printable(lost.message)}; standing by`);
  }
  console.error("farm stopped");
  exitSoon(0);
}

/** Runs a started farm until a stop signal (then stops it cleanly) or until it stops by itself; a lost lead is returned. */
async function serve(
  farm: Farm,
  o: FarmUpOptions,
  repo: string,
  config: ServerConfig,
  model: Awaited<ReturnType<typeof openModel>> | null,
  workerCount: number,
  watchStop: () => Promise<NodeJS.Signals>,
  round: number,
): Promise<LeadLostError | null> {
  const { startup } = farm;
  if (startup.staleLock) {
    const l = startup.staleLock;
    console.error(
      `took over the farm lock left by a farm that is gone (pid ${l.pid ?? "?"}${l.host && l.host !== hostname() ? ` on ${printable(l.host)}` : ""}${l.since ? `, started ${l.since}` : ""}): it crashed or was killed; its journal is replayed`,
    );
  }
  if (startup.adminToken) {
    const file = adminTokenFile(repo, config);
    writeFileSync(file, startup.adminToken.token + "\n", { mode: 0o600 });
    chmodSync(file, 0o600); // also when the file was already there
    console.error(
      `created ${o.resetAdminToken && round === 0 ? "a new" : "the first"} admin token; it is in ${file} (readable by you only). The CLI uses it from this repository.`,
    );
  }
  const p = farm.services.state.projection;
  const i = startup.imports;
  if (i.restored.length) console.error(`rebuilt ${i.restored.length} task(s) from their manifest files (the journal did not know them)`);
  if (i.imported.length) console.error(`imported ${i.imported.length} new task manifest(s): ${printable(i.imported.join(", "))}`);
  // One warning per skipped manifest (the farm starts without it); file names and problems come from the repository.
  for (const r of i.rejected) console.error(`skipped ${printable(r.problems[0] ?? r.file)}`);
  console.error(
    `Optimus farm listening on ${farm.url} (origin ${printable(repo)}, epoch ${farm.epoch}, ${p.tasks.size} task(s), ${p.units.size} unit(s), ${startup.replayed} event(s) replayed)`,
  );
  let stopWorkers: (() => Promise<void>) | null = null;
  // From here on a signal stops the farm cleanly (the local workers first: their checks and model
  // turns end, their leases are left to the farm), a second one exits at once.
  const stopSignal = watchStop();
  if (model) {
    try {
      stopWorkers = await startLocalWorkers(farm, workerCount, model, (m) => console.error(printable(m, { multiline: true })));
    } catch (err) {
      // Never leave a running farm (and its lock) behind a failed start.
      await within(STOP_DEADLINE_MS, async () => {
        await model.close();
        await farm.close();
      });
      throw new CliError(`the local workers could not start: ${(err as Error).message}`);
    }
  }
  const why = await Promise.race([stopSignal, farm.stopped.then(() => null)]);
  if (why) {
    console.error(
      `${why}: stopping the farm (ending running checks and evals, writing manifests and a snapshot; Ctrl-C again to exit at once)…`,
    );
    const clean = await within(STOP_DEADLINE_MS, async () => {
      await stopWorkers?.().catch(() => undefined);
      await farm.close();
    });
    if (!clean) {
      console.error(
        `the farm did not stop within ${STOP_DEADLINE_MS / 1000} s; exiting anyway (the journal is safe: the next start replays it)`,
      );
      exitSoon(1);
      return null;
    }
  }
  const { error } = await farm.stopped;
  if (error) {
    await within(1_000, () => stopWorkers?.() ?? Promise.resolve());
    if (error instanceof LeadLostError && !why) return error;
    throw new CliError(`the farm stopped: ${error.message}`, 70);
  }
  console.error("farm stopped");
  exitSoon(0);
  return null;
}
