import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { FarmRepo } from "@optimus/farm-server/dist/git/farm-repo.js";
import { git } from "./fixture.js";
import { makeRepo } from "./repo.js";

/** A repository holding `files` in one commit, read the way the plan check reads it (the farm's FarmRepo). */
export function planRepoWith(t: { after(fn: () => void): void }, files: Record<string, string>, prefix = "optimus-plan-"): FarmRepo {
  const dir = makeRepo(t, prefix);
  for (const [p, c] of Object.entries(files)) {
    mkdirSync(join(dir, p, ".."), { recursive: true });
    writeFileSync(join(dir, p), c);
  }
  git(dir, "add", "-A");
  git(dir, "commit", "-q", "-m", "files");
  return new FarmRepo(dir, join(dir, "..", "unused-worktrees"));
}
