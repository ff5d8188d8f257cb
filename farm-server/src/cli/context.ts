import { execFileSync } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { ServerConfig, formatField } from "@optimus/shared";
import { parseDocument } from "yaml";
import { createFarmClient, type FarmClient } from "../client/farm-client.js";
import { stateDirOf } from "../farm.js";
import { runningFarmUrl } from "../store/state-lock.js";
import { CliError } from "./errors.js";

export interface GlobalOptions {
  repo?: string;
  farm?: string;
  token?: string;
}

/** The repository the farm works on: --repo, else the git work tree around the current folder, else the folder. */
export function resolveRepo(opt?: string): string {
  if (opt) {
    const r = resolve(opt);
    if (!existsSync(r)) throw new CliError(`the repository folder ${r} does not exist`);
    return r;
  }
  try {
    return execFileSync("git", ["rev-parse", "--show-toplevel"], { stdio: ["ignore", "pipe", "ignore"] }).toString().trim();
  } catch {
    return process.cwd();
  }
}

export const CONFIG_FILE = join(".optimus", "config.yaml");

/** `.optimus/config.yaml` (optional) over the embedded defaults, validated with file and field in errors. */
export function loadConfig(repo: string, overrides: Partial<ServerConfig> = {}): ServerConfig {
  const file = join(repo, CONFIG_FILE);
  let raw: Record<string, unknown> = {};
  if (existsSync(file)) {
    const doc = parseDocument(readFileSync(file, "utf8"));
    if (doc.errors.length) throw new CliError(`${CONFIG_FILE}: ${doc.errors[0]!.message.split("\n")[0]}`);
    raw = (doc.toJS() as Record<string, unknown> | null) ?? {};
  }
  const parsed = ServerConfig.safeParse({ ...raw, ...Object.fromEntries(Object.entries(overrides).filter(([, v]) => v !== undefined)) });
  if (!parsed.success) {
    const i = parsed.error.issues[0]!;
    throw new CliError(`${CONFIG_FILE}: ${formatField(i.path)}: ${i.message}`);
  }
  return parsed.data;
}

export const adminTokenFile = (repo: string, config: ServerConfig) => join(stateDirOf(repo, config), "admin.token");

/**
 * Where to reach the farm and with which token: flags, then OPTIMUS_FARM / OPTIMUS_TOKEN, then the
 * farm running on this repository (its lock file says where) with its admin token.
 */
let lastUrl: string | undefined;
/** The farm URL the last command resolved (for error messages). */
export const resolvedFarmUrl = () => lastUrl;

export function connection(opts: GlobalOptions): { url: string; token: string } {
  const repo = resolveRepo(opts.repo);
  const config = loadConfig(repo);
  const url = opts.farm || process.env.OPTIMUS_FARM || runningFarmUrl(stateDirOf(repo, config)) || `http://${config.host}:${config.port}`;
  lastUrl = url;
  let token = opts.token || process.env.OPTIMUS_TOKEN;
  if (!token) {
    const f = adminTokenFile(repo, config);
    if (existsSync(f)) token = readFileSync(f, "utf8").trim();
  }
  if (!token) throw new CliError("no token: pass --token, set OPTIMUS_TOKEN, or run this inside the repository of a local farm (`optimus farm up` writes its admin token there)", 2);
  return { url, token };
}

export function httpClient(opts: GlobalOptions): { client: FarmClient; url: string } {
  const c = connection(opts);
  return { client: createFarmClient({ url: c.url, token: c.token, transport: "http" }).client, url: c.url };
}
