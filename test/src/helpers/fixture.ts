import { execFileSync } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { makeRepo, writeFarmConfig } from "./repo.js";

const git = (cwd: string, ...args: string[]) => execFileSync("git", ["-c", "user.name=Test", "-c", "user.email=test@localhost", ...args], { cwd, stdio: "pipe" }).toString();

/**
 * A small project with a real failing test: `src/add.js` subtracts instead of adding, and
 * `test/add.test.js` (run by the eval suite with node) catches it.
 */
export function makeFixtureRepo(t: { after(fn: () => void): void }, config = ""): string {
  const repo = makeRepo(t, "optimus-fixture-");
  const files: Record<string, string> = {
    "src/add.js": "export function add(a, b) {\n  return a - b;\n}\n",
    "test/add.test.js": "import assert from 'node:assert/strict';\nimport { add } from '../src/add.js';\nassert.equal(add(2, 3), 5);\nconsole.log('add works');\n",
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

/** The `git diff --binary` a worker would send for these file contents, made against `ref` of the repo. */
export function patchFor(repo: string, ref: string, changes: Record<string, string | null>): string {
  const dir = mkdtempSync(join(tmpdir(), "optimus-patch-"));
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

export { git };
