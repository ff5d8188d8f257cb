import type { VaultConfig } from "../config.js";
import { SecretError } from "../secret-error.js";
import { formatSecretRef, type SecretRef } from "../secret-ref.js";
import type { ProviderOptions, SecretProvider } from "./types.js";

/** `anthropic-prod` / `api key` → `ANTHROPIC_PROD_API_KEY`, after the prefix. */
export const envVarName = (prefix: string, ref: SecretRef): string =>
  prefix + `${ref.item}_${ref.field}`.toUpperCase().replace(/[^A-Z0-9]/g, "_");

/**
 * For development: a secret from an environment variable. Read at each call, so a changed
 * variable (in tests) is seen at once. Not for production: every child process that inherits the
 * environment sees the key.
 */
export class EnvProvider implements SecretProvider {
  constructor(
    private readonly cfg: Extract<VaultConfig, { provider: "env" }>,
    private readonly opts: ProviderOptions = {},
  ) {}

  async read(ref: SecretRef): Promise<string> {
    const name = envVarName(this.cfg.prefix ?? "OPTIMUS_SECRET_", ref);
    const value = (this.opts.env ?? process.env)[name];
    if (value === undefined) throw new SecretError(formatSecretRef(ref), `the environment variable ${name} is not set`);
    return value;
  }
}
