import type { VaultConfig } from "../config.js";
import { SecretError, providerDetail } from "../secret-error.js";
import { formatSecretRef, type SecretRef } from "../secret-ref.js";
import { DEFAULT_TIMEOUT_MS, type ProviderOptions, type SecretProvider } from "./types.js";

const LOOPBACK = /^(localhost|127(?:\.\d{1,3}){3}|\[::1\])$/i;

/**
 * HashiCorp Vault's KV version 2 engine over its HTTP API: GET /v1/<mount>/data/<item> with the
 * token in X-Vault-Token; the value is `data.data[field]` of the latest version. The token is read
 * from the environment at each call (it may be renewed by an agent) and only ever sent to the
 * configured address: redirects are not followed (fetch keeps custom headers across hosts, so a
 * redirect would hand the token to whoever answered), and plain http is accepted for loopback only.
 */
export class HashiCorpVaultProvider implements SecretProvider {
  constructor(
    private readonly cfg: Extract<VaultConfig, { provider: "hashicorp-vault" }>,
    private readonly opts: ProviderOptions = {},
  ) {}

  async read(ref: SecretRef, signal?: AbortSignal): Promise<string> {
    const name = formatSecretRef(ref);
    const fail = (why: string) => new SecretError(name, why);
    const address = this.cfg.address.replace(/\/+$/, "");
    let url: URL;
    try {
      url = new URL(address);
    } catch {
      throw fail(`the Vault address ${address} is not a URL`);
    }
    if (url.protocol !== "https:" && !(url.protocol === "http:" && LOOPBACK.test(url.hostname))) {
      throw fail(
        `the Vault address ${address} must use https (plain http is accepted for loopback addresses only: the token would travel in clear)`,
      );
    }
    const tokenVar = this.cfg.tokenEnv ?? "VAULT_TOKEN";
    const token = (this.opts.env ?? process.env)[tokenVar];
    if (!token) throw fail(`no Vault token: the environment variable ${tokenVar} is not set`);
    const mount = (this.cfg.mount ?? "secret")
      .split("/")
      .filter((s) => s.length > 0)
      .map(encodeURIComponent)
      .join("/");
    const path = `${mount}/data/${encodeURIComponent(ref.item)}`;
    const headers: Record<string, string> = { "X-Vault-Token": token, "X-Vault-Request": "true", Accept: "application/json" };
    if (this.cfg.namespace) headers["X-Vault-Namespace"] = this.cfg.namespace;

    const ms = this.opts.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    const timeout = AbortSignal.timeout(ms);
    const both = signal ? AbortSignal.any([signal, timeout]) : timeout;
    const stopped = (): SecretError | null =>
      signal?.aborted
        ? fail("the read was cancelled")
        : timeout.aborted
          ? fail(`Vault at ${address} did not answer within ${Math.round(ms / 100) / 10} s`)
          : null;

    let status: number;
    let text: string;
    try {
      const res = await fetch(`${address}/v1/${path}`, { headers, redirect: "manual", signal: both });
      status = res.status;
      if (status >= 300 && status < 400) {
        await res.body?.cancel();
        throw fail(`Vault at ${address} answered with a redirect (HTTP ${status}); configure the address of the node that serves reads`);
      }
      text = await res.text();
    } catch (err) {
      if (err instanceof SecretError) throw err;
      // Network errors: only the cause's code (ECONNREFUSED…); the message may hold the URL's userinfo.
      throw (
        stopped() ?? fail(`cannot reach Vault at ${address} (${(err as { cause?: { code?: string } }).cause?.code ?? (err as Error).name})`)
      );
    }

    if (status === 404) throw fail(`no such item: Vault has no secret at ${path} (or its latest version is deleted)`);
    if (status === 403) throw fail(`permission denied: the token in ${tokenVar} may not read ${path}`);
    let body: unknown;
    try {
      body = JSON.parse(text);
    } catch {
      throw fail(`Vault answered HTTP ${status} with a body that is not JSON`);
    }
    if (status !== 200) {
      const first = (body as { errors?: unknown[] })?.errors?.[0];
      const detail = typeof first === "string" ? providerDetail(first, this.opts.redactor) : "";
      throw fail(`Vault answered HTTP ${status}${detail ? ` (${detail})` : ""}`);
    }
    const data = (body as { data?: { data?: unknown } })?.data?.data;
    if (data === null || typeof data !== "object")
      throw fail(`Vault's answer for ${path} has no data (is ${mount} a KV version 2 engine?)`);
    const value = (data as Record<string, unknown>)[ref.field];
    if (value === undefined || !Object.hasOwn(data, ref.field)) throw fail(`item has no field ${ref.field}`);
    if (typeof value !== "string") throw fail(`the field ${ref.field} is not a string`);
    return value;
  }
}
