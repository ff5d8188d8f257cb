import { execFileSync } from "node:child_process";
import { existsSync, readFileSync, statSync } from "node:fs";
import { join, resolve } from "node:path";
import { MAX_CONFIG_BYTES, ServerConfig, formatField, parseYamlWithLimits } from "@optimus/shared";
import { createFarmClient, type FarmClient } from "../client/farm-client.js";
import { parseFarmUrls } from "../client/farm-endpoints.js";
import { stateDirOf } from "../home/farm-home.js";
import { runningFarm, runningFarmUrl } from "../store/state-lock.js";
import { CliError, EXIT } from "./errors.js";
import { tokenFromSources, type TokenSources } from "./token-source.js";
import { checkTrustFits, localFarmTrust, trustFromOptions, type TrustOptions } from "./farm-trust-options.js";
import { hasTrust, type FarmTrust } from "../client/farm-trust.js";

export interface GlobalOptions extends TokenSources, TrustOptions {
  repo?: string;
  origin?: string;
  farm?: string;
}

/** The repository the farm works on: --repo, else the git work tree around the current folder, else the folder. */
export function resolveRepo(opt?: string): string {
  if (opt) {
    const r = resolve(opt);
    if (!existsSync(r)) throw new CliError(`the repository folder ${r} does not exist`);
    return r;
  }
  try {
    return execFileSync("git", ["rev-parse", "--show-toplevel"], { stdio: ["ignore", "pipe", "ignore"] })
      .toString()
      .trim();
  } catch {
    return process.cwd();
  }
}

export const CONFIG_FILE = join(".optimus", "config.yaml");

/**
 * `.optimus/config.yaml` of a repository folder (optional; `null`: none, e.g. the origin is a URL)
 * or the file given, over the embedded defaults, validated with file and field in errors.
 */
export function loadConfig(repo: string | null, overrides: Partial<ServerConfig> = {}, configFile?: string): ServerConfig {
  const file = configFile ?? (repo ? join(repo, CONFIG_FILE) : "/nonexistent/optimus-config.yaml");
  const label = configFile ?? CONFIG_FILE;
  if (configFile && !existsSync(configFile)) throw new CliError(`the configuration file ${configFile} does not exist`, 2);
  let raw: Record<string, unknown> = {};
  if (existsSync(file)) {
    // Committed with the repository, so read under the same limits as a manifest (size, aliases).
    let text: string;
    try {
      if (statSync(file).size > MAX_CONFIG_BYTES)
        throw new CliError(`${label}: the file is larger than the limit of ${MAX_CONFIG_BYTES / 1024} KiB; make it smaller`);
      text = readFileSync(file, "utf8");
    } catch (err) {
      if (err instanceof CliError) throw err;
      throw new CliError(
        `${label} cannot be read (${(err as NodeJS.ErrnoException).code ?? (err as Error).message}); make it a readable file`,
      );
    }
    const read = parseYamlWithLimits(text, { maxBytes: MAX_CONFIG_BYTES, what: "the farm's configuration" });
    if (!read.ok) throw new CliError(`${label}:${read.problems[0]!.line}:${read.problems[0]!.column}: ${read.problems[0]!.message}`);
    const value = read.value ?? {};
    if (typeof value !== "object" || Array.isArray(value))
      throw new CliError(`${label}: must be a mapping of settings (key: value), not a list or a single value`);
    raw = value as Record<string, unknown>;
  }
  const parsed = ServerConfig.safeParse({ ...raw, ...Object.fromEntries(Object.entries(overrides).filter(([, v]) => v !== undefined)) });
  if (!parsed.success) {
    const i = parsed.error.issues[0]!;
    throw new CliError(`${label}: ${formatField(i.path)}: ${i.message}`);
  }
  return parsed.data;
}

export const adminTokenFile = (repo: string, config: ServerConfig) => join(stateDirOf(repo, config), "admin.token");

