import { execFile } from "node:child_process";
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { findCycle, repoPathProblem, shownPath, Slug, type PlanProposal, type UnitSpec } from "@optimus/shared";

export type PlanCheck = { ok: true; units: UnitSpec[] } | { ok: false; reason: string };

const onPath = (cmd: string) =>
  new Promise<boolean>((resolve) => execFile("sh", ["-c", 'command -v -- "$1" >/dev/null 2>&1', "sh", cmd], (err) => resolve(!err)));

/** Bins whose package has another name (most packages' bin is their name: vitest, jest, eslint). */
const BIN_PACKAGES: Record<string, string> = {
  tsc: "typescript",
  tsserver: "typescript",
  "vue-tsc": "vue-tsc",
  "ts-node": "ts-node",
  tsx: "tsx",
};
/** package.json files read for a plan: the root's and its workspaces' (bins are hoisted to the root). */
const MAX_MANIFESTS = 50;

/**
 * The commands a JavaScript repository provides itself: the bins in its `node_modules/.bin` (on the
 * farm's checkout) and those of the packages its package.json files depend on (installed by the
 * repository's set-up before a check runs; a bin is known by its package's `bin` field when
 * installed, else by the package's name).
 */
/** What the check reads of the farm's repository (its clone, and a developer's checkout for installed tools). */
export interface PlanRepo {
  root: string;
  checkout?: string;
  git: { raw(args: string[]): Promise<string> };
}

export async function repositoryBins(repo: PlanRepo, baseRef: string, tree: ReadonlySet<string>): Promise<Set<string>> {
  const bins = new Set<string>();
  try {
    for (const f of readdirSync(join(repo.checkout ?? repo.root, "node_modules", ".bin"))) bins.add(f);
  } catch {
    // no installed dependencies on the farm's checkout
  }
  const manifests = [...tree]
    .filter((f) => f === "package.json" || (/^(?:[^/]+\/){1,3}package\.json$/.test(f) && !f.includes("node_modules/")))
    .slice(0, MAX_MANIFESTS);
  const deps = new Set<string>();
  for (const f of manifests) {
    try {
      const pkg = JSON.parse(await repo.git.raw(["cat-file", "blob", `${baseRef}:${f}`])) as Record<string, unknown>;
      for (const field of ["dependencies", "devDependencies", "optionalDependencies", "peerDependencies"]) {
        const d = pkg[field];
        if (d && typeof d === "object") for (const name of Object.keys(d)) deps.add(name);
      }
    } catch {
      // not JSON: nothing to learn from it
    }
  }
  for (const name of deps) {
    if (!/^(?:@[a-z0-9][\w.-]*\/)?[a-z0-9][\w.-]*$/i.test(name)) continue;
    bins.add(name.split("/").pop()!);
    try {
      const pkg = JSON.parse(readFileSync(join(repo.checkout ?? repo.root, "node_modules", name, "package.json"), "utf8")) as {
        bin?: unknown;
      };
      if (typeof pkg.bin === "string") bins.add(name.split("/").pop()!);
      else if (pkg.bin && typeof pkg.bin === "object") for (const b of Object.keys(pkg.bin)) bins.add(b);
    } catch {
      // not installed here: its name stands for its bin
    }
  }
  for (const [bin, pkg] of Object.entries(BIN_PACKAGES)) if (deps.has(pkg)) bins.add(bin);
  return bins;
}

/**
 * Why a unit's check cannot run here, or null when it can: its command is on PATH, a file of the
 * repository, or a bin the repository provides (above); `npx <bin>` only for such a bin, since a
 * check runs offline and npx would otherwise try to download it.
 */
