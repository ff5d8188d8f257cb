import { tracked } from "@trpc/server";
import {
  ChangeVersion,
  CreateTaskInput,
  EscalationCall,
  TaskId,
  TaskState,
  CreateTokenInput,
  UnitId,
  UnitProgress,
  UnitResult,
  UnitState,
  WorkerRegistration,
  NodeId,
  type WorkerView,
} from "@optimus/shared";
import { z } from "zod";
import { actorOf } from "../auth/tokens.js";
import { FarmError } from "../errors/farm-error.js";
import { frontierConfigured } from "../core/unit-actions.js";
import type { Lease } from "../core/lease-commands.js";
import { AsyncQueue } from "./async-queue.js";
import type { FarmServices } from "./services.js";
import { eventsAfter } from "./event-stream.js";
import { unitDetail } from "./unit-detail.js";
import { tasksByPrefix, unitPatch } from "./cli-reads.js";
import { workersRouter } from "./workers.js";
import { fleetView, historyPage, HISTORY_PAGE, taskWithUnits, unitLive, unitLiveOf } from "./views.js";
import { viewsCursor, viewsStream } from "./views-stream.js";
import { adminProcedure, editorProcedure, publicProcedure, router, workerProcedure } from "./trpc.js";

const UnitRef = z.strictObject({ taskId: TaskId, unitId: UnitId });
/** A person's decision names the version of the change they saw (attempt and head commit). */
const DecisionRef = UnitRef.extend(ChangeVersion.shape);
const LeaseRef = UnitRef.extend({ attempt: z.number().int().min(1), leaseId: z.string().min(1).max(300) });
const WorkerCall = z.strictObject({ nodeId: NodeId });

/** shared, so a task sent to the API is held to the same field rules as a manifest */
const CreateTask = CreateTaskInput;

const tasksRouter = router({
  create: editorProcedure
    .input(CreateTask)
    .mutation(({ ctx, input }) =>
      ctx.services.tasks.create({ ...input, source: input.units ? "manifest" : "api" }, actorOf(ctx.principal)),
    ),
  list: editorProcedure.input(z.strictObject({ state: TaskState.optional() }).optional()).query(({ ctx, input }) => {
    const p = ctx.services.state.projection;
    return [...p.tasks.values()]
      .map((t) => p.taskView(t))
      .filter((t) => !input?.state || t.state === input.state)
      .sort((a, b) => a.createdAt - b.createdAt);
  }),
  /** A task and its units, live or archived (finished tasks leave the hot state after their retention). */
  get: editorProcedure.input(z.strictObject({ taskId: TaskId })).query(async ({ ctx, input }) => {
    const found = await taskWithUnits(ctx.services, input.taskId);
    if (!found) throw new FarmError("not_found", `task '${input.taskId}' not found`);
    return found;
  }),
  /** Tasks, live or archived, whose id starts with `prefix` (the CLI's unique-prefix ids). */
  resolve: editorProcedure
    .input(z.strictObject({ prefix: z.string().trim().min(1).max(200) }))
    .query(({ ctx, input }) => tasksByPrefix(ctx.services, input.prefix)),
  cancel: editorProcedure
    .input(z.strictObject({ taskId: TaskId, reason: z.string().max(500).optional() }))
    .mutation(({ ctx, input }) => ctx.services.tasks.cancel(input.taskId, input.reason, actorOf(ctx.principal))),
  importFiles: editorProcedure.mutation(({ ctx }) => ctx.services.importManifests()),
});

