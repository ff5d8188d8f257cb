import { availableParallelism, hostname } from "node:os";
import { join } from "node:path";
import { pino, type Logger } from "pino";
import { effectiveLeaseTtl, noWorkerConnected, type ServerConfig } from "@optimus/shared";
import { startApiServer, type ApiServer } from "./api/http-server.js";
import { loadFarmTls } from "./tls/farm-tls.js";
import { createMetrics } from "./api/metrics.js";
import type { FarmServices } from "./api/services.js";
import { Gateway } from "./gateway/gateway.js";
import { startEgressProxy } from "./egress/egress-proxy.js";
import { Redactor, SecretResolver } from "./secrets/index.js";
import type { IssuedToken } from "./auth/tokens.js";
import { openFarmStores } from "./farm-stores.js";
import { FarmState } from "./core/farm-state.js";
import { LeaseCommands } from "./core/lease-commands.js";
import { TaskCommands } from "./core/task-commands.js";
import { Dispatcher } from "./dispatch/dispatcher.js";
import { ManifestMirror } from "./files/manifest-mirror.js";
import { SessionNotes } from "./files/session-notes.js";
import { HistoryArchiver } from "./core/history-archiver.js";
import { importManifests, type ImportReport } from "./files/rehydrate.js";
import { acquireStateLock } from "./store/state-lock.js";
import { FarmRepo } from "./git/farm-repo.js";
import { Git } from "./git/safe-git.js";
import { resolveSandbox } from "./sandbox/index.js";
import { cloneDirFor, filesDirFor, prepareRepoHome, journalPathOf, repoSlot, stateDirOf } from "./home/farm-home.js";
import { OriginClone, parseOrigin, type OriginSpec } from "./delivery/origin.js";
import { BranchCutter } from "./prloop/branch-cutter.js";
import { createForgeDelivery } from "./delivery/forge-delivery.js";
import { manifestSources } from "./files/branch-sources.js";
import { FarmError } from "./errors/farm-error.js";
import { DepsCache } from "./setup/index.js";
import { randomBytes } from "node:crypto";
import { LOG_REDACT } from "./secrets/log-redaction.js";
import { logTransitions } from "./core/transition-log.js";
import { issueAdminToken } from "./auth/admin-token.js";
import { FarmLeadership } from "./farm-leadership.js";
import { createPrLoop } from "./farm-pr-loop.js";

export interface FarmOptions {
  /**
   * The origin: the team's repository (a git URL, or a folder — `--repo` — taken as the origin).
   * The farm works in its own clone of it, in its home; it never writes into a working tree.
   */
  repo: string;
  config: ServerConfig;
  log?: Logger;
  /** issue a new admin token even though tokens exist (the old admin token was lost) */
  resetAdminToken?: boolean;
  /** gets a newly issued admin token before the farm listens (a start failing later must not lose it) */
  keepAdminToken?: (token: IssuedToken) => void | Promise<void>;
  /** progress of long start-up work (replay, rebuild from files) */
  onProgress?: (what: string, done: number, total?: number) => void;
}

export interface Farm {
  url: string;
  port: number;
  epoch: number;
  services: FarmServices;
  startup: {
    replayed: number;
    snapshotDiscarded: boolean;
    imports: ImportReport;
    adminToken?: IssuedToken;
    staleLock?: { pid?: number; host?: string; since?: string };
  };
  /** with `tls`: the certificate it serves (clients pin `pin`) */
  tls?: { pin: string; certFile: string; expiresAt: number };
  /** resolves when the farm stopped: by `close()`, or by a fatal journal error (fail-stop) */
  stopped: Promise<{ error?: Error }>;
  close(): Promise<void>;
}

/** Where other machines reach this node: the configured URL, else its listening address (a wildcard named by this host). */
export function advertisedUrl(config: ServerConfig, port: number): string {
  if (config.advertiseUrl) return config.advertiseUrl.replace(/\/+$/, "");
  const host = /^(0\.0\.0\.0|::)$/.test(config.host) ? hostname() : config.host;
  return `${config.tls ? "https" : "http"}://${host.includes(":") ? `[${host}]` : host}:${port}`;
}

