import type { VaultConfig } from "../config.js";
import { SecretError, providerDetail } from "../secret-error.js";
import { formatSecretRef, type SecretRef } from "../secret-ref.js";
import { childEnv, runTool, withoutTrailingNewline } from "./exec.js";
import type { ProviderOptions, SecretProvider } from "./types.js";

const LABEL = "the macOS `security` tool (the keychain provider works on macOS only)";
/** errSecItemNotFound, as `security` reports it in its exit code */
const NOT_FOUND = 44;

/**
 * The macOS login keychain: `security find-generic-password -s <service> -a <account> -w` prints
 * the password of the generic password item with that service and account. The item is the
 * service (unless configured) and the field the account. Note: `security` prints a password that is
 * not plain text as hex; keys are plain text, so that is not undone here.
 */
export class KeychainProvider implements SecretProvider {
  constructor(
    private readonly cfg: Extract<VaultConfig, { provider: "keychain" }>,
    private readonly opts: ProviderOptions = {},
  ) {}

  async read(ref: SecretRef, signal?: AbortSignal): Promise<string> {
    const name = formatSecretRef(ref);
    const service = this.cfg.service ?? ref.item;
    const args = ["find-generic-password", "-s", service, "-a", ref.field, "-w"];
    const env = childEnv(this.opts.env ?? process.env);
    const run = await runTool({
      ref: name,
      label: LABEL,
      file: this.cfg.securityPath ?? "security",
      args,
      env,
      opts: this.opts,
      ...(signal ? { signal } : {}),
    });
    if (run.code === 0) return withoutTrailingNewline(run.stdout);
    if (run.code === NOT_FOUND) throw new SecretError(name, `no keychain item with service '${service}' and account '${ref.field}'`);
    const detail = providerDetail(run.stderr, this.opts.redactor);
    throw new SecretError(name, `security exited with code ${run.code}${detail ? ` (${detail})` : ""}`);
  }
}