const unitsRouter = router({
  list: editorProcedure
    .input(
      z
        .strictObject({ taskId: TaskId.optional(), state: UnitState.optional(), limit: z.number().int().min(1).max(10_000).default(1_000) })
        .optional(),
    )
    .query(({ ctx, input }) => {
      const p = ctx.services.state.projection;
      const keys = input?.taskId ? (p.tasks.get(input.taskId)?.units ?? []) : [...p.units.keys()];
      if (input?.taskId && !p.tasks.has(input.taskId)) throw new FarmError("not_found", `task '${input.taskId}' not found`);
      const out = [];
      for (const k of keys) {
        if (input?.state && p.units.get(k)!.state !== input.state) continue;
        out.push(unitLive(ctx.services, k)!);
        if (out.length >= (input?.limit ?? 1_000)) break;
      }
      return out;
    }),
  get: editorProcedure.input(UnitRef).query(({ ctx, input }) => {
    ctx.services.tasks.unit(input.taskId, input.unitId);
    return unitLiveOf(ctx.services, input.taskId, input.unitId);
  }),
  /** The unit detail panel: state, transcript, history, cost. */
  detail: editorProcedure.input(UnitRef).query(({ ctx, input }) => unitDetail(ctx.services, input.taskId, input.unitId)),
  /** One attempt's change as a unified patch (the latest evaluated attempt by default). */
  patch: editorProcedure
    .input(UnitRef.extend({ attempt: z.number().int().min(1).optional() }))
    .query(({ ctx, input }) => unitPatch(ctx.services, input.taskId, input.unitId, input.attempt)),
  escalate: editorProcedure.input(UnitRef.extend({ reason: z.string().trim().max(2_000).optional() })).mutation(async ({ ctx, input }) => {
    await ctx.services.tasks.escalateUnit(input.taskId, input.unitId, input.reason, actorOf(ctx.principal));
    return unitLiveOf(ctx.services, input.taskId, input.unitId);
  }),
  // Each answers with the unit as the views show it (its new state and the actions it now allows).
  retry: editorProcedure.input(UnitRef).mutation(async ({ ctx, input }) => {
    await ctx.services.tasks.retryUnit(input.taskId, input.unitId, actorOf(ctx.principal));
    return unitLiveOf(ctx.services, input.taskId, input.unitId);
  }),
  cancel: editorProcedure.input(UnitRef.extend({ reason: z.string().max(500).optional() })).mutation(async ({ ctx, input }) => {
    await ctx.services.tasks.cancelUnit(input.taskId, input.unitId, input.reason, actorOf(ctx.principal));
    return unitLiveOf(ctx.services, input.taskId, input.unitId);
  }),
});

const prloopOf = (s: FarmServices) => {
  if (!s.prloop) throw new FarmError("conflict", "this farm does not work on a git repository, so there are no changes to review");
  return s.prloop;
};

const Comment = z.strictObject({
  path: z.string().min(1).max(1024).optional(),
  line: z.number().int().min(1).optional(),
  body: z.string().trim().min(1).max(10_000),
});

/**
 * Human decisions on changes: approve, reject, request changes (recorded with the user's identity and
 * the head commit they saw). A decision on a version that is no longer current is refused (409).
 */
const reviewsRouter = router({
  /** A unit's evaluated change, file by file (base and proposed content), with its evals and review. */
  change: editorProcedure.input(UnitRef).query(({ ctx, input }) => prloopOf(ctx.services).change(input.taskId, input.unitId)),
  approve: editorProcedure.input(DecisionRef).mutation(async ({ ctx, input }) => {
    const p = ctx.principal;
    await prloopOf(ctx.services).approve(
      input.taskId,
      input.unitId,
      { actor: actorOf(p), tokenId: p.tokenId, name: p.name, approver: p.approver },
      input,
    );
    return unitLiveOf(ctx.services, input.taskId, input.unitId);
  }),
  approveTaskMerge: editorProcedure.input(z.strictObject({ taskId: TaskId })).mutation(async ({ ctx, input }) => {
    const p = ctx.principal;
    // The whole approver: a held change touching protected paths needs the approver right here too.
    await prloopOf(ctx.services).approveTaskMerge(input.taskId, {
      actor: actorOf(p),
      tokenId: p.tokenId,
      name: p.name,
      approver: p.approver,
    });
    const t = ctx.services.state.projection.tasks.get(input.taskId)!;
    return ctx.services.state.projection.taskView(t);
  }),
  reject: editorProcedure.input(DecisionRef.extend({ reason: z.string().trim().min(1).max(2_000) })).mutation(async ({ ctx, input }) => {
    await prloopOf(ctx.services).reject(input.taskId, input.unitId, input.reason, actorOf(ctx.principal), input);
    return unitLiveOf(ctx.services, input.taskId, input.unitId);
  }),
  requestChanges: editorProcedure
    .input(DecisionRef.extend({ comments: z.array(Comment).min(1).max(200) }))
    .mutation(async ({ ctx, input }) => {
      const text = input.comments.map((c) => (c.path ? `${c.path}${c.line ? `:${c.line}` : ""}: ${c.body}` : c.body)).join("\n");
      await prloopOf(ctx.services).requestChanges(
        input.taskId,
        input.unitId,
        `${actorOf(ctx.principal)} asks: ${text}`,
        actorOf(ctx.principal),
        input,
      );
      return unitLiveOf(ctx.services, input.taskId, input.unitId);
    }),
});

