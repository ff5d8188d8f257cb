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
import { startLocalWorkers } from "./local-workers.js";
import { openModel, type ModelOpenOptions } from "./worker-command.js";
import { gpuChoice } from "./gpu-option.js";
import { printable } from "./printable.js";
import { exitSoon, firstStopSignal, STOP_DEADLINE_MS, within } from "./shutdown.js";
import { hostname } from "node:os";
import { cliLogs } from "./logging.js";

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
  workerContextSize?: string;
  workerGpu?: string;
  logLevel?: string;
  logFile?: string;
}

const int = (v: string | undefined, name: string): number | undefined => {
  if (v === undefined) return undefined;
  if (!/^\d+$/.test(v)) throw new CliError(`--${name} must be a whole number, got '${v}'`, 2);
  return Number(v);
};

/** `farm up --workers N`: how many, and how their model opens; null without --workers. Refuses worker flags without it. */
function localWorkerSettings(o: FarmUpOptions, config: ServerConfig): { count: number; open: ModelOpenOptions } | null {
  const count = int(o.workers, "workers") ?? 0;
  if (count === 0) {
    const given = (
      [
        ["--worker-model", o.workerModel],
        ["--worker-model-name", o.workerModelName],
        ["--threads", o.threads],
        ["--worker-context-size", o.workerContextSize],
        ["--worker-gpu", o.workerGpu],
      ] as const
    ).find(([, v]) => v !== undefined);
    if (given)
      throw new CliError(
        `${given[0]} is for the farm's own workers, and none run without --workers <n>: add --workers 2 (one codegen, one review), or run \`optimus worker\` on a node`,
        2,
      );
    return null;
  }
  if (!o.workerModel)
    throw new CliError(
      `--workers ${count} needs a model for them: pass --worker-model <file.gguf> or --worker-model http://host:port/v1 (llama-server, Ollama, vLLM, LM Studio); download a GGUF with \`optimus model pull <uri>\``,
      2,
    );
  const contextSize = int(o.workerContextSize, "worker-context-size") ?? config.localWorkers.contextSize;
  return {
    count,
    open: {
      threads: int(o.threads, "threads"),
      ...(contextSize ? { contextSize } : {}),
      contextHint: "--worker-context-size <n> (or localWorkers.contextSize in the farm's config.yaml)",
      gpu: gpuChoice(o.workerGpu, "--worker-gpu"),
      gpuFlag: "--worker-gpu",
    },
  };
}

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
  const workers = localWorkerSettings(o, config);
  const cli = cliLogs(o);
  const { say, flush } = cli;
  // Lines still buffered are written before the command's one-line error (printed by main).
  try {
    // The model is opened before the farm starts, so a missing model fails fast with its one line.
    const model = workers ? await openModel(o.workerModel, o.workerModelName, workers.open, "--worker-model") : null;
    // Signals are watched from the first time this node serves or stands by: the first stops it
    // cleanly, a second exits at once.
    const stopping = new AbortController();
    let stopSignal: Promise<NodeJS.Signals> | null = null;
    const watchStop = () => {
      if (!stopSignal) {
        stopSignal = firstStopSignal((m) => {
          say.warn(m);
          flush();
        });
        void stopSignal.then(() => stopping.abort());
      }
      return stopSignal;
    };
    // Farm nodes sharing a PostgreSQL store: one leads, the others stand by (answering on their port
    // with where the leader is) and take over when its lease runs out; a leader that loses the lead
    // steps down and stands by again.
    for (let round = 0; ; round++) {
      const farm = await startOrStandBy(o, repo, config, cli, model, round, stopping.signal, watchStop);
      if (farm === "stopped") break;
      if (farm === "stand-by") continue;
      const lost = await serve(farm, o, repo, config, cli, model, workers, watchStop);
      if (!lost) return;
      say.warn(`stepped down: ${printable(lost.message)}; standing by`);
    }
    say.info("farm stopped");
    flush();
    exitSoon(0);
  } catch (err) {
    flush();
    throw err;
  }
}

type Model = Awaited<ReturnType<typeof openModel>> | null;

