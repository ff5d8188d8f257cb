/** What a registered value becomes in redacted text. */
export const REDACTED = "[redacted]";

/**
 * Shorter values are refused: redacting a 4-letter value would mangle ordinary words in every log
 * line, and a value that short is no key anyway (likely a misconfigured reference).
 */
export const MIN_SECRET_LENGTH = 6;

/**
 * Base64 cores shorter than this are not redacted on their own: a few base64 characters occur by
 * chance in ordinary text (ids, hashes) far too often.
 */
const MIN_BASE64_CORE = 8;

/**
 * Removes known secret values from text before it leaves the process (logs, error messages, API
 * answers). A value is held by whoever resolved it; `add` returns the release function. Holders are
 * counted per value, so two concurrent calls that hold the same key do not unregister each other.
 */
export class Redactor {
  private readonly held = new Map<string, { count: number; forms: string[] }>();
  /** all forms of all held values, longest first; rebuilt lazily after a change */
  private forms: string[] | null = null;

  /** Registers `value` until the returned function is called (calling it again does nothing). */
  add(value: string): () => void {
    if (typeof value !== "string" || value.length < MIN_SECRET_LENGTH) {
      // The message never includes the value, not even its length beyond "too short".
      throw new RangeError(`a secret value shorter than ${MIN_SECRET_LENGTH} characters cannot be redacted safely`);
    }
    const entry = this.held.get(value);
    if (entry) entry.count++;
    else this.held.set(value, { count: 1, forms: encodedForms(value) });
    this.forms = null;
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const e = this.held.get(value);
      if (!e) return;
      if (--e.count === 0) this.held.delete(value);
      this.forms = null;
    };
  }

  /** How many distinct values are held (for tests and diagnostics; never the values). */
  get size(): number {
    return this.held.size;
  }

  /**
   * Replaces every occurrence of a held value, in any of its encoded forms, with `[redacted]`. All
   * matches of all forms are found first and merged, so overlapping values (one ending where
   * another starts) are both removed instead of leaving the tail of one behind.
   */
  redact(text: string): string {
    if (this.held.size === 0 || typeof text !== "string" || text.length === 0) return text;
    const forms = (this.forms ??= [...new Set([...this.held.values()].flatMap((e) => e.forms))].sort((a, b) => b.length - a.length));
    const spans: Array<[number, number]> = [];
    for (const f of forms) {
      // Every start position, overlapping ones too: "aaaaaaa" holds "aaaaaa" twice.
      for (let i = text.indexOf(f); i !== -1; i = text.indexOf(f, i + 1)) spans.push([i, i + f.length]);
    }
    if (spans.length === 0) return text;
    spans.sort((a, b) => a[0] - b[0] || b[1] - a[1]);
    let out = "";
    let pos = 0;
    let cur = spans[0]!;
    for (const s of spans.slice(1)) {
      if (s[0] <= cur[1]) cur = [cur[0], Math.max(cur[1], s[1])];
      else {
        out += text.slice(pos, cur[0]) + REDACTED;
        pos = cur[1];
        cur = s;
      }
    }
    return out + text.slice(pos, cur[0]) + REDACTED + text.slice(cur[1]);
  }

  /**
   * A redacted copy of a value for structured logs: strings, object keys and values, array items,
   * and errors (message, stack, own properties) at any depth. The input is not modified. Other
   * objects (Buffers, Maps, class instances) are returned as they are: serialize them first. With
   * nothing held, the input itself is returned.
   */
  redactDeep<T>(v: T): T {
    if (this.held.size === 0) return v;
    return this.deep(v, new WeakMap()) as T;
  }

  private deep(v: unknown, seen: WeakMap<object, unknown>): unknown {
    if (typeof v === "string") return this.redact(v);
    if (v === null || typeof v !== "object") return v;
    if (seen.has(v)) return seen.get(v);
    if (Array.isArray(v)) {
      const out: unknown[] = [];
      seen.set(v, out);
      for (const x of v) out.push(this.deep(x, seen));
      return out;
    }
    if (v instanceof Error) {
      // Same prototype (instanceof still works); message and stack are not enumerable, so copy them.
      const out = Object.create(Object.getPrototypeOf(v)) as Record<string, unknown>;
      seen.set(v, out);
      for (const k of ["name", "message", "stack"] as const) {
        if (Object.prototype.hasOwnProperty.call(v, k))
          Object.defineProperty(out, k, {
            value: this.deep((v as unknown as Record<string, unknown>)[k], seen),
            writable: true,
            configurable: true,
            enumerable: false,
          });
      }
      if ("cause" in v)
        Object.defineProperty(out, "cause", { value: this.deep(v.cause, seen), writable: true, configurable: true, enumerable: false });
      for (const [k, x] of Object.entries(v)) out[this.redact(k)] = this.deep(x, seen);
      return out;
    }
    const proto = Object.getPrototypeOf(v);
    if (proto !== Object.prototype && proto !== null) return v;
    const out: Record<string, unknown> = proto === null ? Object.create(null) : {};
    seen.set(v, out);
    for (const [k, x] of Object.entries(v)) out[this.redact(k)] = this.deep(x, seen);
    return out;
  }
}