const fleetRouter = router({
  workers: editorProcedure.query(({ ctx }): WorkerView[] => fleetView(ctx.services)),
});

const workerRouter = router({
  register: workerProcedure.input(WorkerRegistration).mutation(async ({ ctx, input }) => {
    await ctx.services.leases.register(input, ctx.principal.tokenId, `worker:${input.nodeId}`);
    const c = ctx.services.config;
    return { heartbeatIntervalMs: c.heartbeatIntervalMs, leaseTtlMs: ctx.services.leases.ttl, epoch: ctx.services.state.epoch };
  }),
  /** The worker's lease stream: what it holds now, then each new assignment. */
  leases: workerProcedure.input(WorkerCall.extend({ lastEventId: z.string().nullish() })).subscription(async function* ({
    ctx,
    input,
    signal,
  }) {
    ctx.services.leases.workerFor(input.nodeId, ctx.principal.tokenId);
    const queue = new AsyncQueue<Lease>(signal);
    const detach = ctx.services.dispatcher.attach(input.nodeId, queue);
    try {
      for await (const lease of queue) yield tracked(lease.leaseId, lease);
    } finally {
      detach();
    }
  }),
  heartbeat: workerProcedure.input(WorkerCall.extend({ leases: z.array(LeaseRef).max(100) })).mutation(({ ctx, input }) => {
    ctx.services.leases.workerFor(input.nodeId, ctx.principal.tokenId);
    ctx.services.dispatcher.seen(input.nodeId);
    return ctx.services.leases.heartbeat(input.nodeId, input.leases);
  }),
  progress: workerProcedure.input(WorkerCall.extend({ lease: LeaseRef, progress: UnitProgress })).mutation(({ ctx, input }) => {
    ctx.services.leases.workerFor(input.nodeId, ctx.principal.tokenId);
    ctx.services.leases.reportProgress(input.nodeId, input.lease, input.progress);
    return { ok: true as const };
  }),
  /** A frontier completion through the gateway, for a unit this worker holds; waits for admission. */
  escalate: workerProcedure.input(EscalationCall).mutation(({ ctx, input }) => {
    ctx.services.leases.workerFor(input.nodeId, ctx.principal.tokenId);
    return ctx.services.gateway.request(input);
  }),
  submit: workerProcedure.input(WorkerCall.extend({ lease: LeaseRef, result: UnitResult })).mutation(({ ctx, input }) => {
    ctx.services.leases.workerFor(input.nodeId, ctx.principal.tokenId);
    return ctx.services.leases.submit(input.nodeId, input.lease, input.result, ctx.principal.tokenId);
  }),
});

const gatewayRouter = router({
  /** Escalations waiting for admission, in order, with why they wait. */
  queue: editorProcedure.query(({ ctx }) => ctx.services.gateway.queue()),
  /** After a spend cap: let escalations be admitted again. */
  resume: adminProcedure.mutation(async ({ ctx }) => {
    await ctx.services.gateway.resume(actorOf(ctx.principal));
    return { resumed: true as const };
  }),
  /** The cost ledger: spent and reserved per day, task, unit, worker and model, with the budgets. */
  spend: editorProcedure.query(({ ctx }) => {
    const l = ctx.services.state.projection.ledger;
    const g = ctx.services.config.gateway;
    return {
      ...l.report(),
      budgets: g.budgets,
      model: g.model,
      configured: frontierConfigured(ctx.services.config),
      paused: l.paused ?? null,
      queued: l.queue().length,
      inFlight: l.inFlight().length,
    };
  }),
});

