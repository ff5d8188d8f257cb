/** How a user sees a takeover among farm nodes: each node's health as a probe reads it, a fault, and the recovery. */
import type { FarmHealth } from "@optimus/shared";
import type { ProcessTestFarm } from "./test-farm.js";
import { waitFor } from "./wait.js";

/**
 * A farm node's `/healthz` as a user's probe reads it: its answer (a standby's too), or null when
 * the node does not answer within a second (killed, paused, starting).
 */
export async function probeHealth(url: string): Promise<FarmHealth | null> {
  try {
    const r = await fetch(`${url}/healthz`, { signal: AbortSignal.timeout(1_000) });
    return r.ok ? ((await r.json()) as FarmHealth) : null;
  } catch {
    return null;
  }
}

/**
 * Faults the leading node (SIGKILL, or SIGSTOP past its lease) and waits for the standby to answer
 * as the leader with a later epoch; returns how long that took (the takeover time).
 */
export async function faultAndTakeOver(
  leader: ProcessTestFarm,
  standby: ProcessTestFarm,
  fault: "kill" | "stop",
  o: { pollMs?: number; explain?: (err: Error) => Error } = {},
): Promise<number> {
  const before = (await probeHealth(leader.url))?.epoch ?? 0;
  const t0 = performance.now();
  if (fault === "kill") await leader.kill9();
  else process.kill(leader.pid!, "SIGSTOP");
  await waitFor(
    async () => {
      const h = await probeHealth(standby.url);
      return h && h.role === "leader" && h.epoch > before;
    },
    `the standby to take over after a ${fault}`,
    30_000,
    o.pollMs ?? 20,
  ).catch((err: Error) => {
    throw o.explain ? o.explain(err) : err;
  });
  return Math.round(performance.now() - t0);
}

/** Brings a faulted node back: a killed one restarts (and stands by), a stopped one wakes and steps down to stand by. */
export async function recoverNode(node: ProcessTestFarm, fault: "kill" | "stop", explain?: (err: Error) => Error): Promise<void> {
  if (fault === "kill") return node.start();
  process.kill(node.pid!, "SIGCONT");
  await waitFor(async () => (await probeHealth(node.url))?.role === "standby", "the woken leader to stand by", 30_000).catch(
    (err: Error) => {
      throw explain ? explain(err) : err;
    },
  );
}
