import { createHash } from "node:crypto";
import type { ArchivedTask, EventBody, FarmEvent } from "@optimus/shared";

export const GENESIS_HASH = "0".repeat(64);

/**
 * The fields of an event that its hash covers, in a fixed order, so any edit breaks the chain. The
 * head is JSON-encoded (strings escaped), so no choice of actor or type can shift a field boundary.
 */
export function eventHash(
  prevHash: string,
  e: { seq: number; ts: number; epoch: number; actor: string; type: string },
  dataJson: string,
): string {
  return createHash("sha256")
    .update(JSON.stringify([prevHash, e.seq, e.ts, e.epoch, e.actor, e.type]))
    .update("\n")
    .update(dataJson)
    .digest("hex");
}

export interface VerifyResult {
  ok: boolean;
  checked: number;
  lastSeq: number;
  /** the first entry whose contents or link do not match the chain */
  firstBroken?: { seq: number; reason: string };
}

/** Thrown when another farm server took the lead: this one must stop writing at once. */
export class FencedError extends Error {
  constructor(
    readonly ourEpoch: number,
    readonly currentEpoch: number,
  ) {
    super(`fenced: this farm server holds epoch ${ourEpoch} but epoch ${currentEpoch} has taken over`);
    this.name = "FencedError";
  }
}

export interface Snapshot {
  seq: number;
  state: unknown;
}

/**
 * The append-only event journal: the farm's machine truth and its tamper-evident audit log.
 *
 * One leader writes. `stage` assigns the next sequence number and hash in memory (so the caller can
 * fold the event into its projection at once); `flush` makes every staged event durable in one
 * transaction (group commit) and fails with `FencedError` if a newer epoch has taken the lead.
 * Async where a network store (PostgreSQL) needs it.
 */
export interface Journal {
  /** Takes the lead: bumps the epoch and returns where the chain stands. */
  open(): Promise<{ epoch: number; lastSeq: number }>;
  readonly epoch: number;
  stage(body: EventBody, actor: string, ts?: number): FarmEvent;
  flush(): Promise<number>;
  readAfter(seq: number, limit: number): Promise<FarmEvent[]>;
  /** The newest `limit` events about one task (optionally one unit), oldest first: a unit's history. */
  readForTask(taskId: string, unitId: string | undefined, limit: number): Promise<FarmEvent[]>;
  lastCommittedSeq(): number;
  /** Whether a task of this id was archived (its id stays taken). */
  isArchived(taskId: string): Promise<boolean>;
  /** An archived task's last views (from its `task_archived` event), or null. */
  archivedTask(taskId: string): Promise<ArchivedTask | null>;
  /** Archived tasks created before `before` (task order), newest first, and how many there are in all. */
  archivedPage(before: number, limit: number): Promise<{ tasks: ArchivedTask[]; total: number }>;
  saveSnapshot(s: Snapshot): Promise<void>;
  loadSnapshot(): Promise<Snapshot | null>;
  verify(): Promise<VerifyResult>;
  close(): Promise<void>;
}
