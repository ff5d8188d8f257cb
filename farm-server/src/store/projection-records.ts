import type { TaskHeader, TaskView, UnitView, WorkerRegistration } from "@optimus/shared";

export interface WorkerRecord extends WorkerRegistration {
  tokenId?: string;
  registeredAt: number;
}

export interface TaskRecord extends TaskHeader {
  createdAt: number;
  updatedAt: number;
  cancelled: boolean;
  units: string[]; // unit keys, in manifest order
  order: number; // creation order, for FIFO among equal priorities
  merge?: { into: string; commit?: string; heldReason?: string; conflicts?: string[] };
  pullRequest?: TaskView["pullRequest"];
  /** changes merged into the integration branch that the task's merge waits on a person's approval for (with a forge) */
  heldChanges?: { unitId: string; attempt: number; commit: string; reasons: string[] }[];
  /** people's approvals of the task's merge, each as of the head they saw */
  approvals?: { by: string; head: string; at: number; forgeEvent?: string }[];
  /** ADR drafts the planner wrote for this task (committed with its milestones) */
  adrs?: string[];
  /** why the planner's plan was not used (the task fell back to one unit) */
  planFallback?: string;
}

export interface UnitRecord extends UnitView {
  /** the attempt whose result was accepted, so a repeated submission is recognised, not redone */
  acceptedAttempt?: number;
  acceptedLeaseId?: string;
  acceptedWorker?: string;
  /**
   * Who wrote the latest accepted attempt: its node and worker token. A review of that attempt counts
   * only from another node and token (separation of duties). The token is missing in journals from
   * before it was recorded; the node's registration then says which token it was.
   */
  author?: { node: string; tokenId?: string; attempt: number };
  /** a human approved this attempt's merge (the merge itself may still be pending after a crash) */
  approvedAttempt?: number;
  /** how many times its review unit sent the change back (counts against its attempts) */
  reviewRequests?: number;
  dependents: string[];
}
