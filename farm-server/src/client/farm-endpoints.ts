import { LEADER_HEADER, TLS_ONLY_HEADER } from "@optimus/shared";
import { FarmTrustError, type FarmTrust } from "./farm-trust.js";
import { trustedFetch } from "./trusted-transport.js";

/**
 * The farm nodes a client knows (`--farm http://a:7420,http://b:7420`) and which of them leads.
 * A leader answers `/healthz` with role `leader` (a farm of one node: no role at all); a standby answers
 * role `standby` with the leader's URL, and 503 with an `x-optimus-leader` header to everything else.
 * Clients follow the leader: before each (re)connection of a WebSocket, and on a refused or redirected
 * HTTP call — never by retrying a call a farm may have carried out.
 */

const strip = (u: string) => u.trim().replace(/\/+$/, "");

/** Splits a `--farm` value: one URL or several, comma-separated. */
export function parseFarmUrls(list: string): string[] {
  const urls = list.split(",").map(strip).filter(Boolean);
  for (const u of urls) if (!/^https?:\/\/[^\s]+$/i.test(u)) throw new Error(`not a farm URL: '${u}' (expected http(s)://host:port)`);
  if (urls.length === 0) throw new Error("no farm URL given");
  return urls;
}

interface Health {
  role?: "leader" | "standby";
  leaderUrl?: string | null;
}

export class FarmEndpoints {
  readonly urls: string[];
  /** what https:// nodes' certificates must satisfy (pins, a CA file); every call and probe checks it */
  readonly trust: FarmTrust;
  /** `fetch` with `trust` for https:// (the global fetch for http://) */
  readonly fetch: typeof fetch;
  private leader: string;
  private finding: Promise<string> | null = null;
  private foundAt = 0;

  constructor(list: string | string[], trust: FarmTrust = {}) {
    this.urls = Array.isArray(list) ? list.map(strip) : parseFarmUrls(list);
    this.leader = this.urls[0]!;
    this.trust = trust;
    this.fetch = trustedFetch(trust);
  }

  /** The node believed to lead (the first one until asked). */
  get current(): string {
    return this.leader;
  }

  /** A standby named the leader: go there next. */
  follow(url: string): void {
    if (/^https?:\/\//i.test(url)) this.leader = strip(url);
  }

  /**
   * Asks the nodes (the believed leader first) who leads; keeps the answer. With one URL and no
   * answer, or no leader found, the current guess stays (the caller's retry asks again).
   */
  find(timeoutMs = 1_500): Promise<string> {
    return (this.finding ??= this.ask(timeoutMs).finally(() => (this.finding = null)));
  }

  /**
   * With several nodes: the leader as found at most `maxAgeMs` ago (a paused leader accepts
   * connections but never answers, so a call is not sent on an old guess). One node: no probe.
   */
  async fresh(maxAgeMs = 2_000): Promise<string> {
    if (this.urls.length > 1 && Date.now() - this.foundAt > maxAgeMs) await this.find();
    return this.leader;
  }

  private async ask(timeoutMs: number): Promise<string> {
    const tried = new Set<string>();
    const queue = [this.leader, ...this.urls.filter((u) => u !== this.leader)];
    while (queue.length > 0) {
      const url = queue.shift()!;
      if (tried.has(url)) continue;
      tried.add(url);
      const h = await health(url, timeoutMs, this.fetch);
      if (!h) continue;
      if (h.role !== "standby") {
        this.foundAt = Date.now();
        return (this.leader = url);
      }
      // A standby names the leader (also one not in the list: a node added since).
      if (h.leaderUrl) queue.unshift(strip(h.leaderUrl));
    }
    return this.leader;
  }
}

async function health(url: string, timeoutMs: number, fetch: typeof globalThis.fetch): Promise<Health | null> {
  try {
    const r = await fetch(`${url}/healthz`, { signal: AbortSignal.timeout(timeoutMs) });
    if (!r.ok) return null;
    return (await r.json()) as Health;
  } catch {
    return null;
  }
}

/** A call that was certainly not carried out: refused before it was sent. */
export function notSent(err: unknown): boolean {
  const code = (err as { cause?: { code?: string } })?.cause?.code;
  return code === "ECONNREFUSED" || code === "EHOSTUNREACH" || code === "ENOTFOUND" || code === "EAI_AGAIN";
}

/**
 * A farm's answer to plain HTTP on its TLS port (see api/farm-port.ts), as the one line to show:
 * nothing was carried out, and only the URL's scheme is wrong.
 */
export function tlsOnlyError(r: Response, asked: string): FarmTrustError | null {
  const https = r.status === 400 ? r.headers.get(TLS_ONLY_HEADER) : null;
  return https ? new FarmTrustError(`the farm at ${asked} serves HTTPS only: use ${https} (with --farm-pin or --farm-ca)`) : null;
}

/**
 * `fetch` for the HTTP transport: sends to the leader; a standby's 503 (it carried nothing out) or a
 * refused connection makes it find the leader and send again, for up to `followMs`.
 */
export function leaderFetch(endpoints: FarmEndpoints, followMs: number, timeoutMs?: number) {
  return async (input: string | URL, init?: RequestInit): Promise<Response> => {
    const u = new URL(String(input));
    const path = u.pathname + u.search;
    const deadline = Date.now() + followMs;
    for (let i = 0; ; i++) {
      try {
        const base = await endpoints.fresh();
        const r = await endpoints.fetch(base + path, timeoutMs ? { ...init, signal: AbortSignal.timeout(timeoutMs) } : init);
        const plain = tlsOnlyError(r, base);
        if (plain) throw new TypeError("fetch failed", { cause: plain });
        if (r.status !== 503 || !r.headers.has(LEADER_HEADER) || Date.now() > deadline) return r;
        await r.body?.cancel();
        const named = r.headers.get(LEADER_HEADER);
        if (named && strip(named) !== endpoints.current) endpoints.follow(named);
        else await endpoints.find();
      } catch (err) {
        if (!notSent(err) || Date.now() > deadline) throw err;
        await endpoints.find();
      }
      await new Promise((r) => setTimeout(r, Math.min(1_000, 100 * 2 ** i)));
    }
  };
}