/** How long live leases are left alone after a start, for their workers to reconnect (at least one lease's time). */
const START_GRACE_MS = 3_000;

/** The origin as the farm reads it: a path or URL; a folder that is no git repository has none. */
async function originOf(repo: string): Promise<OriginSpec | null> {
  let spec: OriginSpec;
  try {
    spec = parseOrigin(repo);
  } catch (err) {
    throw new FarmError("invalid", (err as Error).message);
  }
  if (spec.local && !(await new Git(spec.url).isRepo())) return null;
  return spec;
}

/** The farm's state lives in its home, never in the repository (see home/farm-home.ts). */
// (where they always were for callers; they live with the rest of the home's layout)
export { journalPathOf, stateDirOf };

/** Starts a farm server on a repository: journal, projection, dispatcher, file mirror and API. */
export async function startFarm(opts: FarmOptions): Promise<Farm> {
  const { repo, config } = opts;
  const log = opts.log ?? pino({ level: process.env.OPTIMUS_LOG_LEVEL ?? "info", redact: LOG_REDACT }, pino.destination(2));
  // Evals run code a model wrote: without a sandbox the farm refuses to start rather than run them bare.
  if (config.prloop.eval.length > 0) {
    const sandbox = await resolveSandbox(config.sandbox, "evals");
    if (sandbox.note) log.warn(sandbox.note);
  }
  const { moved } = prepareRepoHome(repo, stateDirOf(repo, config));
  if (moved)
    log.warn(`moved the farm's state out of the repository: ${moved.from} → ${moved.to} (the farm keeps its state in its home now)`);
  const lock = acquireStateLock(stateDirOf(repo, config));
  if (lock.takenOver) log.info({ previous: lock.takenOver }, "took over the lock of a farm that is gone");
  try {
    const farm = await startLocked(opts, log, () => lock.release());
    lock.setUrl(farm.url, farm.tls?.pin);
    if (lock.takenOver) farm.startup.staleLock = lock.takenOver;
    return farm;
  } catch (err) {
    lock.release();
    throw err;
  }
}

