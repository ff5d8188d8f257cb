import { tlsOnlyError, type FarmEndpoints } from "../client/farm-endpoints.js";
import { trustErrorIn } from "../client/farm-trust.js";
/** Why a request did not reach its server, in a few words (the socket's error code, not undici's "fetch failed"). */
export function networkCause(err: unknown, timeoutMs: number): string {
  // A refused certificate says it all in its own line.
  const refused = trustErrorIn(err);
  if (refused) return refused.message;
  const e = err as Error & { cause?: { code?: string; message?: string } };
  if (e.name === "TimeoutError" || e.name === "AbortError") return `no answer within ${timeoutMs / 1000} s`;
  const code = e.cause?.code;
  if (code === "ECONNREFUSED") return "connection refused (nothing listens there)";
  if (code === "ENOTFOUND" || code === "EAI_AGAIN") return "its host name is not found";
  if (code === "ECONNRESET" || code === "UND_ERR_SOCKET") return "the connection was reset";
  if (code === "EHOSTUNREACH" || code === "ENETUNREACH") return "no route to its host";
  return code ?? e.cause?.message ?? e.message;
}

/** Why a farm's URL does not answer, from one quick request to its `/healthz` (with the client's TLS trust: `fetchFn`). */
export async function farmUnreachableCause(url: string, timeoutMs = 2_000, fetchFn: typeof fetch = fetch): Promise<string> {
  try {
    const res = await fetchFn(`${url.replace(/\/+$/, "")}/healthz`, { signal: AbortSignal.timeout(timeoutMs) });
    await res.body?.cancel();
    const plain = tlsOnlyError(res, url);
    if (plain) return plain.message;
    return res.ok ? "it answers HTTP, but its WebSocket (/ws) does not open" : `it answers HTTP ${res.status}`;
  } catch (err) {
    return networkCause(err, timeoutMs);
  }
}

/**
 * Says, every few seconds, that a worker's farm cannot be reached and for how long, while its
 * connection is down (and once when it is back), instead of retrying in silence. A connection that
 * opens within `firstReportMs` is not reported at all.
 */
export class FarmReachability {
  private since: number | null = null;
  private reported = false;
  private timer: NodeJS.Timeout | null = null;

  constructor(
    /** the farm's URL, or its nodes (the one believed to lead is named) */
    private readonly farm: string | FarmEndpoints,
    private readonly say: (msg: string) => void,
    private readonly o: { firstReportMs?: number; everyMs?: number } = {},
  ) {}

  private get url(): string {
    return typeof this.farm === "string" ? this.farm : this.farm.current;
  }

  /** The connection is down (or not open yet): the clock starts, if it is not running. */
  down(): void {
    if (this.since !== null) return;
    this.since = Date.now();
    this.schedule(this.o.firstReportMs ?? 2_000);
  }

  /** The connection is open: says so if the outage was reported. */
  up(): void {
    if (this.since === null) return;
    if (this.reported) this.say(`reached the farm at ${this.url} again after ${this.seconds()}s`);
    this.clear();
  }

  stop(): void {
    this.clear();
  }

  private seconds(): number {
    return Math.round((Date.now() - (this.since ?? Date.now())) / 1000);
  }

  private schedule(ms: number): void {
    this.timer = setTimeout(() => void this.report(), ms);
    this.timer.unref();
  }

  private async report(): Promise<void> {
    const since = this.since;
    const cause = await farmUnreachableCause(this.url, 2_000, typeof this.farm === "string" ? fetch : this.farm.fetch);
    if (this.since === null || this.since !== since) return; // it came back meanwhile
    this.reported = true;
    this.say(`cannot reach the farm at ${this.url}: ${cause}; retrying (since ${this.seconds()}s)`);
    this.schedule(this.o.everyMs ?? 5_000);
  }

  private clear(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    this.since = null;
    this.reported = false;
  }
}
