/**
 * Set-up of a unit's workspace: dependencies installed once per lockfile content and shown
 * read-only in every worktree (deps-cache), decided from the configuration or the lockfile
 * (setup-plan). See docs/adr/0013-setup-cache-and-worktree-pool.md.
 */
import type { SetupConfig } from "@optimus/shared";
import { DepsCache, type SetupOutcome, type SetupRequest } from "./deps-cache.js";
import { resolveSetup } from "./setup-plan.js";

export { DepsCache, type SetupOutcome, type SetupRequest } from "./deps-cache.js";
export { resolveSetup, setupHash, type SetupDecision, type SetupPlan } from "./setup-plan.js";

export type PreparedDeps =
  { kind: "none"; reason: string } | { kind: "unsupported"; reason: string } | { kind: "ready"; outcome: SetupOutcome };

/** Decides the worktree's set-up and, when there is one, makes sure its cache entry exists. */
export async function prepareDeps(
  cache: DepsCache,
  config: SetupConfig | undefined,
  req: Omit<SetupRequest, "plan">,
): Promise<PreparedDeps> {
  const decision = resolveSetup(config, req.worktree);
  if (decision.kind !== "plan") return decision;
  return { kind: "ready", outcome: await cache.ensure({ ...req, plan: decision.plan }) };
}