async function startLocked(opts: FarmOptions, log: Logger, releaseLock: () => void): Promise<Farm> {
  const { repo, config } = opts;
  // Secrets are read at each call (store, frontier, origin) through the configured vaults and redacted
  // wherever the gateway writes text while a value is held.
  const redactor = new Redactor();
  const secrets = new SecretResolver(config.secrets, { redactor });
  // Read and checked before anything else opens: a bad certificate or key stops the start with one line.
  const tls = config.tls ? await loadFarmTls(config.tls, secrets) : undefined;
  const stores = await openFarmStores(config, stateDirOf(repo, config), journalPathOf(repo, config), secrets, (err) =>
    log.warn({ err: err.message }, "a PostgreSQL connection of the farm failed (it reconnects at the next query)"),
  );
  const { journal, tokens } = stores;
  if (stores.kind === "postgres") log.info({ store: stores.where }, "journal, tokens and escalations in PostgreSQL");
  const state = new FarmState(journal, config.snapshotEvery);
  let loaded: Awaited<ReturnType<FarmState["load"]>>;
  try {
    // On PostgreSQL this takes the lead, or throws NotLeaderError naming the node that holds it.
    loaded = await state.load((n) => opts.onProgress?.("replaying journal", n));
  } catch (err) {
    await stores.close().catch(() => undefined);
    throw err;
  }
  const { epoch, replayed, snapshotDiscarded } = loaded;
  logTransitions(state, log);
  const leadership = FarmLeadership.start(stores.lease, epoch);
  try {
    return await serve();
  } catch (err) {
    leadership?.stop();
    throw err;
  }

  async function serve(): Promise<Farm> {
    if (snapshotDiscarded) log.info("the saved snapshot is of another format (another version of Optimus): replayed the journal instead");
    const tasks = new TaskCommands(state, config);
    const leases = new LeaseCommands(state, config);
    let resolveStopped!: (v: { error?: Error }) => void;
    const stopped = new Promise<{ error?: Error }>((r) => (resolveStopped = r));
    const dispatcher = new Dispatcher(state, leases, {
      expiryScanMs: Math.max(10, Math.round(Math.min(config.heartbeatIntervalMs, effectiveLeaseTtl(config)) / 4)),
      onError: (err) => log.error({ err }, "dispatch failed"),
      // Without it a task waits in silence: the farm's terminal says what is missing and how to start it.
      onUnserved: (taskId, role) =>
        log.warn(
          { taskId, role },
          `task ${taskId} waits: ${noWorkerConnected(role)} — start one with \`optimus worker --role ${role} --model <file.gguf|url>\``,
        ),
    });
    await state.commit([{ type: "epoch_started", data: { epoch, pid: process.pid, host: hostname() } }], "farm");

    const filesDir = filesDirFor(repo);
    // The farm's own clone of the origin, in its home: fetched now, and before every branch it cuts and every merge.
    const origin = await originOf(repo);
    const authRef = config.origin.auth;
    const clone = origin ? new OriginClone(cloneDirFor(repo), origin, authRef ? () => secrets.resolve(authRef) : undefined) : null;
    if (clone) {
      opts.onProgress?.("fetching the origin", 0);
      try {
        const { created } = await clone.ensure();
        if (created) log.info({ origin: origin!.url, clone: clone.dir }, "cloned the origin into the farm's home");
      } catch (err) {
        throw new FarmError("unavailable", `the origin ${origin!.url} cannot be fetched: ${(err as Error).message.split("\n")[0]}`);
      }
    }
    const farmRepo = clone
      ? new FarmRepo(
          clone.dir,
          join(stateDirOf(repo, config), "worktrees"),
          origin!.local ? origin!.url : undefined,
          config.prloop.evalSlots ?? Math.max(2, availableParallelism()),
        )
      : null;
    const notes = new SessionNotes(state, filesDir, (msg, err) => log.warn({ err }, msg));
    const mirror = new ManifestMirror(state, {
      repo: filesDir,
      commit: config.files.commit,
      debounceMs: config.files.debounceMs,
      log: (msg, err) => log.warn({ err }, msg),
      extraPaths: async (taskId) => [
        ...(await notes.idle(), await notes.filesOf(taskId)),
        ...(state.projection.tasks.get(taskId)?.adrs ?? []),
      ],
      ...(farmRepo
        ? {
            commitFiles: async (taskId: string, paths: string[], message: string) => {
              const branch = `optimus/${taskId}`;
              if (!(await farmRepo.revParse(`refs/heads/${branch}`))) return; // delivered and deleted, or cancelled
              await farmRepo.commitFiles(branch, filesDir, paths, message);
            },
          }
        : {}),
    });
    // Aborted when the farm stops: running evals are killed rather than waited for (their units are
    // evaluated again after the restart).
    const shutdown = new AbortController();
    // Tasks' branches are cut off the hot path (creating a task runs no git); their units wait for them.
    const live = (taskId: string) => {
      const t = state.projection.tasks.get(taskId);
      return !!t && !t.cancelled && !t.merge?.commit;
    };
    const cutter = clone
      ? new BranchCutter({ gitDir: clone.dir, origin: clone, log, live, onReady: (ids) => dispatcher.release(ids) })
      : null;
    const prloop = createPrLoop({
      ...{ farmRepo, clone, cutter, repo, config, state, leases, log, notes, signal: shutdown.signal, mirror },
      ...(leadership ? { stillLeads: () => leadership.stillLeads() } : {}),
    });
    if (prloop && cutter) {
      leases.submissionHandler = prloop;
      dispatcher.gate = cutter;
      tasks.branches = { resolveTarget: (target) => cutter.resolveTarget(target), cut: (taskId, target) => cutter.add(taskId, target) };
    }
    // Delivery through the team's forge (a pull request per task, merges through its API): wired into
    // the PR loop before it starts; its webhook and polling once the API listens (farmUrl for links).
    let forgeUrl: string | undefined;
    const forgeDelivery =
      config.forge && prloop && farmRepo
        ? createForgeDelivery({
            config: { ...config, forge: config.forge },
            secrets,
            state,
            tasks,
            prloop,
            repo: farmRepo,
            log,
            farmUrl: () => forgeUrl,
          })
        : null;
    if (forgeDelivery) prloop!.useForge(forgeDelivery);
    // Task manifests the journal does not know: the farm's files, its branches and the origin's, the
    // origin's default branch, and (for a local origin) the files in its folder.
    const runImport = async () => {
      const sources = [filesDir];
      let done = () => undefined as void;
      let record = () => undefined as void;
      let delivered: Parameters<typeof importManifests>[4];
      let branches = 0;
      if (clone) {
        await clone
          .fetch()
          .catch((err: Error) => log.warn({ err: err.message }, "could not fetch the origin before reading its manifests"));
        const branch = await clone.defaultBranch();
        const ref = `refs/heads/${branch}`;
        const since = state.projection.imported?.ref === ref ? state.projection.imported.commit : undefined;
        const s = await manifestSources(
          clone.dir,
          join(stateDirOf(repo, config), "import"),
          branch,
          (id) => state.projection.tasks.has(id) || state.journal.isArchived(id),
          since,
        );
        sources.push(...s.dirs);
        branches = s.branches;
        delivered = s.delivered;
        done = s.done;
        // Recorded once the import is through, so a start that stopped midway reads them again.
        record = () => {
          if (s.defaultTip && s.defaultTip !== since)
            void state.commit([{ type: "manifests_imported", data: { ref, commit: s.defaultTip } }], "farm").catch(() => undefined);
        };
      }
      if (!origin || origin.local) sources.push(origin?.url ?? repo);
      try {
        const report = await importManifests(
          sources,
          state,
          tasks,
          (d, t) => opts.onProgress?.("importing task manifests", d, t),
          delivered,
        );
        record();
        return { ...report, branches };
      } finally {
        done();
      }
    };
    const imports = await runImport();
    for (const r of imports.rejected) log.warn({ file: r.file, problems: r.problems }, `manifest not imported: ${r.problems[0]}`);
    // Live tasks whose branch is missing (created just before a crash, or the home was rebuilt): cut now.
    if (cutter)
      for (const t of state.projection.tasks.values())
        if (live(t.taskId)) cutter.add(t.taskId, t.targetBranch ?? clone!.knownDefaultBranch);
    // After a restart or a takeover, workers first have to find this node and reconnect (a client of
    // several nodes asks each who leads): their leases are judged only after that could have happened.
    leases.graceLeases(START_GRACE_MS);
    await leases.resumeSubmitted();
    const gateway = new Gateway({
      state,
      config: config.gateway,
      gate: config.gate,
      keys: secrets,
      log,
      redact: (t) => redactor.redact(t),
      store: stores.escalations,
      assertLease: (nodeId, ref) => leases.assertHolds(nodeId, ref),
    });
    await gateway.start();

    const adminToken = await issueAdminToken({
      tokens,
      reset: opts.resetAdminToken,
      journal: (events) => state.commit(events, "farm"),
      keep: opts.keepAdminToken,
    });

    if (config.files.mirror) {
      mirror.start();
      notes.start();
    }
    // The egress proxy: the only way a unit's check reaches the network, for allowlisted hosts, every
    // attempt journaled. Workers authenticate with their own token (the relay outside the sandbox adds it).
    const setupAuth = `Bearer farm-setup-${randomBytes(24).toString("base64url")}`; // the farm's own set-ups (never leaves this process but to the proxy)
    const egress = config.egress.enabled
      ? await startEgressProxy({
          host: config.host,
          port: config.egress.port,
          allow: config.egress.allow,
          authorize: (h) => {
            if (h === setupAuth) return "farm:setup";
            const p = tokens.authenticate(/^Bearer (\S+)$/.exec(h ?? "")?.[1]);
            return p && p.role === "worker" ? `worker:${p.name}` : null;
          },
          audit: (d) =>
            void state
              .commit(
                [
                  {
                    type: "egress_decision",
                    data: {
                      principal: d.principal,
                      host: d.host.slice(0, 253),
                      port: d.port,
                      method: d.method,
                      allowed: d.allowed,
                      reason: d.reason.slice(0, 300),
                    },
                  },
                ],
                d.principal ?? "unknown",
              )
              .catch(() => undefined),
          log,
        })
      : null;
    if (egress) {
      leases.egressPort = egress.port;
      log.info(`egress proxy on ${egress.url} for: ${config.egress.allow.join(", ") || "(nothing allowed)"}`);
    }
    // Dependencies for evals: installed once per lockfile into the repository's folder in the home, through the egress proxy only.
    prloop?.useSetup(new DepsCache(join(repoSlot(repo), "deps")), () =>
      egress
        ? {
            proxyUrl: `http://${/^(0\.0\.0\.0|::)$/.test(config.host) ? "127.0.0.1" : config.host.includes(":") ? `[${config.host}]` : config.host}:${egress.port}`,
            proxyAuthorization: setupAuth,
          }
        : undefined,
    );
    const services: FarmServices = {
      config,
      repo,
      gitDir: clone?.dir ?? repo,
      state,
      tasks,
      leases,
      dispatcher,
      tokens,
      log,
      importManifests: runImport,
      prloop,
      gateway,
    };
    const metrics = createMetrics(state, dispatcher, farmRepo ? () => farmRepo.evalLoad : undefined, () => services.leadership);
    state.onFlush = metrics.observeFlush;
    leadership?.report(services, metrics);
    dispatcher.start();
    await prloop?.start();
    // Finished tasks leave the hot state after their retention (archived in the journal).
    const archiver = new HistoryArchiver(state, { ...config.history, log: (msg, err) => log.warn({ err }, msg) });
    archiver.start();
    let api: ApiServer;
    try {
      api = await startApiServer(services, metrics.registry, tls);
    } catch (err) {
      dispatcher.stop();
      cutter?.stop();
      prloop?.stop();
      await archiver.stop();
      await stores.close();
      throw err;
    }
    if (forgeDelivery) {
      if (forgeDelivery.webhook) services.forgeWebhook = forgeDelivery.webhook;
      forgeUrl = api.url;
      forgeDelivery.start();
    }

    let closing: Promise<void> | null = null;
    const close = (error?: Error) =>
      (closing ??= (async () => {
        await forgeDelivery?.stop().catch(() => undefined);
        shutdown.abort();
        dispatcher.stop();
        cutter?.stop();
        gateway.stop();
        await archiver.stop();
        await egress?.close().catch(() => undefined);
        await api.close().catch(() => undefined);
        prloop?.stop();
        if (!error) await prloop?.idle().catch(() => undefined);
        if (!error) {
          await state.settle().catch(() => undefined);
          if (config.files.mirror) await mirror.flush().catch((err) => log.warn({ err }, "could not write manifests on shutdown"));
          await state.snapshot().catch(() => undefined);
        }
        await notes.idle();
        notes.stop();
        mirror.stop();
        if (error) leadership?.stop();
        else await leadership?.handOver(log);
        await stores.close();
        releaseLock();
        resolveStopped(error ? { error } : {});
      })());
    state.on("fatal", (err) => {
      void (leadership ? leadership.lostBy(err) : Promise.resolve(null)).then((lost) => {
        if (lost) {
          log.warn(`${lost.message}: stepping down`);
          return close(lost);
        }
        log.fatal({ err }, "journal write failed; stopping (state in memory is ahead of disk)");
        return close(err);
      });
    });
    if (leadership) {
      try {
        await leadership.serveAt(advertisedUrl(config, api.port), (err) => void close(err));
      } catch (err) {
        await close(err as Error);
        throw err;
      }
    }
    return {
      url: api.url,
      port: api.port,
      ...(tls ? { tls: { pin: tls.pin, certFile: tls.certFile, expiresAt: tls.expiresAt } } : {}),
      epoch,
      services,
      stopped,
      startup: { replayed, snapshotDiscarded, imports, ...(adminToken ? { adminToken } : {}) },
      close: () => close(),
    };
  }
}