/**
 * The forms a value takes when it leaks: as is, escaped inside a JSON string (and a JSON string
 * inside a JSON string: a logged request body), URL-encoded (path, query, form), and base64 (alone,
 * as in a header, or inside a longer base64 text such as `Basic base64(user:key)`).
 */
function encodedForms(value: string): string[] {
  const json = JSON.stringify(value).slice(1, -1);
  const forms = [
    value,
    json,
    JSON.stringify(json).slice(1, -1),
    encodeURIComponent(value),
    encodeURI(value),
    new URLSearchParams({ v: value }).toString().slice(2),
    ...base64Forms(Buffer.from(value, "utf8")),
  ];
  // Percent-escapes may be written in lower case by other encoders.
  for (const f of forms.slice()) if (/%[0-9A-F]{2}/.test(f)) forms.push(f.replace(/%[0-9A-F]{2}/g, (m) => m.toLowerCase()));
  return [...new Set(forms)].filter((f) => f.length >= MIN_SECRET_LENGTH);
}

/**
 * Base64 of the value alone (standard and URL alphabets, with and without padding), and, for each
 * of the three alignments the value can have inside a longer encoded text, the run of characters
 * that depends on the value's bytes only. The one or two characters at each edge mix in unknown
 * neighbouring bytes and are left; they cannot be turned back into the value.
 */
function base64Forms(bytes: Buffer): string[] {
  const out: string[] = [];
  const whole = bytes.toString("base64");
  out.push(whole, whole.replace(/=+$/, ""), bytes.toString("base64url"));
  for (let lead = 0; lead < 3; lead++) {
    // The value starts `lead` bytes into a 3-byte group; keep only groups made of value bytes.
    const skip = (3 - lead) % 3;
    const usable = Math.floor((bytes.length - skip) / 3) * 3;
    if (usable <= 0) continue;
    const core = bytes.subarray(skip, skip + usable);
    const std = core.toString("base64");
    if (std.length < MIN_BASE64_CORE) continue;
    out.push(std, core.toString("base64url"));
  }
  return out;
}

/**
 * Shapes of credentials that are masked even when no holder registered them: a second line of
 * defence for logs (a key pasted into a task, an upstream error that echoes a header). The prefix is
 * kept so a reader still sees what kind of thing was there.
 */
const SHAPES: ReadonlyArray<{ name: string; re: RegExp; keep: (m: string) => string }> = [
  // Anthropic keys (sk-ant-api03-…, sk-ant-admin01-…); checked before the generic sk- shape.
  { name: "anthropic-key", re: /(?<![A-Za-z0-9])sk-ant-[A-Za-z0-9_-]{10,}/g, keep: () => "sk-ant-" },
  // OpenAI-style keys, old (sk-<alnum>) and project/service keys (sk-proj-…). The look-behind
  // keeps ids such as "task-0123…" from being masked.
  { name: "sk-key", re: /(?<![A-Za-z0-9])sk-(?:[A-Za-z0-9]{20,}|(?:proj|svcacct|admin)-[A-Za-z0-9_-]{20,})/g, keep: () => "sk-" },
  { name: "bearer", re: /\bBearer\s+\S{16,}/gi, keep: (m) => m.slice(0, m.search(/\s/) + 1) },
  // HashiCorp Vault service/batch/recovery tokens and 1Password service-account tokens: what the
  // secret providers themselves hold.
  { name: "vault-token", re: /(?<![A-Za-z0-9])hv[sbr]\.[A-Za-z0-9_-]{20,}/g, keep: (m) => m.slice(0, 4) },
  { name: "1password-token", re: /(?<![A-Za-z0-9])ops_[A-Za-z0-9_-]{20,}/g, keep: () => "ops_" },
];

export const secretPatterns = {
  shapes: SHAPES.map((s) => ({ name: s.name, re: s.re })),
  /** Masks every string shaped like an API key or token, known or not. */
  redactKnownShapes(text: string): string {
    if (typeof text !== "string") return text;
    let out = text;
    for (const s of SHAPES) out = out.replace(s.re, (m) => s.keep(m) + REDACTED);
    return out;
  },
};