/**
 * Where to reach the farm and with which token: flags (--token-file preferred to --token, which
 * `ps` shows), then OPTIMUS_FARM / OPTIMUS_TOKEN / OPTIMUS_TOKEN_FILE, then the farm running on
 * this repository (its lock file says where) with its admin token.
 */
let lastUrl: string | undefined;
/** The farm URL the last command resolved (for error messages). */
export const resolvedFarmUrl = () => lastUrl;

/**
 * The origins the farm for this command may follow, most specific first: --origin, then the
 * repository folder (--repo or the work tree here: a farm started with `--repo` on it), then that
 * checkout's own `origin` remote (a farm following the team's repository this is a clone of).
 */
export function candidateOrigins(opts: GlobalOptions): string[] {
  if (opts.origin) return [opts.origin];
  const repo = resolveRepo(opts.repo);
  const out = [repo];
  try {
    const url = execFileSync("git", ["-C", repo, "config", "--get", "remote.origin.url"], { stdio: ["ignore", "pipe", "ignore"] })
      .toString()
      .trim();
    if (url) out.push(/^[a-z][a-z0-9+.-]*:\/\/|^[^/@:]+@[^/:]+:/i.test(url) ? url : resolve(repo, url));
  } catch {
    // no origin remote: the folder itself is the only candidate
  }
  return out;
}

/** The origin whose farm this command talks to: the first candidate with a running farm, else with a farm's state, else the first. */
export function findFarmOrigin(opts: GlobalOptions): { origin: string; config: ServerConfig } {
  const repo = opts.origin ? null : resolveRepo(opts.repo);
  const config = repo ? loadConfig(repo) : loadConfig(null);
  const candidates = candidateOrigins(opts);
  const running = candidates.find((c) => runningFarmUrl(stateDirOf(c, config)));
  const known = candidates.find((c) => existsSync(adminTokenFile(c, config)));
  return { origin: running ?? known ?? candidates[0]!, config };
}

export function connection(opts: GlobalOptions): { url: string; token: string; trust: FarmTrust } {
  const { origin, config } = findFarmOrigin(opts);
  const given = opts.farm || process.env.OPTIMUS_FARM;
  const running = runningFarm(stateDirOf(origin, config));
  const url = given || running?.url || `${config.tls ? "https" : "http"}://${config.host}:${config.port}`;
  lastUrl = url;
  try {
    parseFarmUrls(url); // a bad --farm (or $OPTIMUS_FARM) is the user's to fix, before anything connects
  } catch (err) {
    const from = opts.farm ? " in --farm" : process.env.OPTIMUS_FARM ? " in $OPTIMUS_FARM" : "";
    throw new CliError(`${(err as Error).message}${from}`, EXIT.usage);
  }
  let trust = trustFromOptions(opts);
  // The farm on this machine: its own certificate is trusted as its admin token is (both from its home).
  if (!given && !hasTrust(trust))
    trust = running?.pin ? { pins: [running.pin], pinFrom: "the local farm's lock file" } : localFarmTrust(config);
  checkTrustFits(trust, parseFarmUrls(url));
  let token = tokenFromSources(opts);
  if (!token) {
    const f = adminTokenFile(origin, config);
    if (existsSync(f)) token = readFileSync(f, "utf8").trim();
  }
  if (!token) {
    const f = adminTokenFile(origin, config);
    // A farm that has run here but whose admin token file is gone lost it: only a reset helps then.
    const lost = existsSync(stateDirOf(origin, config))
      ? `the local farm's admin token is not in ${f}; if it was lost, \`optimus farm up --reset-admin-token\` issues a new one there (and revokes the old)`
      : "no farm has run on this repository here yet (`optimus farm up` writes its admin token into its home)";
    throw new CliError(`no token: pass --token-file <file> or set OPTIMUS_TOKEN / OPTIMUS_TOKEN_FILE; ${lost}`, 2);
  }
  return { url, token, trust };
}

export function httpClient(opts: GlobalOptions): { client: FarmClient; url: string } {
  const c = connection(opts);
  return { client: createFarmClient({ url: c.url, token: c.token, trust: c.trust, transport: "http" }).client, url: c.url };
}
