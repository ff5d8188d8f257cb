import { execFileSync } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

/** A fresh git repository with one commit, removed when the test ends. */
export function makeRepo(t?: { after(fn: () => void): void }, name = "optimus-test-"): string {
  const dir = mkdtempSync(join(tmpdir(), name));
  const git = (...args: string[]) => execFileSync("git", args, { cwd: dir, stdio: "pipe" });
  git("init", "-q", "-b", "main");
  git("-c", "user.name=Test", "-c", "user.email=test@localhost", "commit", "-q", "--allow-empty", "-m", "initial");
  t?.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

export const gitLog = (repo: string): string[] =>
  execFileSync("git", ["log", "--format=%s"], { cwd: repo }).toString().trim().split("\n");

/**
 * Writes `.optimus/config.yaml`. The foundation's tests switch off the automatic review unit after
 * each codegen unit and the planner, so they count exactly the units they create.
 */
export function writeFarmConfig(repo: string, yaml = "prloop: { reviewEveryCodegenUnit: false }\nplanner: { enabled: false }\n"): void {
  mkdirSync(join(repo, ".optimus"), { recursive: true });
  writeFileSync(join(repo, ".optimus", "config.yaml"), yaml);
}
