import { TRPCClientError } from "@trpc/client";
import { createFarmClient, type FarmClient } from "@optimus/farm-server/dist/client/farm-client.js";
import { trustErrorIn, type FarmTrust } from "@optimus/farm-server/dist/client/farm-trust.js";

export type FarmApi = FarmClient;

/**
 * A one-shot HTTP client: used to check a URL and token before holding a socket open. `trust`: what
 * an https:// farm's certificate must satisfy; a refused one is never sent a request (nor the token).
 */
export function httpClient(url: string, token: string, timeoutMs = 5_000, trust: FarmTrust = {}): FarmApi {
  return createFarmClient({ url, token, trust, transport: "http", timeoutMs }).client;
}

export interface SocketClient {
  api: FarmApi;
  close(): void;
}

/**
 * The editor's long-lived client: the farm's own typed client over one WebSocket (bundled `ws`; the
 * extension host has no global WebSocket on Node 20) that reconnects by itself. Subscriptions resume
 * from their last tracked id, which is what makes the units tree catch up without missing or
 * doubling a state.
 */
export function socketClient(url: string, token: string, on: { open(): void; close(): void }, trust: FarmTrust = {}): SocketClient {
  const c = createFarmClient({
    url,
    token,
    trust,
    transport: "ws",
    maxRetryDelayMs: 3_000,
    onConnectionChange: (s) => (s === "open" ? on.open() : on.close()),
  });
  return { api: c.client, close: c.close };
}

/** Checks a farm URL typed by a person; returns the normalised base URL or why it is not one. */
export function normaliseFarmUrl(input: string): { url: string } | { error: string } {
  const text = input.trim();
  if (!text) return { error: "Enter the farm's URL, e.g. http://127.0.0.1:7420" };
  let u: URL;
  try {
    u = new URL(/^[a-z]+:\/\//i.test(text) ? text : `http://${text}`);
  } catch {
    return { error: `'${text}' is not a URL; expected something like http://127.0.0.1:7420` };
  }
  if (u.protocol !== "http:" && u.protocol !== "https:") return { error: `use http:// or https:// (got ${u.protocol})` };
  return { url: `${u.protocol}//${u.host}${u.pathname.replace(/\/+$/, "")}` };
}

/**
 * One sentence for a person, for any failure talking to the farm: no stack traces, and a hint of
 * what to do. `kind` lets callers offer the right fix (enter a token, change the URL, retry).
 */
export function describeFarmError(
  err: unknown,
  url: string,
): { kind: "auth" | "unreachable" | "refused" | "certificate" | "other"; message: string } {
  // Refused before sending (see FarmConnection.api): its message already says so.
  if (err instanceof Error && err.name === "NotConnectedError") return { kind: "unreachable", message: err.message };
  // The farm's certificate (or http:// to a TLS farm, or an unusable pin setting): its own line says which and why.
  const trust = trustErrorIn(err);
  if (trust) return { kind: "certificate", message: `${trust.message}.` };
  if (err instanceof TRPCClientError) {
    const code = (err.data as { code?: string } | undefined)?.code;
    const status = (err.data as { httpStatus?: number } | undefined)?.httpStatus;
    if (code === "UNAUTHORIZED" || status === 401)
      return {
        kind: "auth",
        message: `The farm at ${url} did not accept the token: it is wrong or was revoked. Create one with \`optimus token create --role editor\`.`,
      };
    if (code === "FORBIDDEN" || status === 403)
      return { kind: "auth", message: `The token is not allowed to do this on ${url}: ${err.message}` };
    if (code) return { kind: "refused", message: err.message };
    const cause = causeCode(err);
    if (cause) return { kind: "unreachable", message: unreachable(url, cause) };
    return { kind: "unreachable", message: `Cannot reach the farm at ${url}: ${err.message}` };
  }
  const cause = causeCode(err);
  if (cause) return { kind: "unreachable", message: unreachable(url, cause) };
  return { kind: "other", message: err instanceof Error ? err.message : String(err) };
}

function causeCode(err: unknown): string | undefined {
  for (let e: unknown = err, i = 0; e && i < 5; e = (e as { cause?: unknown }).cause, i++) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === "string" && /^E[A-Z]+$/.test(code)) return code;
    if ((e as Error).name === "TimeoutError") return "ETIMEDOUT";
  }
  return undefined;
}

function unreachable(url: string, code: string): string {
  const why =
    code === "ECONNREFUSED"
      ? "nothing is listening there"
      : code === "ENOTFOUND"
        ? "the host name does not resolve"
        : code === "ETIMEDOUT"
          ? "it did not answer in time"
          : code;
  return `Cannot reach the farm at ${url}: ${why}. Is it running (\`npm start\` or \`optimus farm up\`)?`;
}

/**
 * The change's current version when the farm refused a decision on an older one (tRPC `CONFLICT`
 * with `data.stale`): what the "Open attempt N" button opens.
 */
export function staleOf(err: unknown): { attempt: number; head: string } | undefined {
  if (!(err instanceof TRPCClientError)) return undefined;
  const data = err.data as { code?: string; stale?: { attempt?: unknown; head?: unknown } } | undefined;
  const st = data?.stale;
  if (data?.code !== "CONFLICT" || !st || typeof st.attempt !== "number" || typeof st.head !== "string") return undefined;
  return { attempt: st.attempt, head: st.head };
}
