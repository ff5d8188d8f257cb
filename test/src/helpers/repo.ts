import { execFileSync } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const toRemove: string[] = [];
function removeAtExit(dir: string): void {
  if (toRemove.length === 0) {
    process.once("exit", () => {
      for (const d of toRemove) {
        try {
          rmSync(d, { recursive: true, force: true });
        } catch {
          // a temp folder; the OS cleans it up
        }
      }
    });
  }
  toRemove.push(dir);
}

/** A fresh git repository with one commit, removed when the test ends. */
export function makeRepo(t?: { after(fn: () => void): void }, name = "optimus-test-"): string {
  const dir = mkdtempSync(join(tmpdir(), name));
  const git = (...args: string[]) => execFileSync("git", args, { cwd: dir, stdio: "pipe" });
  git("init", "-q", "-b", "main");
  git("-c", "user.name=Test", "-c", "user.email=test@localhost", "commit", "-q", "--allow-empty", "-m", "initial");
  // The farm treats this folder as its origin and delivers by push. git refuses a push to the
  // branch a non-bare repository has checked out; this origin's owner (the test) lets git update
  // it and its files, as a server-side checkout would. (A developer's checkout never says so: the
  // farm's push there is refused and the task held — see the resident-farm tests.)
  git("config", "receive.denyCurrentBranch", "updateInstead");
  // Removed when the test process exits: after-hooks run in the order they were added, so a farm
  // using this repository may still be stopping when the test's own hooks run.
  if (t && !process.env.OPTIMUS_KEEP_TEST_REPOS) removeAtExit(dir);
  return dir;
}

export const gitLog = (repo: string): string[] => execFileSync("git", ["log", "--format=%s"], { cwd: repo }).toString().trim().split("\n");

/**
 * Writes `.optimus/config.yaml`. The foundation's tests switch off the automatic review unit after
 * each codegen unit and the planner, so they count exactly the units they create.
 */
export function writeFarmConfig(repo: string, yaml = "prloop: { reviewEveryCodegenUnit: false }\nplanner: { enabled: false }\n"): void {
  mkdirSync(join(repo, ".optimus"), { recursive: true });
  writeFileSync(join(repo, ".optimus", "config.yaml"), yaml);
}
