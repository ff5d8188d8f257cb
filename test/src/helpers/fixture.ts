import { execFile, execFileSync } from "node:child_process";
import { promisify } from "node:util";
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { cloneDirFor } from "@optimus/farm-server";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { makeRepo, writeFarmConfig } from "./repo.js";

const run = promisify(execFile);
const git = (cwd: string, ...args: string[]) =>
  execFileSync("git", ["-c", "user.name=Test", "-c", "user.email=test@localhost", ...args], { cwd, stdio: "pipe" }).toString();

/**
 * A small project with a real failing test: `src/add.js` subtracts instead of adding, and
 * `test/add.test.js` (run by the eval suite with node) catches it.
 */
export function makeFixtureRepo(t: { after(fn: () => void): void }, config = ""): string {
  const repo = makeRepo(t, "optimus-fixture-");
  const files: Record<string, string> = {
    "src/add.js": "export function add(a, b) {\n  return a - b;\n}\n",
    "test/add.test.js":
      "import assert from 'node:assert/strict';\nimport { add } from '../src/add.js';\nassert.equal(add(2, 3), 5);\nconsole.log('add works');\n",
    "package.json": JSON.stringify({ name: "fixture", type: "module", private: true }, null, 2) + "\n",
    "README.md": "# fixture\n",
    ".github/workflows/ci.yml": "on: push\n",
  };
  for (const [p, c] of Object.entries(files)) {
    mkdirSync(dirname(join(repo, p)), { recursive: true });
    writeFileSync(join(repo, p), c);
  }
  git(repo, "add", "-A");
  git(repo, "commit", "-q", "-m", "fixture with a failing test");
  writeFarmConfig(repo, `prloop:\n  eval:\n    - { name: tests, command: "node test/add.test.js", timeoutMs: 30000 }\n${config}`);
  return repo;
}

/**
 * The `git diff --binary` a worker would send for these file contents, made against `ref` of the
 * repo — or, for a branch only the farm has (a task's `optimus/<id>` before it is pushed), of the
 * farm's own clone in its home, which is what a worker fetches.
 */
export function patchFor(repo: string, ref: string, changes: Record<string, string | null>): string {
  const dir = mkdtempSync(join(tmpdir(), "optimus-patch-"));
  const has = (r: string) => {
    try {
      git(r, "rev-parse", "-q", "--verify", `${ref}^{commit}`);
      return true;
    } catch {
      return false;
    }
  };
  const clone = cloneDirFor(repo);
  if (!has(repo) && existsSync(clone) && has(clone)) repo = clone;
  try {
    git(repo, "worktree", "add", "-q", "--detach", dir, ref);
    for (const [p, c] of Object.entries(changes)) {
      if (c === null) rmSync(join(dir, p));
      else {
        mkdirSync(dirname(join(dir, p)), { recursive: true });
        writeFileSync(join(dir, p), c);
      }
    }
    git(dir, "add", "-A");
    return git(dir, "diff", "--cached", "--binary");
  } finally {
    git(repo, "worktree", "remove", "--force", dir);
  }
}

/**
 * The same patch as `patchFor`, made without a worktree and without blocking the event loop (a
 * throwaway index: read-tree, hash-object, update-index, diff-index): for scripted workers that run
 * in the same process as a farm, whose heartbeats and leases must keep going meanwhile.
 */
export async function patchForAsync(repo: string, ref: string, changes: Record<string, string | null>): Promise<string> {
  const has = async (r: string) =>
    run("git", ["rev-parse", "-q", "--verify", `${ref}^{commit}`], { cwd: r }).then(
      () => true,
      () => false,
    );
  const clone = cloneDirFor(repo);
  if (!(await has(repo)) && existsSync(clone) && (await has(clone))) repo = clone;
  const dir = mkdtempSync(join(tmpdir(), "optimus-patch-"));
  const env = { ...process.env, GIT_INDEX_FILE: join(dir, "index") };
  const g = async (args: string[], input?: string) => {
    const child = run("git", args, { cwd: repo, env, maxBuffer: 64 * 1024 * 1024 });
    if (input !== undefined) child.child.stdin!.end(input);
    return (await child).stdout;
  };
  try {
    await g(["read-tree", ref]);
    for (const [p, c] of Object.entries(changes)) {
      if (c === null) await g(["update-index", "--force-remove", "--", p]);
      else {
        const blob = (await g(["hash-object", "-w", "--stdin"], c)).trim();
        await g(["update-index", "--add", "--cacheinfo", `100644,${blob},${p}`]);
      }
    }
    return await g(["diff-index", "--cached", "-p", "--binary", ref]);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

export { git };
