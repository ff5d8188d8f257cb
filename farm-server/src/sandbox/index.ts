/**
 * The one sandbox module: the farm's evals and the workers' unit checks both run untrusted code
 * through `runCheck`. See docs/adr/0010-isolation-model.md for what a sandboxed command can see.
 */
export { runCheck, OUTPUT_CAP_BYTES, type RunCheckOptions, type CheckResult, type EgressOptions } from "./run.js";
export {
  detectSandbox,
  resolveSandbox,
  SandboxUnavailableError,
  type SandboxKind,
  type SandboxSetting,
  type SandboxChoice,
} from "./detect.js";
export { bwrapArgs, sandboxExecProfile, checkBind, ETC_ALLOWLIST, type SandboxView, type SandboxBind } from "./profile.js";
