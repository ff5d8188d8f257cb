/**
 * The contract between the farm and its workers (other processes, other machines, maybe another
 * version): the lease a worker receives and the work context in it. The farm builds leases of
 * these types; the worker parses what it receives with these schemas and refuses, with a clear
 * error, a lease it cannot read instead of working on a guess. Objects are not strict: a newer farm
 * may add fields an older worker ignores; a missing or changed field is a skew the worker names.
 */
import { z } from "zod";
import { SetupConfig } from "./config.js";
import { UnitSpec } from "./unit.js";

export const LeaseRef = z.object({
  taskId: z.string().min(1),
  unitId: z.string().min(1),
  attempt: z.number().int().min(1),
  leaseId: z.string().min(1),
});
export type LeaseRef = z.infer<typeof LeaseRef>;

/** What a worker needs beyond the unit's spec: where to start, what to address, what to review. */
export const LeaseWorkContext = z.object({
  /** the branch (of the farm's git endpoint) the unit starts from */
  base: z.object({ branch: z.string().min(1) }).optional(),
  /** what the next attempt must address: review comments, a person's words, failed evals */
  feedback: z.array(z.string()).optional(),
  /** the unit's session notes so far (earlier attempts) */
  notes: z.string().optional(),
  /** for a review unit: the change to review and its evals */
  review: z
    .object({
      unitId: z.string(),
      attempt: z.number().int(),
      patch: z.string(),
      evals: z.array(z.object({ name: z.string(), exitCode: z.number().int().nullable(), output: z.string() })),
    })
    .optional(),
  /** the farm's egress proxy (its port on the farm's host), when it offers one to checks */
  egress: z.object({ port: z.number().int().min(1).max(65_535) }).optional(),
  /** the repository's `setup:` (absent: the worker detects it from the lockfile) */
  setup: SetupConfig.optional(),
});
export type LeaseWorkContext = z.infer<typeof LeaseWorkContext>;

export const Lease = LeaseRef.extend({
  expiresAt: z.number(),
  spec: UnitSpec,
  context: LeaseWorkContext.optional(),
});
export type Lease = z.infer<typeof Lease>;

/** A lease as the worker received it, checked; else why it cannot be worked on. */
export function parseLease(raw: unknown): { ok: true; lease: Lease } | { ok: false; error: string } {
  const r = Lease.safeParse(raw);
  if (r.success) return { ok: true, lease: r.data };
  const i = r.error.issues[0]!;
  return {
    ok: false,
    error: `the farm sent a lease this worker cannot read (${i.path.join(".") || "(lease)"}: ${i.message}): are the farm and this worker the same version of Optimus?`,
  };
}
