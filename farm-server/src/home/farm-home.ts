/**
 * The farm's home: everything the farm keeps (journal, tokens, the admin token, escalations,
 * patches, transcripts, worktrees, local workers' mirrors, models) lives outside every repository,
 * in `~/.optimus/farm` (or `--home` / OPTIMUS_HOME), mode 0700. Code that evals and checks run sits in
 * repositories; the farm's secrets must never sit beside it.
 *
 *   <home>/repos/<name>-<hash>/state/   one repository's farm state (the hash keeps two folders
 *                                        with the same name apart); repo.json says which repository
 *   <home>/repos/<name>-<hash>/origin.git  the farm's own bare clone of the origin
 *   <home>/repos/<name>-<hash>/files/   task files (manifests, session notes, ADR drafts) between
 *                                        their commits onto the task's integration branch
 *   <home>/models/                      GGUF models, shared by every repository
 *   <home>/tls/                         the farm's certificate and key (`optimus farm cert`)
 */
import { createHash } from "node:crypto";
import { chmodSync, cpSync, existsSync, mkdirSync, readFileSync, realpathSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { homedir } from "node:os";
import { basename, isAbsolute, join, resolve } from "node:path";

/** The farm's home folder: OPTIMUS_HOME, else ~/.optimus/farm (read at each call: the CLI's --home sets it). */
export function farmHome(): string {
  const h = process.env.OPTIMUS_HOME;
  return h ? resolve(h) : join(homedir(), ".optimus", "farm");
}

/** Creates the home (0700) if needed; an existing home that others can read is tightened. */
export function ensureHome(home = farmHome()): string {
  mkdirSync(home, { recursive: true, mode: 0o700 });
  chmodSync(home, 0o700);
  return home;
}

const canonical = (repo: string): string => {
  try {
    return realpathSync(repo);
  } catch {
    return resolve(repo);
  }
};

const REMOTE = /^[a-z][a-z0-9+.-]*:\/\/|^[^/@:]+@[^/:]+:/i;

/**
 * How the home names a repository: a URL as written (without a trailing slash), a folder (or
 * `file://` URL) by its real path — so `--repo <path>` and `--origin <path>` find the same farm.
 */
export function originIdentity(origin: string): string {
  if (/^file:\/\//i.test(origin)) return canonical(decodeURIComponent(new URL(origin).pathname));
  if (REMOTE.test(origin)) return origin.replace(/\/+$/, "");
  return canonical(origin);
}

/** The folder of one repository in the home: `repos/<name>-<8 hex of its identity>`. */
export function repoSlot(repo: string, home = farmHome()): string {
  const id = originIdentity(repo);
  const name =
    basename(id.replace(/\/+$/, "").replace(/^.*:/, ""))
      .replace(/\.git$/, "")
      .replace(/[^A-Za-z0-9._-]/g, "_")
      .replace(/^\.+/, "_")
      .slice(0, 60) || "repo";
  return join(home, "repos", `${name}-${createHash("sha256").update(id).digest("hex").slice(0, 8)}`);
}

/** The farm's own bare clone of the origin, in the repository's folder of the home. */
export const cloneDirFor = (repo: string, home = farmHome()) => join(repoSlot(repo, home), "origin.git");
/** The farm's working copies of its task files (manifests, session notes, ADR drafts), before they are committed. */
export const filesDirFor = (repo: string, home = farmHome()) => join(repoSlot(repo, home), "files");

/**
 * The farm's state folder for a repository: `stateDir` from the configuration when set (absolute,
 * or relative to the repository's folder in the home), else `<slot>/state`.
 */
export function stateDirFor(repo: string, configured?: string, home = farmHome()): string {
  const slot = repoSlot(repo, home);
  if (configured) return isAbsolute(configured) ? configured : join(slot, configured);
  return join(slot, "state");
}

export const modelsDir = (home = farmHome()) => join(home, "models");
/** Where `optimus farm cert` writes the farm's certificate and key (`farm.crt`, `farm.key`, mode 0600). */
export const tlsDir = (home = farmHome()) => join(home, "tls");

/** The pre-home location of the farm's state, inside the repository. */
const legacyStateDir = (repo: string) => join(repo, ".optimus", "state");

/**
 * Prepares the repository's folder in the home (0700) and, once, moves a farm state found in the
 * repository (`.optimus/state/`, where farms kept it before the home existed) into it.
 * Returns what it did, for the farm to say.
 */
export function prepareRepoHome(repo: string, stateDir: string, home = farmHome()): { moved?: { from: string; to: string } } {
  ensureHome(home);
  const slot = repoSlot(repo, home);
  mkdirSync(slot, { recursive: true, mode: 0o700 });
  const record = join(slot, "repo.json");
  if (!existsSync(record))
    writeFileSync(record, JSON.stringify({ repo: originIdentity(repo), createdAt: new Date().toISOString() }, null, 2) + "\n", {
      mode: 0o600,
    });
  const legacy = legacyStateDir(REMOTE.test(repo) ? "/nonexistent" : repo);
  let moved: { from: string; to: string } | undefined;
  if (existsSync(join(legacy, "journal.db")) && !existsSync(join(stateDir, "journal.db")) && canonical(legacy) !== canonical(stateDir)) {
    mkdirSync(join(stateDir, ".."), { recursive: true, mode: 0o700 });
    if (existsSync(stateDir)) rmSync(stateDir, { recursive: true, force: true }); // empty: no journal in it
    try {
      renameSync(legacy, stateDir);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "EXDEV") throw err;
      cpSync(legacy, stateDir, { recursive: true, preserveTimestamps: true });
      rmSync(legacy, { recursive: true, force: true });
    }
    moved = { from: legacy, to: stateDir };
  }
  mkdirSync(stateDir, { recursive: true, mode: 0o700 });
  chmodSync(stateDir, 0o700);
  return moved ? { moved } : {};
}

/** The repository a slot belongs to (from its repo.json), if it says. */
export function slotRepo(slot: string): string | undefined {
  try {
    return (JSON.parse(readFileSync(join(slot, "repo.json"), "utf8")) as { repo?: string }).repo;
  } catch {
    return undefined;
  }
}

/** The farm's state folder for a repository under its configuration (journal, tokens, worktrees). */
export const stateDirOf = (repo: string, config: { stateDir?: string }) => stateDirFor(repo, config.stateDir);
export const journalPathOf = (repo: string, config: { stateDir?: string }) => join(stateDirOf(repo, config), "journal.db");
