import type { EventType, FarmEvent, UnitSpec, UnitState, UnitStatusMirror } from "@optimus/shared";
import type { TaskRecord, UnitRecord, WorkerRecord } from "./projection-records.js";

/** What the event handlers may do to the projection: its records and the moves the lifecycle allows. */
export interface FoldTarget {
  readonly tasks: Map<string, TaskRecord>;
  readonly units: Map<string, UnitRecord>;
  readonly workers: Map<string, WorkerRecord>;
  readonly revokedTokens: Set<string>;
  /** the commit of the origin's default branch whose task manifests were imported last */
  imported?: { ref: string; commit: string };
  unit(taskId: string, unitId: string): UnitRecord;
  /** moves a unit to `to`, held to the lifecycle table */
  move(u: UnitRecord, to: UnitState, e: FarmEvent): void;
  /** moves a unit to a state it rests in (no lease, no wait), keeping who worked on it last */
  settle(u: UnitRecord, to: UnitState, e: FarmEvent, reason?: string): void;
  clearLease(u: UnitRecord): void;
  leaseSet(nodeId: string): Set<string>;
  /** planned → ready once its dependencies are done; true when it moved */
  promote(key: string, e: FarmEvent): boolean;
  reviewersOf(u: UnitRecord): string[];
  addTask(t: Omit<TaskRecord, "order">): TaskRecord;
  addUnits(t: TaskRecord, specs: UnitSpec[], e: FarmEvent, restored?: Record<string, UnitStatusMirror>): string[];
  archive(taskId: string): void;
}

/** One event's fold: the projection, and what the event touched (for the dispatcher and the file mirror). */
export interface Fold {
  p: FoldTarget;
  ready(key: string): void;
  touch(taskId: string): void;
}

export type FoldHandlers = { [K in EventType]?: (f: Fold, e: Extract<FarmEvent, { type: K }>) => void };
