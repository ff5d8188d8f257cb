import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { pino } from "pino";
import { parse } from "yaml";
import { startFarm, type Farm } from "@optimus/farm-server";
import { ServerConfig, type ServerConfigInput } from "@optimus/shared";
import { httpClientFor } from "./clients.js";
import { makeRepo } from "./repo.js";

/** A real farm server (HTTP + WebSocket on a loopback port) in this process, for protocol tests. */
export async function startTestFarm(t: { after(fn: () => unknown): void }, config: ServerConfigInput = {}): Promise<Farm & { adminToken: string; repo: string }> {
  const repo = makeRepo(t);
  const farm = await startFarm({ repo, config: ServerConfig.parse({ port: 0, prloop: { reviewEveryCodegenUnit: false }, planner: { enabled: false }, ...config }), log: pino({ level: process.env.OPTIMUS_LOG_LEVEL ?? "silent" }) });
  t.after(() => farm.close());
  return Object.assign(farm, { adminToken: farm.startup.adminToken!.token, repo });
}

/**
 * A real farm in this process on an existing repository, configured by its `.optimus/config.yaml`
 * (as `farm up` would read it) plus `overrides`; with its admin token and an HTTP client.
 */
export async function farmOnRepo(t: { after(fn: () => unknown): void }, repo: string, overrides: ServerConfigInput = {}) {
  const file = join(repo, ".optimus", "config.yaml");
  const fromFile = existsSync(file) ? (parse(readFileSync(file, "utf8")) as Record<string, unknown>) : {};
  const config = ServerConfig.parse({ ...fromFile, port: 0, heartbeatIntervalMs: 500, ...overrides });
  const farm = await startFarm({ repo, config, log: pino({ level: process.env.OPTIMUS_LOG_LEVEL ?? "silent" }) });
  t.after(() => farm.close());
  const admin = farm.startup.adminToken!.token;
  return { farm, admin, client: httpClientFor(farm.url, admin) };
}
