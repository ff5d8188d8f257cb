// Measure: preparing a unit's worktree in a large repository (20,000 files in 200 folders), the way a
// worker does it — RepoMirror.prepare() (a `git fetch` over HTTP from the real farm, in this process,
// then a pooled slot of the worker's bare mirror reset to the unit's base: `checkout --detach -f` +
// `clean -ffdx`) and RepoMirror.remove() (the slot back to the pool) — and the farm's pooled eval tree
// (FarmRepo.acquireTree: read-tree -u --reset + clean) against plain `git worktree add --detach` +
// `git worktree remove --force` on the repository itself, median of 5 each, interleaved (A, B, C, A,
// …) after one warm-up of each (the warm-up creates the pooled slot) so that drift hits all alike.
// Units alternate between two bases (main and a branch changing 20 files), as consecutive units do.
// The repository is written with one `git fast-import` stream and checked out once (not timed).
// The mirror's initial clone is timed once, separately. To show where prepare's time goes, the
// no-op fetch (mirror.sync() with nothing new) and (optionally) a bare `git worktree add` from the
// mirror are timed on their own too.
// Where the directory is matters more than git does: on ext4 without a journal (this CI VM's disk),
// creating a file skips every inode of the group freed in the last 60 s (6 min while its inode-table
// block is dirty) one by one (fs/ext4/ialloc.c recently_deleted(); perf shows ~90% of `worktree add`
// there), so removing one 20k-file worktree makes the next one's creates ~20× slower. Hence run.ts
// measures on tmpfs (git's own cost) and on the temp directory's disk (what a worker there gets).
import { execFile, execFileSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, realpathSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { basename, join, sep } from "node:path";
import { RepoMirror } from "@optimus/farm-server/dist/worker/repo-mirror.js";
import { FarmRepo } from "@optimus/farm-server/dist/git/farm-repo.js";
import { startTestFarm, type InProcessTestFarm } from "../helpers/test-farm.js";
import { median } from "./stats.js";

export interface WorktreeBenchOptions {
  /** files in the repository (default 20,000) */
  files?: number;
  /** folders they are spread over (default 200) */
  folders?: number;
  /** timed runs per side; the median is reported (default 5) */
  runs?: number;
  /** where the repository, the worker's mirror and all worktrees go (default: os.tmpdir()) */
  baseDir?: string;
  /** times a bare `git worktree add` from the mirror is timed on its own (default 3; 0 skips it) */
  addPartRuns?: number;
}

export interface WorktreeBenchResult {
  files: number;
  folders: number;
  runs: number;
  /** writing the repository: fast-import stream + checkout of the main worktree (not part of any measure) */
  createMs: number;
  packBytes: number;
  /** starting the in-process farm on the repository */
  farmStartMs: number;
  /** plain git on the repository: worktree add + remove, per run and median */
  baseline: { addMs: number; removeMs: number; totalMs: number; runs: Array<{ addMs: number; removeMs: number }> };
  /** the worker's first mirror.sync(): init --bare + full fetch over HTTP from the farm (once) */
  initialSyncMs: number;
  /** the untimed-for-median first run of each side: the plain one is the first worktree made after the
   * repository's checkout, before any worktree was removed (a "fresh disk" reference) */
  warmup: { plain: { addMs: number; removeMs: number }; mirror: { prepareMs: number; removeMs: number } };
  /** RepoMirror.prepare(name, branch) + remove(dir) on a pooled slot, per run and median */
  mirror: { prepareMs: number; removeMs: number; totalMs: number; runs: Array<{ prepareMs: number; removeMs: number }> };
  /** the farm's pooled eval tree: FarmRepo.acquireTree(commit) (reset of a used tree) + releaseTree, per run and median; createMs: its first use */
  farmPool: { readyMs: number; runs: number[]; createMs: number };
  /** mirror total ÷ baseline total (1.0: the worker path costs nothing over plain git) */
  ratio: number;
  /** parts of prepare, timed on their own (medians; mirrorWorktreeAddMs is NaN when not measured) */
  parts: { noopSyncMs: number; mirrorWorktreeAddMs: number };
  /** target: prepare ≤ this */
  targetPrepareMs: number;
  /** the file system the worktrees were made on */
  fs?: FileSystemInfo;
}

export interface FileSystemInfo {
  type: string;
  device: string;
  mount: string;
  /** ext4 only: whether it has a journal (without one, ext4 skips inodes freed in the last 60 s, one
   * by one, when it creates a file: worktree churn makes creating files slow) */
  journal?: boolean;
}

/** The file system holding `dir`, from /proc/mounts (Linux only; undefined elsewhere). */
export function fileSystemOf(dir: string): FileSystemInfo | undefined {
  try {
    const path = realpathSync(dir);
    let best: FileSystemInfo | undefined;
    for (const line of readFileSync("/proc/mounts", "utf8").split("\n")) {
      const [device, mount, type] = line.split(" ");
      if (!device || !mount || !type) continue;
      const inside = mount === "/" || path === mount || path.startsWith(mount + sep);
      if (inside && (!best || mount.length >= best.mount.length)) best = { type, device, mount };
    }
    if (best?.type === "ext4" && best.device.startsWith("/dev/")) {
      best.journal = existsSync(`/proc/fs/jbd2/${basename(existsSync(best.device) ? realpathSync(best.device) : best.device)}-8`);
    }
    return best;
  } catch {
    return undefined;
  }
}

const TARGET_PREPARE_MS = 1_000;

const run = (cwd: string, args: string[]): Promise<string> =>
  new Promise((resolve, reject) =>
    execFile("git", args, { cwd, maxBuffer: 16 * 1024 * 1024 }, (err, stdout, stderr) =>
      err ? reject(new Error(`git ${args.join(" ")}: ${(stderr || err.message).trim()}`)) : resolve(stdout),
    ),
  );

async function timed<T>(fn: () => Promise<T>): Promise<[T, number]> {
  const t0 = performance.now();
  const v = await fn();
  return [v, performance.now() - t0];
}

/** One commit on `main` holding `files` small files in `folders` folders, written in one fast-import stream, then checked out. */
function makeBigRepo(dir: string, files: number, folders: number): void {
  const git = (args: string[], input?: string) =>
    execFileSync("git", args, {
      cwd: dir,
      input,
      stdio: [input === undefined ? "ignore" : "pipe", "pipe", "pipe"],
      maxBuffer: 64 * 1024 * 1024,
    });
  git(["init", "-q", "-b", "main"]);
  const message = `bench: ${files} files\n`;
  const parts = [
    `commit refs/heads/main\ncommitter Bench <bench@localhost> 1700000000 +0000\ndata ${Buffer.byteLength(message)}\n${message}`,
  ];
  const fw = String(folders - 1).length,
    nw = String(files - 1).length;
  for (let i = 0; i < files; i++) {
    const body = `// file ${i}\nexport const value${i} = ${i};\nexport function f${i}(x: number): number {\n  return x + ${i};\n}\n`;
    const path = `src/m${String(i % folders).padStart(fw, "0")}/f${String(i).padStart(nw, "0")}.ts`;
    parts.push(`M 100644 inline ${path}\ndata ${Buffer.byteLength(body)}\n${body}\n`);
  }
  // A second base, 20 files changed: consecutive units rarely start from the very same commit.
  const changed = [`commit refs/heads/other\ncommitter Bench <bench@localhost> 1700000001 +0000\ndata 6\nother\nfrom refs/heads/main\n`];
  for (let i = 0; i < 20; i++) {
    const n = i * Math.floor(files / 20);
    const body = `// file ${n}, changed\nexport const value${n} = ${n + 1};\n`;
    changed.push(
      `M 100644 inline src/m${String(n % folders).padStart(fw, "0")}/f${String(n).padStart(nw, "0")}.ts\ndata ${Buffer.byteLength(body)}\n${body}\n`,
    );
  }
  git(["fast-import", "--quiet"], parts.join("") + changed.join(""));
  git(["reset", "-q", "--hard"]); // the farm's repository has its branch checked out
}

export async function benchWorktreePrep(opts: WorktreeBenchOptions = {}): Promise<WorktreeBenchResult> {
  const { files = 20_000, folders = 200, runs = 5, baseDir = tmpdir(), addPartRuns = 3 } = opts;
  const root = mkdtempSync(join(baseDir, "optimus-worktree-bench-"));
  const repo = join(root, "repo");
  const workDir = join(root, "worker");
  mkdirSync(repo);
  let farm: InProcessTestFarm | undefined;
  try {
    let t0 = performance.now();
    makeBigRepo(repo, files, folders);
    const createMs = performance.now() - t0;
    const packBytes =
      Number(/size-pack: (\d+)/.exec(execFileSync("git", ["count-objects", "-v"], { cwd: repo }).toString())?.[1] ?? NaN) * 1024;

    t0 = performance.now();
    farm = await startTestFarm(undefined, { repo, config: { files: { mirror: false, commit: false, debounceMs: 0 } } });
    const farmStartMs = performance.now() - t0;
    const { token } = await farm.client.admin.createToken.mutate({ role: "worker", name: "bench" });
    const mirror = new RepoMirror(farm.url, token, workDir);
    const [, initialSyncMs] = await timed(() => mirror.sync());

    // a: plain git on the repository
    const wtRoot = join(root, "plain");
    mkdirSync(wtRoot);
    let nPlain = 0;
    const plainOnce = async () => {
      const dir = join(wtRoot, `wt${nPlain++}`);
      const [, addMs] = await timed(() => run(repo, ["worktree", "add", "-q", "--detach", dir, "HEAD"]));
      const [, removeMs] = await timed(() => run(repo, ["worktree", "remove", "--force", dir]));
      return { addMs, removeMs };
    };
    // b: the worker's path (a pooled slot, reset to the unit's base)
    let nMirror = 0;
    const mirrorOnce = async () => {
      const [dir, prepareMs] = await timed(() => mirror.prepare(`bench-${nMirror}`, nMirror++ % 2 ? "other" : "main"));
      const [, removeMs] = await timed(() => mirror.remove(dir));
      return { prepareMs, removeMs };
    };
    // c: the farm's eval tree (pooled, reset to the unit's commit)
    const farmRepo = new FarmRepo(repo, join(root, "farm-worktrees"));
    const commits = [(await run(repo, ["rev-parse", "main"])).trim(), (await run(repo, ["rev-parse", "other"])).trim()];
    let nFarm = 0;
    const farmOnce = async () => {
      const [tree, ms] = await timed(() => farmRepo.acquireTree(commits[nFarm++ % 2]!));
      farmRepo.releaseTree(tree);
      return ms;
    };

    const warmup = { plain: await plainOnce(), mirror: await mirrorOnce() }; // page cache, first worktree bookkeeping, the slot made
    const farmCreateMs = await farmOnce();
    const plainRuns: Array<{ addMs: number; removeMs: number }> = [];
    const mirrorRuns: Array<{ prepareMs: number; removeMs: number }> = [];
    const farmRuns: number[] = [];
    for (let i = 0; i < runs; i++) {
      plainRuns.push(await plainOnce());
      mirrorRuns.push(await mirrorOnce());
      farmRuns.push(await farmOnce());
    }

    // parts of prepare: the no-op fetch, and worktree add from the bare mirror without the fetch
    const syncs: number[] = [];
    for (let i = 0; i < runs; i++) syncs.push((await timed(() => mirror.sync()))[1]);
    const gitDir = join(workDir, "mirror.git");
    const adds: number[] = [];
    for (let i = 0; i < addPartRuns; i++) {
      const dir = join(workDir, "units", `part-${i}`);
      adds.push(
        (await timed(() => run(workDir, ["--git-dir", gitDir, "worktree", "add", "-q", "--detach", dir, "refs/remotes/farm/main"])))[1],
      );
      await run(workDir, ["--git-dir", gitDir, "worktree", "remove", "--force", dir]);
    }

    const baseline = {
      addMs: median(plainRuns.map((r) => r.addMs)),
      removeMs: median(plainRuns.map((r) => r.removeMs)),
      totalMs: median(plainRuns.map((r) => r.addMs + r.removeMs)),
      runs: plainRuns,
    };
    const viaMirror = {
      prepareMs: median(mirrorRuns.map((r) => r.prepareMs)),
      removeMs: median(mirrorRuns.map((r) => r.removeMs)),
      totalMs: median(mirrorRuns.map((r) => r.prepareMs + r.removeMs)),
      runs: mirrorRuns,
    };
    return {
      files,
      folders,
      runs,
      createMs,
      packBytes,
      farmStartMs,
      baseline,
      initialSyncMs,
      warmup,
      mirror: viaMirror,
      farmPool: { readyMs: median(farmRuns), runs: farmRuns, createMs: farmCreateMs },
      ratio: viaMirror.totalMs / baseline.totalMs,
      parts: { noopSyncMs: median(syncs), mirrorWorktreeAddMs: median(adds) },
      targetPrepareMs: TARGET_PREPARE_MS,
      fs: fileSystemOf(root),
    };
  } finally {
    await farm?.stop();
    rmSync(root, { recursive: true, force: true });
  }
}
