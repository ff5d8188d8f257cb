import type { ServerConfig } from "@optimus/shared";
import { startStandbyServer } from "../api/standby-server.js";
import { loadFarmTls } from "../tls/farm-tls.js";
import { watchLead } from "../farm-stores.js";
import type { Leadership } from "../store/leader-lease.js";
import { Redactor, SecretResolver } from "../secrets/index.js";
import { CliError } from "./errors.js";
import { printable } from "./printable.js";

/** How often a standby reads the lease: a fraction of the lease, so the takeover waits little past its end. */
const pollMsOf = (leaseMs: number) => Math.max(50, Math.min(250, Math.floor(leaseMs / 10)));

/**
 * Stands by while another farm node leads the store: answers on the farm's port with where the
 * leader is, reads the lease, and returns once it has run out (the caller then starts the farm,
 * which takes the lead — or finds that another standby was quicker, and stands by again).
 * Returns false when `signal` ends the wait first.
 */
export async function standBy(o: {
  config: ServerConfig;
  stateDir: string;
  version: string;
  say: (line: string) => void;
  signal: AbortSignal;
  /** the first time: said once the port answers ("… standing by on <url>") */
  firstReady?: (url: string) => void;
}): Promise<boolean> {
  const store = o.config.store;
  if (store.kind !== "postgres") throw new Error("only farm nodes sharing a PostgreSQL store stand by");
  const secrets = new SecretResolver(o.config.secrets, { redactor: new Redactor() });
  // A standby of a TLS farm answers on the same port with the same certificate: clients pin one.
  const tls = o.config.tls ? await loadFarmTls(o.config.tls, secrets) : undefined;
  const watch = await watchLead(store, o.stateDir, secrets, () => undefined);
  let seen: (Leadership & { journalSeq: number }) | null = null;
  const read = async () => {
    const l = await watch.lease.current();
    seen = l ? { ...l, journalSeq: await watch.lease.lastSeq() } : null;
    return seen;
  };
  let server: Awaited<ReturnType<typeof startStandbyServer>> | null = null;
  try {
    let shown = "";
    let unreachableSince = 0;
    // Who leads is read before the port answers: a client sent here from its first request is told where to go.
    await read().catch(() => undefined);
    server = await startStandbyServer({ host: o.config.host, port: o.config.port, version: o.version, leader: () => seen, tls }).catch(
      (err: NodeJS.ErrnoException) => {
        if (err.code !== "EADDRINUSE") throw err;
        throw new CliError(
          `port ${o.config.port} on ${o.config.host} is in use, so this node cannot stand by there (another farm node on this machine? each needs its own port): choose another with --port <n>`,
        );
      },
    );
    o.firstReady?.(server.url);
    while (!o.signal.aborted) {
      let l: Leadership | null;
      try {
        l = await read();
        unreachableSince = 0;
      } catch (err) {
        // The store is down: nobody can lead until it is back, so keep reading (and say so now and then).
        const now = Date.now();
        if (!unreachableSince || now - unreachableSince > 10_000) {
          o.say(`cannot read the lead from ${watch.where}: ${(err as Error).message}; retrying`);
          unreachableSince = now;
        }
        await pause(1_000, o.signal);
        continue;
      }
      if (!l || l.leftMs <= 0) return true;
      const line = `standing by: ${printable(l.holder ?? "another node")} leads (epoch ${l.epoch})${l.url ? ` at ${printable(l.url)}` : ""}; this node takes over when its lease runs out`;
      if (line !== shown) o.say((shown = line));
      await pause(Math.min(pollMsOf(store.leaseMs), Math.max(10, l.leftMs)), o.signal);
    }
    return false;
  } finally {
    await server?.close();
    await watch.close().catch(() => undefined);
  }
}

const pause = (ms: number, signal: AbortSignal) =>
  new Promise<void>((resolve) => {
    const timer = setTimeout(done, ms);
    signal.addEventListener("abort", done, { once: true });
    function done() {
      clearTimeout(timer);
      signal.removeEventListener("abort", done);
      resolve();
    }
  });
