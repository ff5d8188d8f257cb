import { SecretError } from "./secret-error.js";

export const SECRET_REF_SCHEME = "secrets-manager://";

/** Where a secret lives: a configured vault, an item in it, a field of the item. */
export interface SecretRef {
  vault: string;
  item: string;
  field: string;
}

const PART = /^[A-Za-z0-9._ -]{1,200}$/;

/**
 * True for anything written as a reference, valid or not: a malformed reference must be reported
 * as one (by parseSecretRef), never mistaken for a literal key.
 */
export function isSecretRef(s: unknown): s is string {
  return typeof s === "string" && s.startsWith(SECRET_REF_SCHEME);
}

/**
 * `secrets-manager://{vault}/{item}/{field}` → its parts. Each part is 1–200 characters of letters,
 * digits, `.`, `_`, `-` and spaces: what 1Password references accept, safe as a file name and an
 * environment variable name once mapped, and with no way to spell a path (`/`, `.`, `..`) or hide a
 * character (no escapes, no control characters).
 */
export function parseSecretRef(ref: string): SecretRef {
  const bad = (why: string) => new SecretError(String(ref), why, "invalid secret reference");
  if (typeof ref !== "string") throw bad("a reference is a string");
  if (!ref.startsWith(SECRET_REF_SCHEME)) throw bad(`it must start with ${SECRET_REF_SCHEME}`);
  const parts = ref.slice(SECRET_REF_SCHEME.length).split("/");
  if (parts.length !== 3) throw bad(`it must be ${SECRET_REF_SCHEME}{vault}/{item}/{field}, found ${parts.length} part(s)`);
  const names = ["vault", "item", "field"] as const;
  for (let i = 0; i < 3; i++) {
    const p = parts[i]!;
    const name = names[i]!;
    if (p.length === 0) throw bad(`the ${name} is empty`);
    if (p.length > 200) throw bad(`the ${name} is longer than 200 characters`);
    if (/[\u0000-\u001f\u007f]/.test(p)) throw bad(`the ${name} holds a control character`);
    if (!PART.test(p)) throw bad(`the ${name} may hold only letters, digits, '.', '_', '-' and spaces`);
    if (p === "." || p === "..") throw bad(`the ${name} cannot be '${p}'`);
    // Leading or trailing spaces are invisible in a config file: almost surely a typo.
    if (p.trim() !== p) throw bad(`the ${name} starts or ends with a space`);
  }
  return { vault: parts[0]!, item: parts[1]!, field: parts[2]! };
}

export const formatSecretRef = (r: SecretRef): string => `${SECRET_REF_SCHEME}${r.vault}/${r.item}/${r.field}`;
