import { z } from "zod";
import { NodeId } from "./ids.js";
import { RepoPath } from "./repo-path.js";
import { multiLineText, singleLineText } from "./text.js";
import { UnitRole } from "./unit.js";

/** What a worker agent says about itself when it joins the farm. */
export const WorkerRegistration = z.strictObject({
  nodeId: NodeId,
  role: UnitRole,
  maxConcurrentTasks: z.number().int().min(1).max(64).default(1),
  model: z
    .strictObject({
      primary: z.string().min(1).max(500).describe("the local model doing the bulk of the work"),
      escalation: z.string().max(500).optional().describe("the frontier model, gated, never the default"),
    })
    .default({ primary: "none" }),
  version: z.string().max(50).optional(),
});
export type WorkerRegistration = z.infer<typeof WorkerRegistration>;
export type WorkerRegistrationInput = z.input<typeof WorkerRegistration>;

/** Live progress a worker reports for a leased unit (shown in the editor; not journaled). */
export const UnitProgress = z.strictObject({
  phase: z.string().min(1).max(40),
  step: z.string().max(500).optional(),
  tokens: z.number().int().min(0).max(1e12).optional(),
  elapsedMs: z.number().int().min(0).max(1e12).optional(),
});
export type UnitProgress = z.infer<typeof UnitProgress>;

/** A review worker's judgement of a codegen unit's change. */
export const ReviewVerdict = z.strictObject({
  verdict: z.enum(["approve", "request_changes"]),
  risk: z.enum(["low", "medium", "high"]),
  summary: z.string().max(10_000),
  comments: z
    .array(
      z.strictObject({
        path: z.string().min(1).max(1024),
        line: z.number().int().min(1).max(10_000_000),
        body: z.string().min(1).max(10_000),
      }),
    )
    .max(200)
    .default([]),
});
export type ReviewVerdict = z.infer<typeof ReviewVerdict>;

/** What a planning unit proposes: bounded units, and a design decision worth an ADR if it made one. */
export const PlanProposal = z.strictObject({
  units: z
    .array(
      z.strictObject({
        id: z.string().min(1).max(64),
        goal: multiLineText(1, 20_000),
        files: z.array(RepoPath).max(100).default([]),
        check: multiLineText(0, 4_000).default(""),
        dependsOn: z.array(z.string().min(1).max(64)).max(50).default([]),
        complexity: z.enum(["trivial", "small", "medium", "large"]).default("small"),
      }),
    )
    .min(1)
    .max(50),
  decision: z
    .strictObject({
      needed: z.boolean(),
      title: singleLineText(0, 200).default(""),
      context: z.string().max(10_000).default(""),
      decision: z.string().max(10_000).default(""),
      consequences: z.string().max(10_000).default(""),
    })
    .optional(),
});
export type PlanProposal = z.infer<typeof PlanProposal>;

/** What a worker hands back for its lease. */
export const UnitResult = z.strictObject({
  outcome: z.enum(["succeeded", "failed"]),
  summary: z.string().max(20_000).default(""),
  /** `git diff --binary` of the change, if any (validated by the PR loop). */
  patch: z
    .string()
    .max(8 * 1024 * 1024)
    .optional(),
  evidence: z
    .string()
    .max(1024 * 1024)
    .optional(),
  /** the agent's conversation with its model, for review in the editor */
  transcript: z
    .array(z.strictObject({ role: z.enum(["system", "user", "assistant"]), content: z.string().max(200_000) }))
    .max(200)
    .optional(),
  /** a review unit's verdict */
  review: ReviewVerdict.optional(),
  /** a planning unit's plan */
  plan: PlanProposal.optional(),
  /** what the attempt used and saw, for session notes and the escalation gate */
  signals: z
    .strictObject({
      model: z.string().max(500).optional(),
      tokens: z.number().int().min(0).max(1e12).optional(),
      confidence: z.number().min(0).max(1).optional(),
      checksFailed: z.number().int().min(0).max(1e6).optional(),
      iterations: z.number().int().min(0).max(1e6).optional(),
    })
    .optional(),
});
export type UnitResult = z.infer<typeof UnitResult>;
export type UnitResultInput = z.input<typeof UnitResult>;