const viewsRouter = router({
  /** An editor's live views: snapshot, then deltas, progress and fleet; resumable across reconnects and restarts. */
  stream: editorProcedure.input(z.strictObject({ lastEventId: z.string().max(40).nullish() }).optional()).subscription(async function* ({
    ctx,
    input,
    signal,
  }) {
    for await (const m of viewsStream(ctx.services, input?.lastEventId, signal)) yield tracked(viewsCursor(m.epoch, m.seq), m);
  }),
  /** Older finished tasks with their units, newest first: `before` from the snapshot's (or the last page's) `history`. */
  history: editorProcedure
    .input(z.strictObject({ before: z.number().int().min(0), limit: z.number().int().min(1).max(500).default(HISTORY_PAGE) }))
    .query(({ ctx, input }) => historyPage(ctx.services, input.before, input.limit)),
});

const eventsRouter = router({
  /** Every journal event after `lastEventId`, then live; resumable across reconnects. */
  stream: editorProcedure
    .input(z.strictObject({ lastEventId: z.string().regex(/^\d+$/).nullish(), taskId: TaskId.optional() }).optional())
    .subscription(async function* ({ ctx, input, signal }) {
      const after = input?.lastEventId ? Number(input.lastEventId) : 0;
      for await (const e of eventsAfter(ctx.services.state, after, signal)) {
        if (input?.taskId && (e.data as { taskId?: string }).taskId !== input.taskId) continue;
        yield tracked(String(e.seq), e);
      }
    }),
});

const adminRouter = router({
  /** `approver`: a person's editor token that may approve changes to protected paths */
  createToken: adminProcedure.input(CreateTokenInput).mutation(async ({ ctx, input }) => {
    if (input.approver && input.role !== "editor")
      throw new FarmError(
        "invalid",
        `the approver right is for a person's editor token, not a ${input.role} token: use --role editor --name <you> --approver`,
      );
    const issued = await ctx.services.tokens.create(input.role, input.name, { approver: input.approver, ttlMs: input.ttlMs });
    await ctx.services.state.commit(
      [
        {
          type: "token_created",
          data: {
            tokenId: issued.tokenId,
            role: issued.role,
            name: issued.name,
            ...(issued.approver ? { approver: true } : {}),
            ...(issued.ttlMs ? { ttlMs: issued.ttlMs } : {}),
          },
        },
      ],
      actorOf(ctx.principal),
    );
    return issued;
  }),
  listTokens: adminProcedure.query(({ ctx }) => ctx.services.tokens.list()),
  revokeToken: adminProcedure.input(z.strictObject({ tokenId: z.string().regex(/^[0-9a-f]{12}$/) })).mutation(async ({ ctx, input }) => {
    // Revoking closes the token's sockets at once (the token store tells the API), and ends its leases.
    if (!(await ctx.services.tokens.revoke(input.tokenId)))
      throw new FarmError("not_found", `token '${input.tokenId}' not found or already revoked`);
    await ctx.services.state.commit([{ type: "token_revoked", data: { tokenId: input.tokenId } }], actorOf(ctx.principal));
    const leasesEnded = await ctx.services.leases.endLeasesOfToken(input.tokenId);
    return { revoked: true as const, leasesEnded };
  }),
  verifyAudit: adminProcedure.query(({ ctx }) => ctx.services.state.journal.verify()),
});

export const appRouter = router({
  /** Who the caller is, as the farm records it on what they do; `approver`: may approve changes to protected paths. */
  me: editorProcedure.query(({ ctx }) => ({
    actor: actorOf(ctx.principal),
    role: ctx.principal.role,
    name: ctx.principal.name,
    approver: ctx.principal.approver === true,
    epoch: ctx.services.state.epoch,
  })),
  health: publicProcedure.query(({ ctx }) => ({
    ok: true as const,
    epoch: ctx.services.state.epoch,
    authenticated: ctx.principal !== null,
  })),
  tasks: tasksRouter,
  units: unitsRouter,
  fleet: fleetRouter,
  workers: workersRouter,
  reviews: reviewsRouter,
  worker: workerRouter,
  events: eventsRouter,
  views: viewsRouter,
  gateway: gatewayRouter,
  admin: adminRouter,
});

export type AppRouter = typeof appRouter;
