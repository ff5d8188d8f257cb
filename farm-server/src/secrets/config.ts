/** Where the secrets of one configured vault are read. */
export type VaultConfig =
  /** `op read op://<vault ?? ref.vault>/<item>/<field>`; `op` from PATH unless `opPath` */
  | { provider: "1password"; vault?: string; account?: string; opPath?: string }
  /** KV v2: GET {address}/v1/{mount ?? "secret"}/data/{item}, token from process.env[tokenEnv ?? "VAULT_TOKEN"] */
  | { provider: "hashicorp-vault"; address: string; mount?: string; tokenEnv?: string; namespace?: string }
  /** macOS: `security find-generic-password -s <service ?? item> -a <field> -w` */
  | { provider: "keychain"; service?: string; securityPath?: string }
  /** development: process.env[(prefix ?? "OPTIMUS_SECRET_") + ITEM + "_" + FIELD] */
  | { provider: "env"; prefix?: string }
  /** development: the file <dir>/<item>/<field>, readable by its owner only */
  | { provider: "file"; dir: string };

export interface SecretsConfig {
  vaults: Record<string, VaultConfig>;
}

/** The server config's shape (shared/src/config.ts): provider settings are checked here, not there. */
export interface RawSecretsConfig {
  vaults: Record<string, Record<string, unknown>>;
}

const FIELDS: Record<VaultConfig["provider"], { required: string[]; optional: string[] }> = {
  "1password": { required: [], optional: ["vault", "account", "opPath"] },
  "hashicorp-vault": { required: ["address"], optional: ["mount", "tokenEnv", "namespace"] },
  keychain: { required: [], optional: ["service", "securityPath"] },
  env: { required: [], optional: ["prefix"] },
  file: { required: ["dir"], optional: [] },
};

/**
 * Checks one vault's settings and returns them typed. Unknown keys are refused rather than ignored:
 * a misspelt `adress` silently falling back to a default would read the wrong place.
 */
export function checkVaultConfig(name: string, raw: unknown): VaultConfig {
  const where = `secrets.vaults.${name}`;
  if (raw === null || typeof raw !== "object" || Array.isArray(raw)) throw new Error(`${where} must be an object with a provider`);
  const o = raw as Record<string, unknown>;
  const provider = o.provider;
  if (typeof provider !== "string" || !Object.hasOwn(FIELDS, provider)) {
    throw new Error(`${where}.provider must be one of ${Object.keys(FIELDS).join(", ")}`);
  }
  const spec = FIELDS[provider as VaultConfig["provider"]];
  for (const k of Object.keys(o)) {
    if (k !== "provider" && !spec.required.includes(k) && !spec.optional.includes(k))
      throw new Error(`${where}: unknown setting '${k}' for provider ${provider}`);
  }
  for (const k of spec.required) if (o[k] === undefined) throw new Error(`${where}.${k} is required for provider ${provider}`);
  for (const k of [...spec.required, ...spec.optional]) {
    const v = o[k];
    if (v !== undefined && (typeof v !== "string" || v.length === 0 || v.length > 1000))
      throw new Error(`${where}.${k} must be a non-empty string`);
  }
  if (provider === "hashicorp-vault" && !/^https?:\/\//.test(o.address as string))
    throw new Error(`${where}.address must be an http(s) URL`);
  if (provider === "hashicorp-vault" && o.tokenEnv !== undefined && !/^[A-Za-z_][A-Za-z0-9_]*$/.test(o.tokenEnv as string))
    throw new Error(`${where}.tokenEnv must be an environment variable name`);
  return o as unknown as VaultConfig;
}