async function checkCommandProblem(check: string, tree: ReadonlySet<string>, bins: () => Promise<Set<string>>): Promise<string | null> {
  const words = check.trim().split(/\s+/);
  while (words.length > 1 && /^[A-Za-z_][A-Za-z0-9_]*=/.test(words[0]!)) words.shift(); // `CI=1 vitest run`
  const cmd = words[0];
  if (!cmd) return null;
  const binPath = /^(?:\.\/)?node_modules\/\.bin\/([^/]+)$/.exec(cmd);
  if (binPath) return (await bins()).has(binPath[1]!) ? null : `'${cmd}' is not a bin of the repository's dependencies`;
  if (cmd.includes("/")) return tree.has(cmd.replace(/^\.\//, "")) ? null : `'${cmd}' is not a file of the repository`;
  if (cmd === "npx" || cmd === "pnpx" || (cmd === "pnpm" && words[1] === "exec") || (cmd === "yarn" && words[1] === "exec")) {
    const rest = words.slice(cmd === "npx" || cmd === "pnpx" ? 1 : 2);
    while (rest.length && rest[0]!.startsWith("-")) rest.shift(); // --no-install, -y, --
    const bin = rest[0];
    if (!bin) return `'${cmd}' names no command`;
    if ((await bins()).has(bin) || (bin.includes("/") && tree.has(bin.replace(/^\.\//, "")))) return null;
    return `'${cmd} ${bin}' would download '${bin}' (checks run offline): it is not a dependency in the repository's package.json`;
  }
  if (await onPath(cmd)) return null;
  if ((await bins()).has(cmd)) return null;
  return `'${cmd}' is not a command, a file of the repository, or a bin of its package.json dependencies`;
}

/**
 * Checks a model's plan against the repository before it becomes units: ids usable, dependencies
 * known and acyclic, files present (or new files in existing folders), checks runnable (the
 * command is on PATH, a file in the repository, or a bin its package.json provides). Any failure
 * makes the farm fall back to one unit, and the reason is shown with the task.
 */
export async function checkPlan(plan: PlanProposal, repo: PlanRepo, baseRef: string, taken: ReadonlySet<string>): Promise<PlanCheck> {
  const tree = new Set((await repo.git.raw(["ls-tree", "-r", "--name-only", baseRef])).split("\n").filter(Boolean));
  const dirs = new Set<string>([""]);
  for (const f of tree) for (let i = f.indexOf("/"); i > 0; i = f.indexOf("/", i + 1)) dirs.add(f.slice(0, i));
  let bins: Promise<Set<string>> | undefined;
  const binsOnce = () => (bins ??= repositoryBins(repo, baseRef, tree));
  const ids = new Set<string>();
  for (const u of plan.units) {
    if (!Slug.safeParse(u.id).success) return { ok: false, reason: `unit id '${u.id}' is not a usable id` };
    if (ids.has(u.id) || taken.has(u.id)) return { ok: false, reason: `unit id '${u.id}' is used twice` };
    ids.add(u.id);
  }
  for (const u of plan.units) {
    for (const d of u.dependsOn) if (!ids.has(d)) return { ok: false, reason: `unit '${u.id}' depends on unknown unit '${d}'` };
    for (const f of u.files) {
      const why = repoPathProblem(f);
      if (why) return { ok: false, reason: `unit '${u.id}' names ${shownPath(f)}: the path ${why}` };
      const parent = f.replace(/\/$/, "").split("/").slice(0, -1).join("/");
      if (!tree.has(f) && !dirs.has(f.replace(/\/$/, "")) && !dirs.has(parent))
        return { ok: false, reason: `unit '${u.id}' names ${f}, which does not exist (nor does its folder)` };
    }
    const problem = await checkCommandProblem(u.check, tree, binsOnce);
    if (problem) return { ok: false, reason: `unit '${u.id}' has a check that cannot run here (${problem})` };
  }
  const cycle = findCycle(plan.units);
  if (cycle) return { ok: false, reason: `dependency cycle: ${cycle.join(" → ")}` };
  return {
    ok: true,
    units: plan.units.map((u) => ({
      id: u.id,
      goal: u.goal,
      role: "codegen",
      files: u.files,
      dependsOn: u.dependsOn,
      priority: 0,
      complexity: u.complexity,
      kind: "change",
      ...(u.check.trim() ? { check: u.check.trim() } : {}),
    })),
  };
}