/** Starts the farm; when another node leads, stands by until its lease runs out ("stand-by": try again) or a signal ("stopped"). */
async function startOrStandBy(
  o: FarmUpOptions,
  repo: string,
  config: ServerConfig,
  { log, say, flush }: ReturnType<typeof cliLogs>,
  model: Model,
  round: number,
  signal: AbortSignal,
  watchStop: () => Promise<NodeJS.Signals>,
): Promise<Farm | "stand-by" | "stopped"> {
  // Through the log like every other line: a phase that takes a while says where it is every 2 s.
  let lastProgress = Date.now();
  const progress = (text: string) => {
    if (Date.now() - lastProgress < 2_000) return;
    lastProgress = Date.now();
    say.info(text);
  };
  const tokenFile = adminTokenFile(repo, config);
  let kept = false;
  try {
    return await startFarm({
      repo,
      config,
      log,
      resetAdminToken: round === 0 ? o.resetAdminToken : false,
      // Written before the farm listens: a start that fails on a busy port keeps the token it issued.
      keepAdminToken: (t) => {
        writeFileSync(tokenFile, t.token + "\n", { mode: 0o600 });
        chmodSync(tokenFile, 0o600); // also when the file was already there
        kept = true;
      },
      onProgress: (what, done, total) => progress(`${what}: ${done}${total ? `/${total}` : ""}`),
    });
  } catch (err) {
    // Another node leads (or took over while this one was starting): stand by.
    if (err instanceof NotLeaderError || err instanceof FencedError || err instanceof LeadLostError) {
      if (signal.aborted) return "stopped";
      void watchStop();
      const takeOver = await standBy({
        config,
        stateDir: stateDirOf(repo, config),
        version: FARM_VERSION,
        say: (line) => say.info(line),
        signal,
        firstReady: (url) => say.info({ url }, `Optimus farm standing by on ${url} (origin ${printable(repo)}): ${printable(err.message)}`),
      });
      if (!takeOver) return "stopped";
      say.info("the leader's lease ran out: taking over");
      return "stand-by";
    }
    await model?.close();
    flush();
    const e = err as NodeJS.ErrnoException;
    if (err instanceof FarmError) throw new CliError(err.message);
    if (err instanceof OriginError) throw new CliError(err.message, 2);
    if (e.code === "EADDRINUSE")
      throw new CliError(
        `port ${config.port} on ${config.host} is in use (is a farm already running? \`optimus status\` asks it); choose another with --port <n>` +
          (kept || existsSync(tokenFile)
            ? `; the admin token ${kept ? "it issued is kept" : "stays"} in ${tokenFile} (were it lost, \`optimus farm up --reset-admin-token\` issues a new one and revokes the old)`
            : `; the admin token is not in ${tokenFile}: \`optimus farm up --reset-admin-token\` issues a new one there and revokes the old`),
      );
    if (e.code === "SQLITE_BUSY") throw new CliError(`the journal in ${stateDirOf(repo, config)} is locked by another farm server`);
    throw err;
  }
}

/** Runs a started farm until a stop signal (then stops it cleanly) or until it stops by itself; a lost lead is returned. */
async function serve(
  farm: Farm,
  o: FarmUpOptions,
  repo: string,
  config: ServerConfig,
  { say, flush }: ReturnType<typeof cliLogs>,
  model: Model,
  workers: ReturnType<typeof localWorkerSettings>,
  watchStop: () => Promise<NodeJS.Signals>,
): Promise<LeadLostError | null> {
  const tokenFile = adminTokenFile(repo, config);
  const { startup } = farm;
  if (startup.staleLock) {
    const l = startup.staleLock;
    say.warn(
      `took over the farm lock left by a farm that is gone (pid ${l.pid ?? "?"}${l.host && l.host !== hostname() ? ` on ${printable(l.host)}` : ""}${l.since ? `, started ${l.since}` : ""}): it crashed or was killed; its journal is replayed`,
    );
  }
  if (startup.adminToken) {
    say.info(
      o.resetAdminToken
        ? `created a new admin token and revoked the farm's old one; it is in ${tokenFile} (readable by you only). The CLI uses it from this repository.`
        : `created the first admin token; it is in ${tokenFile} (readable by you only). The CLI uses it from this repository.`,
    );
  }
  const p = farm.services.state.projection;
  const i = startup.imports;
  if (i.restored.length) say.info(`rebuilt ${i.restored.length} task(s) from their manifest files (the journal did not know them)`);
  if (i.imported.length) say.info(`imported ${i.imported.length} new task manifest(s): ${printable(i.imported.join(", "))}`);
  // One warning per skipped manifest (the farm starts without it); file names and problems come from the repository.
  for (const r of i.rejected) say.warn(`skipped ${printable(r.problems[0] ?? r.file)}`);
  say.info(
    { url: farm.url, epoch: farm.epoch },
    `Optimus farm listening on ${farm.url} (origin ${printable(repo)}, epoch ${farm.epoch}, ${p.tasks.size} task(s), ${p.units.size} unit(s), ${startup.replayed} event(s) replayed${farm.tls ? `; TLS certificate pin ${farm.tls.pin}` : ""})`,
  );
  let stopWorkers: (() => Promise<void>) | null = null;
  // From here on a signal stops the farm cleanly (the local workers first: their checks and model
  // turns end, their leases are left to the farm), a second one exits at once.
  const stopSignal = watchStop();
  if (model && workers) {
    try {
      stopWorkers = await startLocalWorkers(farm, workers.count, model, (m) => say.info(printable(m, { multiline: true })));
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
    say.info(
      `${why}: stopping the farm (ending running checks and evals, writing manifests and a snapshot; Ctrl-C again to exit at once)…`,
    );
    const clean = await within(STOP_DEADLINE_MS, async () => {
      await stopWorkers?.().catch(() => undefined);
      await farm.close();
    });
    if (!clean) {
      say.error(
        `the farm did not stop within ${STOP_DEADLINE_MS / 1000} s; exiting anyway (the journal is safe: the next start replays it)`,
      );
      flush();
      exitSoon(1);
      return null;
    }
  }
  const { error } = await farm.stopped;
  if (error) {
    await within(1_000, () => stopWorkers?.() ?? Promise.resolve());
    if (error instanceof LeadLostError && !why) return error;
    flush();
    throw new CliError(`the farm stopped: ${error.message}`, 70);
  }
  say.info("farm stopped");
  flush();
  exitSoon(0);
  return null;
}
