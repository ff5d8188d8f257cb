import { FARM_VERSION } from "../version.js";
import { isTerminal, type FarmHealth, type UnitRole, type UnitState } from "@optimus/shared";
import type { FarmServices } from "./services.js";

export { FARM_VERSION };

/** `/healthz`: leadership, epoch, lag, connected workers and unfinished units of this node (one pass over the hot units). */
export function farmHealth(s: FarmServices, startedAt: number): FarmHealth {
  const p = s.state.projection;
  const workers: Record<UnitRole, number> = { codegen: 0, review: 0 };
  for (const w of p.workers.values()) if (s.dispatcher.isConnected(w.nodeId)) workers[w.role]++;
  const queue: Record<UnitRole, Partial<Record<UnitState, number>>> = { codegen: {}, review: {} };
  for (const u of p.units.values()) {
    if (isTerminal(u.state)) continue;
    const byState = queue[u.spec.role];
    byState[u.state] = (byState[u.state] ?? 0) + 1;
  }
  const role = s.leadership?.role() ?? "leader";
  const leaderUrl = role === "standby" ? s.leadership?.leaderUrl?.() : undefined;
  return {
    ok: true,
    version: FARM_VERSION,
    role,
    epoch: s.state.epoch,
    ...(leaderUrl ? { leaderUrl } : {}),
    journalLag: role === "leader" ? 0 : Math.max(0, s.leadership?.journalLag?.() ?? 0),
    uptimeMs: Math.max(0, Date.now() - startedAt),
    workers,
    queue,
  };
}
