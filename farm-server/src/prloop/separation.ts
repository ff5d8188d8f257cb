import picomatch from "picomatch";
import type { Policy } from "@optimus/shared";
import type { Projection, UnitRecord } from "../store/projection.js";

/** Why a change whose only review came from its author waits for a person. */
export const SELF_REVIEW_REASON = "its review came from its own author";

/** Who approves a held change: recorded with the approval, and checked against protected paths. */
export interface Approver {
  /** how the journal names them (`editor:alice`) */
  actor: string;
  tokenId: string;
  name: string;
  /** their token carries the approver right (needed for protected paths) */
  approver: boolean;
}

/**
 * Separation of duties: a review counts only from another node and another worker token than the
 * one that wrote the change. One token may run many nodes, so a different node alone proves
 * nothing; one node is one machine, so a different token on it proves nothing either.
 */
export function isSelfReview(p: Projection, reviewer: { node: string | undefined }, target: UnitRecord): boolean {
  const authorNode = target.author?.node ?? target.acceptedWorker;
  if (!authorNode || !reviewer.node) return false;
  const authorToken = target.author?.tokenId ?? p.workers.get(authorNode)?.tokenId;
  const reviewerToken = p.workers.get(reviewer.node)?.tokenId;
  return reviewer.node === authorNode || (reviewerToken !== undefined && reviewerToken === authorToken);
}

/** The files of a change that match `policy.protectedPaths`. */
export function protectedPathsIn(files: string[], policy: Policy): string[] {
  const isProtected = picomatch(policy.protectedPaths, { dot: true });
  return files.filter((f) => isProtected(f));
}

/** The 403 for an approval of protected paths without the approver right: says how to get one. */
export const approverNeeded = (taskId: string, unitId: string, paths: string[]) =>
  `unit ${taskId}/${unitId} touches protected paths (${paths.slice(0, 5).join(", ")}${paths.length > 5 ? ", …" : ""}); ` +
  "approval needs a token with the approver right: optimus token create --role editor --name <you> --approver";
