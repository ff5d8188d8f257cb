import type { VaultConfig } from "../config.js";
import { SecretError, providerDetail } from "../secret-error.js";
import { formatSecretRef, type SecretRef } from "../secret-ref.js";
import { childEnv, runTool, withoutTrailingNewline } from "./exec.js";
import type { ProviderOptions, SecretProvider } from "./types.js";

const LABEL = "1Password CLI `op`";

/**
 * 1Password through its CLI: `op read op://<vault>/<item>/<field>`. `op` authenticates on its own
 * (desktop app integration, `OP_SESSION_*`, or `OP_SERVICE_ACCOUNT_TOKEN`), so it gets the OP_*
 * variables and nothing else beyond PATH, HOME, USER and LANG.
 */
export class OnePasswordProvider implements SecretProvider {
  constructor(
    private readonly cfg: Extract<VaultConfig, { provider: "1password" }>,
    private readonly opts: ProviderOptions = {},
  ) {}

  async read(ref: SecretRef, signal?: AbortSignal): Promise<string> {
    const name = formatSecretRef(ref);
    // The configured vault wins: the reference's vault names our config entry, which may map to a
    // 1Password vault of another name.
    const opRef = `op://${this.cfg.vault ?? ref.vault}/${ref.item}/${ref.field}`;
    const args = ["read", opRef, ...(this.cfg.account ? ["--account", this.cfg.account] : [])];
    const env = childEnv(this.opts.env ?? process.env, ["OP_"]);
    const run = await runTool({
      ref: name,
      label: LABEL,
      file: this.cfg.opPath ?? "op",
      args,
      env,
      opts: this.opts,
      ...(signal ? { signal } : {}),
    });
    if (run.code === 0) return withoutTrailingNewline(run.stdout);
    // op prints "[ERROR] 2024/05/01 10:00:00 <message>"; the time stamp says nothing useful.
    const detail = providerDetail(run.stderr.replace(/^\[ERROR\]\s+\d{4}\/\d\d\/\d\d \d\d:\d\d:\d\d\s+/, ""), this.opts.redactor);
    const said = detail ? ` (op: ${detail})` : "";
    if (/isn't an item|isn't a field|isn't a vault|no item|not found|does not exist|could not find|cannot be found/i.test(run.stderr))
      throw new SecretError(name, `no such item or field in 1Password${said}`);
    if (/not (currently )?signed in|sign ?in|session expired|authoriz|unauthori[sz]ed/i.test(run.stderr))
      throw new SecretError(name, `the 1Password CLI is not signed in${said}`);
    throw new SecretError(name, `op exited with code ${run.code}${said}`);
  }
}
