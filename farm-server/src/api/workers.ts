import { unitKey, type WorkerListEntry } from "@optimus/shared";
import type { FarmServices } from "./services.js";
import { editorProcedure, router } from "./trpc.js";

/**
 * The fleet as an operator lists it (`optimus worker list`): every registered worker, whether its
 * lease stream is open, what it holds and when it was last heard from. Editors and admins may ask
 * (the same right as the editor's Fleet view); workers may not see each other.
 */
export function workerList(s: FarmServices): WorkerListEntry[] {
  const p = s.state.projection;
  const d = s.dispatcher;
  return [...p.workers.values()]
    .map((w) => {
      const since = d.connectedSince(w.nodeId);
      return {
        nodeId: w.nodeId,
        role: w.role,
        model: w.model.primary,
        capacity: w.maxConcurrentTasks,
        connected: d.isConnected(w.nodeId),
        leases: p.leasesOf(w.nodeId).map((u) => unitKey(u.taskId, u.unitId)),
        ...(since !== undefined ? { connectedSince: since } : {}),
        lastHeartbeatAt: d.lastSeen(w.nodeId) ?? w.registeredAt,
        registeredAt: w.registeredAt,
      };
    })
    .sort((a, b) => Number(b.connected) - Number(a.connected) || a.nodeId.localeCompare(b.nodeId));
}

export const workersRouter = router({
  list: editorProcedure.query(({ ctx }): WorkerListEntry[] => workerList(ctx.services)),
});
