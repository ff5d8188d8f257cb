import type { FarmClient } from "@optimus/farm-server";

/**
 * What a person sees before deciding on a change: its attempt and head commit, as the diff shows
 * them. Every decision (approve, reject, request changes) names this version.
 */
export async function seenVersion(
  client: FarmClient,
  taskId: string,
  unitId: string,
): Promise<{ taskId: string; unitId: string; attempt: number; head: string }> {
  const change = await client.reviews.change.query({ taskId, unitId });
  return { taskId, unitId, attempt: change.attempt, head: change.head };
}
