import { initTRPC, TRPCError } from "@trpc/server";
import type { TokenRole } from "@optimus/shared";
import { z } from "zod";
import type { Principal } from "../auth/tokens.js";
import { FarmError } from "../core/errors.js";
import type { FarmServices } from "./services.js";

export interface ApiContext {
  principal: Principal | null;
  services: FarmServices;
}

const STATUS: Record<FarmError["kind"], TRPCError["code"]> = {
  not_found: "NOT_FOUND",
  conflict: "CONFLICT",
  forbidden: "FORBIDDEN",
  invalid: "BAD_REQUEST",
  lease_lost: "CONFLICT",
  unavailable: "SERVICE_UNAVAILABLE",
};

const t = initTRPC.context<ApiContext>().create({
  // No stack traces leave the server; validation errors carry per-field messages.
  isDev: false,
  errorFormatter({ shape, error }) {
    const cause = error.cause;
    const fieldErrors = cause instanceof z.ZodError ? z.flattenError(cause).fieldErrors : undefined;
    const formErrors = cause instanceof z.ZodError ? z.flattenError(cause).formErrors : undefined;
    let message = shape.message;
    if (cause instanceof z.ZodError) {
      message = "invalid input: " + cause.issues.slice(0, 5).map((i) => `${i.path.join(".") || "(input)"}: ${i.message}`).join("; ");
    } else if (error.code === "INTERNAL_SERVER_ERROR") message = "internal error in the farm server (see its log)";
    const { stack: _stack, ...data } = shape.data as typeof shape.data & { stack?: string };
    return {
      ...shape,
      message,
      data: { ...data, ...(fieldErrors ? { fieldErrors, formErrors } : {}), ...(cause instanceof FarmError ? { kind: cause.kind } : {}) },
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

/** A procedure open to the given roles only. */
export const roleProcedure = (...roles: TokenRole[]) =>
  publicProcedure.use(({ ctx, next }) => {
    if (!ctx.principal || ctx.services.tokens.isRevoked(ctx.principal.tokenId)) throw new TRPCError({ code: "UNAUTHORIZED", message: "missing or invalid token; create one with `optimus token create`" });
    if (!roles.includes(ctx.principal.role)) {
      const article = ctx.principal.role === "admin" || ctx.principal.role === "editor" ? "an" : "a";
      throw new TRPCError({ code: "FORBIDDEN", message: `${article} ${ctx.principal.role} token may not do this (needs ${roles.join(" or ")})` });
    }
    return next({ ctx: { ...ctx, principal: ctx.principal } });
  });

export const editorProcedure = roleProcedure("editor", "admin");
export const adminProcedure = roleProcedure("admin");
export const workerProcedure = roleProcedure("worker");
