import type { VaultConfig } from "../config.js";
import { EnvProvider } from "./env.js";
import { FileProvider } from "./file.js";
import { HashiCorpVaultProvider } from "./hashicorp-vault.js";
import { KeychainProvider } from "./keychain.js";
import { OnePasswordProvider } from "./onepassword.js";
import type { ProviderOptions, SecretProvider } from "./types.js";

export { EnvProvider, envVarName } from "./env.js";
export { FileProvider } from "./file.js";
export { HashiCorpVaultProvider } from "./hashicorp-vault.js";
export { KeychainProvider } from "./keychain.js";
export { OnePasswordProvider } from "./onepassword.js";
export { childEnv } from "./exec.js";
export type { ProviderOptions, SecretProvider } from "./types.js";

/** The provider for one vault's settings (checked by checkVaultConfig). */
export function createProvider(cfg: VaultConfig, opts: ProviderOptions = {}): SecretProvider {
  switch (cfg.provider) {
    case "1password":
      return new OnePasswordProvider(cfg, opts);
    case "hashicorp-vault":
      return new HashiCorpVaultProvider(cfg, opts);
    case "keychain":
      return new KeychainProvider(cfg, opts);
    case "env":
      return new EnvProvider(cfg, opts);
    case "file":
      return new FileProvider(cfg, opts);
  }
}
