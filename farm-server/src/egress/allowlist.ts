/**
 * The egress allowlist: which host:port a sandboxed check may reach through the proxy.
 *
 * Patterns: `registry.example` (that host exactly), `*.example.com` (any subdomain, never the apex),
 * either with an optional `:port` (without one: ports 443 and 80 only). IP literals match only when
 * listed exactly (`127.0.0.1`, `[::1]:8080`). Decisions are made on the requested name, which is then
 * what the proxy connects to: there is no second resolution to disagree with.
 */
import { isIP } from "node:net";

export const DEFAULT_PORTS: readonly number[] = [443, 80];

export interface AllowRule {
  /** the pattern as configured, for audit reasons */
  pattern: string;
  /** for `*.example.com`: `example.com`; otherwise the exact host (IPv6 without brackets) */
  host: string;
  wildcard: boolean;
  /** undefined: DEFAULT_PORTS */
  port?: number;
}

export type Verdict = { allowed: true; rule: AllowRule; reason: string } | { allowed: false; reason: string };

const LABEL = /^[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?$/;
/** a last label that getaddrinfo/inet_aton would read as a number (`2130706433`, `0x7f000001`, `127.1`) */
const NUMERIC_LABEL = /^(?:0x[0-9a-f]*|[0-9]+)$/;

/**
 * Lowercases, strips one trailing dot and brackets, and checks the name is a plain DNS name or an IP
 * literal. Returns the canonical host, or a reason it is not acceptable.
 */
export function normalizeHost(raw: string): { host: string } | { error: string } {
  let h = raw.toLowerCase();
  if (h.startsWith("[") && h.endsWith("]")) {
    h = h.slice(1, -1);
    return isIP(h) === 6 ? { host: h } : { error: "not a valid IPv6 address" };
  }
  if (isIP(h) === 4) return { host: h };
  if (isIP(h) === 6) return { host: h };
  if (h.endsWith(".")) h = h.slice(0, -1);
  if (h.length === 0 || h.length > 253) return { error: "not a valid host name" };
  const labels = h.split(".");
  if (!labels.every((l) => LABEL.test(l))) return { error: "not a valid host name" };
  // Numeric forms other than dotted-quad would be resolved to an address by the C library.
  if (NUMERIC_LABEL.test(labels[labels.length - 1]!)) return { error: "not a valid host name (ambiguous numeric form)" };
  return { host: h };
}

function parsePort(s: string): number | undefined {
  if (!/^[0-9]{1,5}$/.test(s)) return undefined;
  const n = Number(s);
  return n >= 1 && n <= 65535 ? n : undefined;
}

/**
 * Splits `host:port`, `[v6]:port` (and, when `portOptional`, `host`, `[v6]`, bare `v6`).
 * Returns the canonical host and the port, or why it cannot be parsed.
 */
export function parseHostPort(s: string, portOptional: boolean): { host: string; port?: number } | { error: string } {
  let hostPart: string;
  let portPart: string | undefined;
  if (s.startsWith("[")) {
    const end = s.indexOf("]");
    if (end < 0) return { error: "unterminated [" };
    hostPart = s.slice(0, end + 1);
    const rest = s.slice(end + 1);
    if (rest !== "") {
      if (!rest.startsWith(":")) return { error: "junk after ]" };
      portPart = rest.slice(1);
    }
  } else {
    const colons = s.split(":").length - 1;
    if (colons > 1 && portOptional && isIP(s) === 6) hostPart = s;
    else if (colons > 1) return { error: "an IPv6 address needs brackets" };
    else if (colons === 1) [hostPart, portPart] = s.split(":") as [string, string];
    else hostPart = s;
  }
  const host = normalizeHost(hostPart);
  if ("error" in host) return host;
  if (portPart === undefined) return portOptional ? { host: host.host } : { error: "a port is required" };
  const port = parsePort(portPart);
  if (port === undefined) return { error: "not a valid port" };
  return { host: host.host, port };
}

/** Parses the configured patterns; throws on the first invalid one (a typo must not widen or silently narrow the list). */
export function parseAllowList(patterns: readonly string[]): AllowRule[] {
  return patterns.map((pattern) => {
    const p = pattern.trim();
    const wildcard = p.startsWith("*.");
    const parsed = parseHostPort(wildcard ? p.slice(2) : p, true);
    if ("error" in parsed) throw new Error(`invalid egress allow pattern ${JSON.stringify(pattern)}: ${parsed.error}`);
    if (wildcard && isIP(parsed.host) !== 0)
      throw new Error(`invalid egress allow pattern ${JSON.stringify(pattern)}: a wildcard cannot apply to an IP address`);
    return { pattern: p, host: parsed.host, wildcard, ...(parsed.port !== undefined ? { port: parsed.port } : {}) };
  });
}

function hostMatches(rule: AllowRule, host: string): boolean {
  if (!rule.wildcard) return rule.host === host;
  return isIP(host) === 0 && host.endsWith(`.${rule.host}`);
}

/** Decides on a canonical host (see normalizeHost) and port. */
export function checkAllowed(rules: readonly AllowRule[], host: string, port: number): Verdict {
  const sameHost = rules.filter((r) => hostMatches(r, host));
  const rule = sameHost.find((r) => (r.port === undefined ? DEFAULT_PORTS.includes(port) : r.port === port));
  if (rule) return { allowed: true, rule, reason: `allowed by ${rule.pattern}` };
  if (sameHost.length > 0) return { allowed: false, reason: `port ${port} is not allowed for ${host}` };
  return { allowed: false, reason: `${host} is not on the egress allowlist` };
}
