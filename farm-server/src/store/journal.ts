import { createHash } from "node:crypto";
import type { ArchivedTask, EventBody, FarmEvent } from "@optimus/shared";
import { EVENT_FORMAT, upcast } from "./event-format.js";

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

/** An event as a store keeps it: its data as the exact JSON text its hash covers. */
export interface StoredEvent {
  seq: number;
  ts: number;
  epoch: number;
  actor: string;
  type: string;
  data: string;
  prev_hash: string;
  hash: string;
  /** the event's format (EVENT_FORMAT when written by this version) */
  v: number;
}

/** A stored event as this version reads it (older formats upcast). */
export const storedToEvent = (r: StoredEvent): FarmEvent =>
  ({
    seq: r.seq,
    ts: r.ts,
    epoch: r.epoch,
    actor: r.actor,
    type: r.type,
    data: upcast(r.type, r.v ?? 1, JSON.parse(r.data) as Record<string, unknown>, r.actor),
    prevHash: r.prev_hash,
    hash: r.hash,
  }) as FarmEvent;

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
  /** Ids of archived tasks starting with `prefix`, in id order, at most `limit` (the CLI's unique-prefix ids). */
  archivedTaskIds(prefix: string, limit: number): Promise<string[]>;
  /** Archived tasks created before `before` (task order), newest first, and how many there are in all. */
  archivedPage(before: number, limit: number): Promise<{ tasks: ArchivedTask[]; total: number }>;
  saveSnapshot(s: Snapshot): Promise<void>;
  loadSnapshot(): Promise<Snapshot | null>;
  verify(): Promise<VerifyResult>;
  close(): Promise<void>;
}

/**
 * Walks the chain from the first entry and names the first one that does not hold. One rule for
 * every store: each feeds its entries in order (`next` returns a result once the chain is broken).
 */
export class ChainCheck {
  private prev = GENESIS_HASH;
  private expectSeq = 1;
  checked = 0;

  constructor(private readonly onProgress?: (checked: number) => void) {}

  next(r: StoredEvent): VerifyResult | null {
    const broken = (reason: string, seq = r.seq): VerifyResult => ({
      ok: false,
      checked: this.checked,
      lastSeq: r.seq,
      firstBroken: { seq, reason },
    });
    if (r.seq !== this.expectSeq) return broken(`entry ${this.expectSeq} is missing (the next one is ${r.seq})`, this.expectSeq);
    if (r.prev_hash !== this.prev)
      return broken("its link to the previous entry does not match (an entry before it was removed or replaced)");
    if (eventHash(this.prev, r, r.data) !== r.hash) return broken(`its contents do not match its hash (type ${r.type}, epoch ${r.epoch})`);
    this.prev = r.hash;
    this.expectSeq++;
    this.checked++;
    if (this.onProgress && this.checked % 10_000 === 0) this.onProgress(this.checked);
    return null;
  }

  result(): VerifyResult {
    return { ok: true, checked: this.checked, lastSeq: this.expectSeq - 1 };
  }
}

/**
 * The head of the chain as the leader extends it: `stage` gives the next event its sequence number
 * and hash in memory; `take` hands the staged rows to the store's group commit.
 */
export class ChainTail {
  private nextSeq = 1;
  private lastHash = GENESIS_HASH;
  private staged: StoredEvent[] = [];

  /** continues after the store's last entry (none: from genesis) */
  resume(last: { seq: number; hash: string } | undefined): void {
    this.nextSeq = (last?.seq ?? 0) + 1;
    this.lastHash = last?.hash ?? GENESIS_HASH;
    this.staged = [];
  }

  stage(body: EventBody, actor: string, epoch: number, ts: number): FarmEvent {
    const seq = this.nextSeq++;
    const data = JSON.stringify(body.data);
    const head = { seq, ts, epoch, actor, type: body.type };
    const hash = eventHash(this.lastHash, head, data);
    const row: StoredEvent = { ...head, data, prev_hash: this.lastHash, hash, v: EVENT_FORMAT };
    this.lastHash = hash;
    this.staged.push(row);
    return { ...body, ...head, prevHash: row.prev_hash, hash } as FarmEvent;
  }

  take(): StoredEvent[] {
    const rows = this.staged;
    this.staged = [];
    return rows;
  }
}
