import { isAlias, LineCounter, parseDocument, visit, type Document } from "yaml";

/**
 * Limits for YAML read from a repository (task manifests, `.optimus/config.yaml`): a committed file
 * is untrusted input, and must not be able to exhaust the farm's memory or time.
 *
 * - Aliases: YAML `*refs` can expand exponentially ("billion laughs"); the yaml package counts
 *   expanded nodes against this limit (its `maxAliasCount`). Hand-written files never come close.
 * - Size: one manifest (a task of up to 2,000 units) fits comfortably in 256 KiB; anything larger
 *   is refused before it is parsed.
 */
export const MAX_YAML_ALIAS_COUNT = 100;
/** Largest task manifest the farm reads (`.optimus/tasks/<id>/manifest.yaml`, `optimus task import`). */
export const MAX_MANIFEST_BYTES = 256 * 1024;
/** Largest `.optimus/config.yaml` the farm reads. */
export const MAX_CONFIG_BYTES = 256 * 1024;

export interface YamlProblem {
  line: number; // 1-based
  column: number; // 1-based
  message: string;
}

export type LimitedYaml =
  { ok: true; doc: Document.Parsed; value: unknown; lineCounter: LineCounter } | { ok: false; problems: YamlProblem[] };

const kib = (bytes: number) => `${Math.ceil(bytes / 1024)} KiB`;

/** The UTF-8 size of a text, without encoding all of a text that is obviously too large. */
function utf8Bytes(text: string, atMost: number): number {
  if (text.length > atMost) return text.length; // every UTF-16 unit is at least one UTF-8 byte
  return new TextEncoder().encode(text).length;
}

/** Why a file of `bytes` bytes is too large, or undefined (also used before reading a file). */
export function yamlSizeProblem(bytes: number, maxBytes: number, what: string): string | undefined {
  return bytes > maxBytes ? `the file is ${kib(bytes)}, larger than the limit of ${kib(maxBytes)} for ${what}; make it smaller` : undefined;
}

/**
 * Parses YAML text under the size and alias limits, and never throws for bad input: syntax errors,
 * an alias bomb, an oversized text or a document too deep for the parser come back as problems
 * with a line and column.
 */
export function parseYamlWithLimits(text: string, opts: { maxBytes: number; what: string; uniqueKeys?: boolean }): LimitedYaml {
  const tooLarge = yamlSizeProblem(utf8Bytes(text, opts.maxBytes), opts.maxBytes, opts.what);
  if (tooLarge) return { ok: false, problems: [{ line: 1, column: 1, message: tooLarge }] };
  const lineCounter = new LineCounter();
  const at = (offset: number | undefined) => {
    const p = lineCounter.linePos(offset ?? 0);
    return { line: p.line, column: p.col };
  };
  let doc: Document.Parsed;
  try {
    doc = parseDocument(text, { lineCounter, prettyErrors: false, uniqueKeys: opts.uniqueKeys ?? true });
  } catch (err) {
    return {
      ok: false,
      problems: [{ line: 1, column: 1, message: `the YAML could not be parsed (${(err as Error).message}); simplify its structure` }],
    };
  }
  if (doc.errors.length > 0)
    return { ok: false, problems: doc.errors.map((e) => ({ ...at(e.pos[0]), message: e.message.split("\n")[0]! })) };
  try {
    return { ok: true, doc, value: doc.toJS({ maxAliasCount: MAX_YAML_ALIAS_COUNT }), lineCounter };
  } catch (err) {
    if (err instanceof ReferenceError && /excessive alias count/i.test(err.message)) {
      let first: number | undefined;
      visit(doc, {
        Alias(_, node) {
          if (isAlias(node)) first = node.range?.[0];
          return visit.BREAK;
        },
      });
      return {
        ok: false,
        problems: [
          {
            ...at(first),
            message: `its YAML aliases expand to more than ${MAX_YAML_ALIAS_COUNT} copies (an alias bomb); write the values out instead of repeating *aliases`,
          },
        ],
      };
    }
    return {
      ok: false,
      problems: [{ line: 1, column: 1, message: `the YAML could not be read (${(err as Error).message.split("\n")[0]}); simplify it` }],
    };
  }
}
