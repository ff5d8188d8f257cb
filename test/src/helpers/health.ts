import type { FarmHealth } from "@optimus/shared";

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
