import type { Redactor } from "../redactor.js";
import type { SecretRef } from "../secret-ref.js";

/** Reads one secret from one kind of store, at every call; a failure is a SecretError. */
export interface SecretProvider {
  read(ref: SecretRef, signal?: AbortSignal): Promise<string>;
}

export interface ProviderOptions {
  /** masks held values in what a provider reports about a failure */
  redactor?: Redactor;
  /**
   * The environment providers read from: PATH and HOME for tools, OP_* for 1Password, the Vault
   * token, the env provider's variables. Default: process.env, read at each call. Tests pass their
   * own instead of changing the process's.
   */
  env?: NodeJS.ProcessEnv;
  /** how long a tool or Vault may take; default 10 s */
  timeoutMs?: number;
}

export const DEFAULT_TIMEOUT_MS = 10_000;
