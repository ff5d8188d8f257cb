/**
 * The strict edit format a codegen model answers with (a wire contract: the worker's local model,
 * the frontier gateway's tool and the worker that applies it all speak it), and its parser. The
 * model is untrusted: the parser checks the shape; applying it checks every path
 * (farm-server/src/worker/edits.ts).
 */
import { z } from "zod";

const ReplaceEditSchema = z.strictObject({
  kind: z.literal("replace"),
  path: z.string().min(1),
  search: z.string().min(1, "must not be empty (it has to name the text to replace)"),
  replace: z.string(),
});
const WriteEditSchema = z.strictObject({ kind: z.literal("write"), path: z.string().min(1), content: z.string() });

export const EditSchema = z.discriminatedUnion("kind", [ReplaceEditSchema, WriteEditSchema]);
export const EditProposalSchema = z.strictObject({ summary: z.string(), edits: z.array(EditSchema), done: z.boolean() });
export type Edit = z.infer<typeof EditSchema>;
export type EditProposal = z.infer<typeof EditProposalSchema>;

/**
 * The same shape as a plain JSON Schema, written by hand so it stays within what grammars accept
 * (llama.cpp GBNF, OpenAI strict mode): every property required, no extra properties, `anyOf` rather
 * than `oneOf`, enums rather than `const`, no numbers (the grammar lets numbers run wild).
 */
export const editProposalJsonSchema = {
  type: "object",
  properties: {
    summary: { type: "string", description: "one or two sentences: what the edits do and why" },
    edits: {
      type: "array",
      items: {
        anyOf: [
          {
            type: "object",
            properties: {
              kind: { type: "string", enum: ["replace"] },
              path: { type: "string", description: "repository-relative file path" },
              search: { type: "string", description: "text that occurs exactly once in the file" },
              replace: { type: "string" },
            },
            required: ["kind", "path", "search", "replace"],
            additionalProperties: false,
          },
          {
            type: "object",
            properties: {
              kind: { type: "string", enum: ["write"] },
              path: { type: "string", description: "repository-relative file path" },
              content: { type: "string", description: "the whole new file" },
            },
            required: ["kind", "path", "content"],
            additionalProperties: false,
          },
        ],
      },
    },
    done: { type: "boolean", description: "true when the unit's goal is met after these edits" },
  },
  required: ["summary", "edits", "done"],
  additionalProperties: false,
} as const satisfies Record<string, unknown>;

export type ParseResult = { ok: true; proposal: EditProposal } | { ok: false; error: string };

/** Parses a model's answer. Tolerates a ```json fence, which unconstrained chat models like to add. */
export function parseEditProposal(text: string): ParseResult {
  const body = stripFence(text.trim());
  if (body === "") return { ok: false, error: "the answer is empty: expected a JSON object with summary, edits and done" };
  let value: unknown;
  try {
    value = JSON.parse(body);
  } catch (err) {
    if (endsEarly(body)) {
      return {
        ok: false,
        error: `the answer is truncated JSON: it ends early after ${body.length} characters (the model ran out of tokens; ask for smaller edits or raise the limit)`,
      };
    }
    return { ok: false, error: `the answer is not valid JSON: ${(err as Error).message}` };
  }
  const parsed = EditProposalSchema.safeParse(value);
  if (parsed.success) return { ok: true, proposal: parsed.data };
  const problems = parsed.error.issues.slice(0, 5).map((i) => `${fieldName(i.path)}: ${i.message}`);
  return { ok: false, error: `the answer does not match the edit format: ${problems.join("; ")}` };
}

function stripFence(text: string): string {
  const m = /^```[a-zA-Z]*\n([\s\S]*?)\n?```$/.exec(text);
  return m ? m[1]!.trim() : text;
}

/** True when the text is a prefix of some JSON value: an open string or unclosed brackets at the end. */
function endsEarly(text: string): boolean {
  let depth = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (inString) {
      if (c === "\\") i++;
      else if (c === '"') inString = false;
    } else if (c === '"') inString = true;
    else if (c === "{" || c === "[") depth++;
    else if (c === "}" || c === "]") depth--;
  }
  return inString || depth > 0;
}

function fieldName(path: ReadonlyArray<PropertyKey>): string {
  if (path.length === 0) return "(top level)";
  return path.map((p, i) => (typeof p === "number" ? `[${p}]` : `${i === 0 ? "" : "."}${String(p)}`)).join("");
}
