import { secretPatterns, type Redactor } from "./redactor.js";

/** References are echoed in messages; a very long one (a pasted document?) is cut. */
const MAX_REF_IN_MESSAGE = 300;
/** At most this much of a provider's own words (first line of its stderr or error body). */
const MAX_DETAIL = 200;

/**
 * A secret could not be read. The message says which reference and why, for the user as is:
 * "cannot read secrets-manager://prod/anthropic/key: 1Password CLI `op` is not installed". It never
 * holds the value or a part of it, and it carries no `cause`: a child process error holds the
 * child's stdout, which is the value when the failure came after the read.
 */
export class SecretError extends Error {
  readonly ref: string;

  constructor(ref: string, reason: string, verb = "cannot read") {
    const shown = safeRef(ref);
    super(`${verb} ${shown}: ${reason}`);
    this.name = "SecretError";
    this.ref = shown;
  }
}

/**
 * A reference as it may appear in a message: cut to a sane length, control characters made
 * visible, and key-shaped strings masked (someone may paste the key where the reference belongs).
 */
export function safeRef(ref: string): string {
  const s = String(ref);
  const cut = s.length > MAX_REF_IN_MESSAGE ? `${s.slice(0, MAX_REF_IN_MESSAGE)}…` : s;
  return secretPatterns.redactKnownShapes(
    cut.replace(/[\u0000-\u001f\u007f]/g, (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, "0")}`),
  );
}

/**
 * What a provider said about a failure, fit for a message: its first non-empty line only (tools may
 * echo their input or dump details below), shortened, with held values and key shapes masked.
 * Empty when there is nothing worth showing.
 */
export function providerDetail(text: string | undefined, redactor?: Redactor): string {
  const line =
    (text ?? "")
      .split(/\r?\n/)
      .find((l) => l.trim().length > 0)
      ?.trim() ?? "";
  if (!line) return "";
  // Redact before cutting, so a value cut in half at the limit is still recognised.
  const masked = secretPatterns.redactKnownShapes(redactor ? redactor.redact(line) : line).replace(/[\u0000-\u001f\u007f]/g, " ");
  return masked.length > MAX_DETAIL ? `${masked.slice(0, MAX_DETAIL)}…` : masked;
}
