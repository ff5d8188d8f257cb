import { isMap, isSeq, stringify, type Node } from "yaml";
import { z } from "zod";
import { checkManifestGraph, TaskManifest, type ManifestProblem } from "./manifest.js";
import { MAX_MANIFEST_BYTES, parseYamlWithLimits } from "./yaml-limits.js";

/** A problem found in a manifest file, placed where an editor or terminal can point at it. */
export interface ManifestDiagnostic {
  file: string;
  line: number; // 1-based
  column: number; // 1-based
  field: string; // dotted path, e.g. units[2].dependsOn[0]
  message: string;
}

export type ParsedManifest = { ok: true; manifest: TaskManifest } | { ok: false; problems: ManifestDiagnostic[] };

export const formatField = (path: readonly PropertyKey[]): string =>
  path.reduce<string>((s, p) => (typeof p === "number" ? `${s}[${p}]` : s ? `${s}.${String(p)}` : String(p)), "") || "(top level)";

export const formatDiagnostic = (d: ManifestDiagnostic): string => `${d.file}:${d.line}:${d.column}: ${d.field}: ${d.message}`;

/** Finds the YAML node at a path, or the deepest existing ancestor, to place a problem on a line. */
function nodeAt(root: Node | null | undefined, path: readonly PropertyKey[]): { node: Node | null | undefined; keyNode?: Node } {
  let node = root;
  let keyNode: Node | undefined;
  for (const p of path) {
    if (isMap(node)) {
      const pair = node.items.find((it) => (it.key as { value?: unknown } | null)?.value === p);
      if (!pair) break;
      keyNode = pair.key as Node;
      node = pair.value as Node | null;
    } else if (isSeq(node) && typeof p === "number") {
      const item = node.items[p] as Node | undefined;
      if (!item) break;
      node = item;
      keyNode = undefined;
    } else break;
  }
  return { node, keyNode };
}

/**
 * Parses and validates a manifest file's text; never throws for bad input. The text is held to the
 * YAML limits (MAX_MANIFEST_BYTES, the alias limit): a manifest is committed by anyone with push access.
 */
export function parseManifestYaml(text: string, file = "manifest.yaml"): ParsedManifest {
  const read = parseYamlWithLimits(text, { maxBytes: MAX_MANIFEST_BYTES, what: "a task manifest" });
  if (!read.ok)
    return {
      ok: false,
      problems: read.problems.map((p) => ({ file, line: p.line, column: p.column, field: "(syntax)", message: p.message })),
    };
  const { doc, lineCounter: lc } = read;
  const place = (offset: number | undefined) => {
    const p = lc.linePos(offset ?? 0);
    return { line: p.line, column: p.col };
  };
  const diag = (path: readonly PropertyKey[], message: string): ManifestDiagnostic => {
    const { node, keyNode } = nodeAt(doc.contents, path);
    const at = (keyNode ?? node)?.range?.[0];
    return { file, ...place(at), field: formatField(path), message };
  };
  const parsed = TaskManifest.safeParse(read.value);
  if (!parsed.success) {
    // The unit graph is checked too (on the units whose ids and dependencies read), so the author
    // sees every problem at once rather than the graph's only after the fields are fixed.
    const units = lenientUnits(read.value);
    const graph = units ? checkManifestGraph({ units }).map((p) => diag(p.path, p.message)) : [];
    const problems = [...parsed.error.issues.map((i) => diag(i.path, issueMessage(i))), ...graph];
    return { ok: false, problems: problems.sort((a, b) => a.line - b.line || a.column - b.column) };
  }
  const graph: ManifestProblem[] = checkManifestGraph(parsed.data);
  if (graph.length > 0) return { ok: false, problems: graph.map((p) => diag(p.path, p.message)) };
  return { ok: true, manifest: parsed.data };
}

/** The units' ids, dependencies and review targets where they are well-formed enough to check; else null. */
function lenientUnits(value: unknown): Array<{ id: string; dependsOn: string[]; reviews?: string; role?: string }> | null {
  const units = (value as { units?: unknown } | null)?.units;
  if (!Array.isArray(units)) return null;
  const out: Array<{ id: string; dependsOn: string[]; reviews?: string; role?: string }> = [];
  for (const u of units) {
    const r = (u ?? {}) as Record<string, unknown>;
    const deps = r.dependsOn ?? [];
    if (typeof r.id !== "string" || !Array.isArray(deps) || !deps.every((d) => typeof d === "string")) return null;
    out.push({
      id: r.id,
      dependsOn: deps as string[],
      ...(typeof r.reviews === "string" ? { reviews: r.reviews } : {}),
      role: typeof r.role === "string" ? r.role : "codegen",
    });
  }
  return out;
}

function issueMessage(i: z.core.$ZodIssue): string {
  if (i.code === "unrecognized_keys") return `unknown field${i.keys.length > 1 ? "s" : ""}: ${i.keys.join(", ")}`;
  if (i.code === "invalid_type" && i.input === undefined) return "is required";
  return i.message;
}

/** Writes a manifest as YAML with a header that says who owns which part. */
export function stringifyManifest(m: TaskManifest): string {
  return (
    "# Optimus task manifest, kept by the farm: it rewrites this file as units progress.\n" +
    "# Change a running task through `optimus` or the editor; edits here are not read back.\n" +
    stringify(m, { lineWidth: 0, aliasDuplicateObjects: false })
  );
}
