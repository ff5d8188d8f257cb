import { initTRPC, TRPCError } from "@trpc/server";
import type { TokenRole } from "@optimus/shared";
import { z } from "zod";
import { refusalLine } from "../auth/refusal-line.js";
import type { Principal, TokenRefusal } from "../auth/tokens.js";
import { FarmError, StaleChangeError } from "../errors/farm-error.js";
import type { FarmServices } from "./services.js";
import type { SocketSession } from "./socket-guard.js";

export interface ApiContext {
  principal: Principal | null;
  /** without a principal: why the presented token (its secret right) is refused, for the 401's message */
  refusal?: TokenRefusal | null;
  services: FarmServices;
  /** present for calls over a WebSocket: its subscription count and owner */
  socket?: SocketSession;
}

const STATUS: Record<FarmError["kind"], TRPCError["code"]> = {
  not_found: "NOT_FOUND",
  conflict: "CONFLICT",
  forbidden: "FORBIDDEN",
  invalid: "BAD_REQUEST",
  lease_lost: "CONFLICT",
  unavailable: "SERVICE_UNAVAILABLE",
};

/** tRPC's own words for a batch over `maxBatchSize` (HTTP and WebSocket) */
const BATCH_TOO_LARGE = "Batch call exceeds maximum size";

const t = initTRPC.context<ApiContext>().create({
  // No stack traces leave the server; validation errors carry per-field messages.
  isDev: false,
  // Subscriptions only over WebSocket, where the per-socket limits and revocation apply.
  sse: { enabled: false },
  errorFormatter({ shape, error }) {
    const cause = error.cause;
    const fieldErrors = cause instanceof z.ZodError ? z.flattenError(cause).fieldErrors : undefined;
    const formErrors = cause instanceof z.ZodError ? z.flattenError(cause).formErrors : undefined;
    let message = shape.message;
    if (cause instanceof z.ZodError) {
      message =
        "invalid input: " +
        cause.issues
          .slice(0, 5)
          .map((i) => `${i.path.join(".") || "(input)"}: ${i.message}`)
          .join("; ");
    } else if (error.code === "INTERNAL_SERVER_ERROR") message = "internal error in the farm server (see its log)";
    else if (error.message === BATCH_TOO_LARGE)
      message = "too many calls in one batch (over the farm's limits.maxBatchSize); send fewer at once";
    const { stack: _stack, ...data } = shape.data as typeof shape.data & { stack?: string };
    return {
      ...shape,
      message,
      data: {
        ...data,
        ...(fieldErrors ? { fieldErrors, formErrors } : {}),
        ...(cause instanceof FarmError ? { kind: cause.kind } : {}),
        ...(cause instanceof StaleChangeError ? { stale: cause.stale } : {}),
      },
    };
  },
});

export const router = t.router;

/** Domain errors become status codes; anything else is an internal error (logged, not sent). */
const mapErrors = t.middleware(async ({ next, ctx, path }) => {
  const res = await next();
  if (!res.ok) {
    const cause = res.error.cause;
    if (cause instanceof FarmError) {
      throw new TRPCError({ code: STATUS[cause.kind], message: cause.message, cause });
    } else if (res.error.code === "INTERNAL_SERVER_ERROR") {
      ctx.services.log.error({ err: res.error.cause ?? res.error, path }, "procedure failed");
    }
  }
  return res;
});

export const publicProcedure = t.procedure.use(mapErrors);

/**
 * At most `maxSubscriptionsPerSocket` subscriptions per WebSocket: each one holds listeners and
 * buffers on the farm. The count drops when a subscription ends (its iterator finishes).
 */
const subscriptionLimit = t.middleware(async ({ ctx, type, next }) => {
  const s = ctx.socket;
  if (type !== "subscription" || !s) return next();
  if (s.subscriptions >= s.maxSubscriptions) {
    throw new TRPCError({
      code: "TOO_MANY_REQUESTS",
      message: `this connection already has ${s.maxSubscriptions} subscriptions open (the farm's limit); end one first, or open another connection`,
    });
  }
  s.subscriptions++;
  let counted = true;
  const release = () => {
    if (counted) s.subscriptions--;
    counted = false;
  };
  try {
    const res = await next();
    if (!res.ok) {
      release();
      return res;
    }
    return { ...res, data: releasing(res.data as AsyncIterable<unknown>, release) };
  } catch (err) {
    release();
    throw err;
  }
});

async function* releasing<T>(source: AsyncIterable<T>, release: () => void): AsyncGenerator<T> {
  try {
    yield* source;
  } finally {
    release();
  }
}

/** A procedure open to the given roles only. */
export const roleProcedure = (...roles: TokenRole[]) =>
  publicProcedure
    .use(({ ctx, next }) => {
      // A socket's token was checked when it opened: asked again at every call, so a revoked or
      // expired one stops at once, and a good one counts as used (its expiry slides on).
      const refusal = ctx.principal ? ctx.services.tokens.refusal(ctx.principal.tokenId) : ctx.refusal;
      if (!ctx.principal || refusal) throw new TRPCError({ code: "UNAUTHORIZED", message: refusalLine(refusal, roles) });
      if (ctx.socket) ctx.services.tokens.used(ctx.principal.tokenId);
      if (!roles.includes(ctx.principal.role)) {
        const article = ctx.principal.role === "admin" || ctx.principal.role === "editor" ? "an" : "a";
        throw new TRPCError({
          code: "FORBIDDEN",
          message: `${article} ${ctx.principal.role} token may not do this (needs ${roles.join(" or ")})`,
        });
      }
      return next({ ctx: { ...ctx, principal: ctx.principal } });
    })
    .use(subscriptionLimit);

export const editorProcedure = roleProcedure("editor", "admin");
export const adminProcedure = roleProcedure("admin");
export const workerProcedure = roleProcedure("worker");
