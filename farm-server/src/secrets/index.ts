export { checkVaultConfig, type RawSecretsConfig, type SecretsConfig, type VaultConfig } from "./config.js";
export { MIN_SECRET_LENGTH, REDACTED, Redactor, secretPatterns } from "./redactor.js";
export { SecretError, providerDetail, safeRef } from "./secret-error.js";
export { SECRET_REF_SCHEME, formatSecretRef, isSecretRef, parseSecretRef, type SecretRef } from "./secret-ref.js";
export { SecretResolver, type SecretResolverOptions } from "./secret-resolver.js";
export {
  EnvProvider,
  FileProvider,
  HashiCorpVaultProvider,
  KeychainProvider,
  OnePasswordProvider,
  childEnv,
  createProvider,
  envVarName,
  type ProviderOptions,
  type SecretProvider,
} from "./providers/index.js";
