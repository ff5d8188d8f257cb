/**
 * Which set-up a worktree needs: the repository's `setup:` when given, else one detected from the
 * lockfile at its root. The plan names the command, the files whose content keys the cache and the
 * folders kept. See docs/adr/0013-setup-cache-and-worktree-pool.md.
 */
import { createHash } from "node:crypto";
import { lstatSync, readFileSync } from "node:fs";
import { join } from "node:path";
import type { SetupConfig } from "@optimus/shared";

export interface SetupPlan {
  command: string;
  cacheKeyFiles: string[];
  outputs: string[];
  timeoutMs: number;
  /** where it came from: `config` or the lockfile it was detected from */
  source: string;
}

export type SetupDecision =
  | { kind: "plan"; plan: SetupPlan }
  /** nothing to set up (`setup: none`, or no lockfile) */
  | { kind: "none"; reason: string }
  /** a lockfile this version cannot set up on its own: the reason says what to declare */
  | { kind: "unsupported"; reason: string };

const DEFAULT_TIMEOUT_MS = 900_000;

/** Lockfiles at a repository's root, in the order they are tried. */
const DETECTED: Array<{ file: string; plan?: Omit<SetupPlan, "source" | "timeoutMs">; tool: string }> = [
  {
    file: "package-lock.json",
    tool: "npm",
    plan: { command: "npm ci --no-audit --no-fund", cacheKeyFiles: ["package-lock.json"], outputs: ["node_modules"] },
  },
  {
    file: "npm-shrinkwrap.json",
    tool: "npm",
    plan: { command: "npm ci --no-audit --no-fund", cacheKeyFiles: ["npm-shrinkwrap.json"], outputs: ["node_modules"] },
  },
  { file: "pnpm-lock.yaml", tool: "pnpm" },
  { file: "yarn.lock", tool: "yarn" },
  { file: "requirements.txt", tool: "pip" },
];

const isFile = (p: string): boolean => {
  try {
    return lstatSync(p).isFile();
  } catch {
    return false;
  }
};

/** The set-up for a worktree: the configured one, or detected from its root's lockfile. */
export function resolveSetup(config: SetupConfig | undefined, worktree: string): SetupDecision {
  if (config === "none") return { kind: "none", reason: "setup: none" };
  if (config)
    return {
      kind: "plan",
      plan: {
        command: config.command,
        cacheKeyFiles: [...config.cacheKeyFiles],
        outputs: [...config.outputs],
        timeoutMs: config.timeoutMs,
        source: "config",
      },
    };
  for (const d of DETECTED) {
    if (!isFile(join(worktree, d.file))) continue;
    if (d.plan)
      return {
        kind: "plan",
        plan: {
          ...d.plan,
          cacheKeyFiles: [...d.plan.cacheKeyFiles],
          outputs: [...d.plan.outputs],
          timeoutMs: DEFAULT_TIMEOUT_MS,
          source: d.file,
        },
      };
    return {
      kind: "unsupported",
      reason: `${d.file} found, but ${d.tool} set-ups are not detected yet: declare one in .optimus/config.yaml, e.g. setup: { command: "${d.tool === "pnpm" ? "pnpm install --frozen-lockfile" : d.tool === "yarn" ? "yarn install --frozen-lockfile" : "pip install -r requirements.txt --target .deps"}", cacheKeyFiles: ["${d.file}"], outputs: ["${d.tool === "pip" ? ".deps" : "node_modules"}"] }, or setup: none`,
    };
  }
  return { kind: "none", reason: "no lockfile at the repository's root" };
}

/**
 * The cache key: the command, the outputs, the platform (native modules are built for one node
 * ABI) and each key file's content. Key files are read as regular files only: a symlink (which
 * could point anywhere on the host) or a missing file counts as absent.
 */
export function setupHash(plan: SetupPlan, worktree: string): string {
  const h = createHash("sha256");
  h.update(
    JSON.stringify({
      v: 1,
      command: plan.command,
      outputs: plan.outputs,
      platform: process.platform,
      arch: process.arch,
      abi: process.versions.modules,
    }),
  );
  for (const f of plan.cacheKeyFiles) {
    const p = join(worktree, f);
    h.update(`\0${f}\0`);
    h.update(isFile(p) ? createHash("sha256").update(readFileSync(p)).digest("hex") : "-");
  }
  return h.digest("hex").slice(0, 32);
}
