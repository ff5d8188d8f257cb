/**
 * API tokens on the wire: what `admin.createToken` takes and what `admin.listTokens` (and
 * `optimus token list --json`) answers, and the time-to-live a token's expiry slides by.
 */
import { z } from "zod";
import { TokenRole } from "./config.js";

const SECOND = 1_000;
const UNIT_MS = { s: SECOND, m: 60 * SECOND, h: 3_600 * SECOND, d: 86_400 * SECOND } as const;

/**
 * A worker token's time-to-live when none is given: a day. Long enough that a worker stopped
 * overnight (or a farm restarted) is not locked out, short enough that a token copied off a node
 * that no longer runs stops working the next day. While the worker runs, the farm slides the
 * expiry on, so a running worker never sees its token expire (ADR 0023).
 */
export const DEFAULT_WORKER_TOKEN_TTL_MS = 24 * UNIT_MS.h;
/** The shortest ttl: the farm renews at most every ttl/4, so less than this would mean a write at nearly every call. */
export const MIN_TOKEN_TTL_MS = SECOND;
/** The longest: a worker token is never a long-lived credential. */
export const MAX_TOKEN_TTL_MS = 365 * UNIT_MS.d;

export const TokenTtlMs = z.number().int().min(MIN_TOKEN_TTL_MS).max(MAX_TOKEN_TTL_MS);

/** `90s`, `30m`, `24h`, `7d` as milliseconds; null when the text is not such a duration or is out of range. */
export function parseTokenTtl(text: string): number | null {
  const m = /^(\d{1,9})([smhd])$/.exec(text.trim());
  if (!m) return null;
  const ms = Number(m[1]) * UNIT_MS[m[2] as keyof typeof UNIT_MS];
  return TokenTtlMs.safeParse(ms).success ? ms : null;
}

/** A duration as `--ttl` takes it, in its largest whole unit: `1d`, `36h`, `90s`. */
export function formatTokenTtl(ms: number): string {
  for (const unit of ["d", "h", "m", "s"] as const) if (ms % UNIT_MS[unit] === 0) return `${ms / UNIT_MS[unit]}${unit}`;
  return `${ms}ms`;
}

/** A moment as people read it in a table or a message: `2026-12-01 23:43 UTC`. */
export const utcMinute = (ms: number): string => `${new Date(ms).toISOString().slice(0, 16).replace("T", " ")} UTC`;

/** `ttlMs`: the expiry slides by this while the token is used; a worker token always has one (default a day). */
export const CreateTokenInput = z.strictObject({
  role: TokenRole,
  name: z.string().trim().min(1).max(100),
  approver: z.boolean().optional(),
  ttlMs: TokenTtlMs.optional(),
});
export type CreateTokenInput = z.infer<typeof CreateTokenInput>;

/** One token as `optimus token list` shows it (never its secret); times on the farm's clock (ms). */
export const TokenListEntry = z.strictObject({
  tokenId: z.string(),
  name: z.string(),
  role: TokenRole,
  approver: z.boolean(),
  createdAt: z.number(),
  revoked: z.boolean(),
  /** the last request it authenticated since this farm server started (kept in memory only) */
  lastUsedAt: z.number().optional(),
  /** when it stops working unless used before then (absent: it does not expire) */
  expiresAt: z.number().optional(),
  /** how far each use pushes `expiresAt` on */
  ttlMs: z.number().optional(),
});
export type TokenListEntry = z.infer<typeof TokenListEntry>;
