import { checkVaultConfig, type RawSecretsConfig, type SecretsConfig } from "./config.js";
import { createProvider, type SecretProvider } from "./providers/index.js";
import { MIN_SECRET_LENGTH, Redactor } from "./redactor.js";
import { SecretError, providerDetail } from "./secret-error.js";
import { parseSecretRef } from "./secret-ref.js";

export interface SecretResolverOptions {
  /** held values are registered here while a `withSecret` callback runs; a new one by default */
  redactor?: Redactor;
  /** the environment providers read (PATH for tools, tokens, the env provider); default process.env */
  env?: NodeJS.ProcessEnv;
  /** time limit for one provider read; default 10 s */
  timeoutMs?: number;
}

/**
 * Turns `secrets-manager://vault/item/field` references into values at the moment they are used.
 * Nothing is cached: a value lives only as long as the caller holds it, a rotated key is picked up
 * on the next call, and a revoked one stops working at once. Prefer `withSecret`, which also keeps
 * the value out of logs while it is held.
 */
export class SecretResolver {
  readonly redactor: Redactor;
  private readonly providers = new Map<string, SecretProvider>();

  constructor(config: SecretsConfig | RawSecretsConfig, opts: SecretResolverOptions = {}) {
    this.redactor = opts.redactor ?? new Redactor();
    const popts = {
      redactor: this.redactor,
      ...(opts.env ? { env: opts.env } : {}),
      ...(opts.timeoutMs ? { timeoutMs: opts.timeoutMs } : {}),
    };
    // Settings are checked here, at startup, so a typo fails the server's start, not its first call.
    for (const [name, raw] of Object.entries(config.vaults ?? {}))
      this.providers.set(name, createProvider(checkVaultConfig(name, raw), popts));
  }

  /** The configured vault names, for messages and diagnostics. */
  get vaultNames(): string[] {
    return [...this.providers.keys()].sort();
  }

  /** Reads the secret now. The caller must not keep, log or return it; see withSecret. */
  async resolve(ref: string, signal?: AbortSignal): Promise<string> {
    const parsed = parseSecretRef(ref);
    const provider = this.providers.get(parsed.vault);
    if (!provider) {
      const names = this.vaultNames;
      throw new SecretError(
        ref,
        `no vault named '${parsed.vault}' is configured (${names.length > 0 ? `configured: ${names.join(", ")}` : "no vaults are configured under secrets.vaults"})`,
      );
    }
    let value: string;
    try {
      value = await provider.read(parsed, signal);
    } catch (err) {
      if (err instanceof SecretError) throw err;
      // A provider bug, not a report: keep its first line, masked, and nothing else.
      throw new SecretError(
        ref,
        `the ${parsed.vault} provider failed (${providerDetail((err as Error)?.message ?? String(err), this.redactor) || "no detail"})`,
      );
    }
    if (value.length === 0) throw new SecretError(ref, "the secret is empty");
    return value;
  }

  /**
   * Resolves `ref`, registers the value with the redactor, runs `fn` with it, and unregisters it
   * when `fn` settles (either way). Two overlapping holders of one value each keep it registered
   * until both are done.
   */
  async withSecret<T>(ref: string, fn: (value: string) => Promise<T>, signal?: AbortSignal): Promise<T> {
    const value = await this.resolve(ref, signal);
    if (value.length < MIN_SECRET_LENGTH)
      throw new SecretError(
        ref,
        `the secret is shorter than ${MIN_SECRET_LENGTH} characters, too short to be a key or to be kept out of logs`,
      );
    const release = this.redactor.add(value);
    try {
      return await fn(value);
    } finally {
      release();
    }
  }
}
