import { z } from "zod";

/**
 * Text that people and models write ends up in terminals, editors and prompts. Control characters
 * have no business in it: NUL truncates C strings and git arguments, ESC starts terminal escape
 * sequences (recolour, retitle, clear the screen), C1 codes (U+0080–U+009F) are 8-bit escapes.
 */
const CONTROL = /[\u0000-\u001f\u007f-\u009f]/;
/** Multi-line text may keep newlines and tabs, and a carriage return only as part of a CRLF line end. */
const CONTROL_IN_MULTILINE = /[\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f-\u009f]|\r(?!\n)/;

const describe = (c: string) => `U+${c.codePointAt(0)!.toString(16).toUpperCase().padStart(4, "0")}`;

/** Why a one-line text (a title, a name) is refused, or undefined. */
export function singleLineTextProblem(s: string): string | undefined {
  const m = CONTROL.exec(s);
  return m
    ? `must not contain control characters (found ${describe(m[0])} at position ${m.index + 1}); use plain text on one line`
    : undefined;
}

/** Why a multi-line text (a goal, a description) is refused, or undefined. */
export function multiLineTextProblem(s: string): string | undefined {
  const m = CONTROL_IN_MULTILINE.exec(s);
  return m
    ? `must not contain control characters other than newlines and tabs (found ${describe(m[0])} at position ${m.index + 1}); remove it`
    : undefined;
}

const refineWith = (problem: (s: string) => string | undefined) => (s: string, ctx: z.core.$RefinementCtx<string>) => {
  const p = problem(s);
  if (p) ctx.addIssue({ code: "custom", message: p, input: s });
};

/** A title or name: one line of plain text. */
export const singleLineText = (min: number, max: number, emptyMessage = "must not be empty") =>
  z.string().min(min, emptyMessage).max(max, `must be at most ${max} characters`).superRefine(refineWith(singleLineTextProblem));

/** A goal or description: plain text, newlines and tabs allowed. */
export const multiLineText = (min: number, max: number, emptyMessage = "must not be empty") =>
  z.string().min(min, emptyMessage).max(max, `must be at most ${max} characters`).superRefine(refineWith(multiLineTextProblem));
