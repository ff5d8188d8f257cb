import { WorkerAgent, type ExecuteUnit, type Lease } from "@optimus/farm-server";
import { sleep } from "./wait.js";

export interface Ledger {
  /** every lease a worker started, in order */
  started: Array<{ worker: string; key: string; attempt: number; at: number }>;
  /** every submission the farm accepted */
  accepted: Array<{ worker: string; key: string; attempt: number; duplicate: boolean; at: number }>;
  rejected: Array<{ worker: string; key: string; attempt: number; error: string }>;
  /** most leases any worker ran at once */
  peak: Map<string, number>;
}

export const newLedger = (): Ledger => ({ started: [], accepted: [], rejected: [], peak: new Map() });

/**
 * Worker agents in this process that "do" a unit by waiting a little, recording what happened. A spec
 * may bring its own token (reviewers need another token than the coders whose changes they review).
 */
export async function startWorkers(
  url: string,
  token: string,
  specs: Array<{ nodeId: string; role: "codegen" | "review"; max: number; token?: string }>,
  ledger: Ledger,
  work: ExecuteUnit = async () => {
    await sleep(5 + Math.random() * 20);
    return { outcome: "succeeded", summary: "done" };
  },
): Promise<WorkerAgent[]> {
  const agents: WorkerAgent[] = [];
  for (const s of specs) {
    let running = 0;
    const key = (l: Lease) => `${l.taskId}/${l.unitId}`;
    const agent = new WorkerAgent({
      farmUrl: url,
      token: s.token ?? token,
      registration: { nodeId: s.nodeId, role: s.role, maxConcurrentTasks: s.max, model: { primary: "test" } },
      execute: async (lease, ctx) => {
        running++;
        ledger.peak.set(s.nodeId, Math.max(ledger.peak.get(s.nodeId) ?? 0, running));
        ledger.started.push({ worker: s.nodeId, key: key(lease), attempt: lease.attempt, at: Date.now() });
        try {
          return await work(lease, ctx);
        } finally {
          running--;
        }
      },
      onOutcome: (lease, o) => {
        if (o.accepted)
          ledger.accepted.push({ worker: s.nodeId, key: key(lease), attempt: lease.attempt, duplicate: !!o.duplicate, at: Date.now() });
        else ledger.rejected.push({ worker: s.nodeId, key: key(lease), attempt: lease.attempt, error: o.error ?? "" });
      },
    });
    await agent.start();
    agents.push(agent);
  }
  return agents;
}

export const stopAll = (agents: WorkerAgent[]) => Promise.all(agents.map((a) => a.stop()));
