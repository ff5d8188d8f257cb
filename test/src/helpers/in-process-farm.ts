import { pino } from "pino";
import { startFarm, type Farm } from "@optimus/farm-server";
import { ServerConfig, type ServerConfigInput } from "@optimus/shared";
import { makeRepo } from "./repo.js";

/** A real farm server (HTTP + WebSocket on a loopback port) in this process, for protocol tests. */
export async function startTestFarm(t: { after(fn: () => unknown): void }, config: ServerConfigInput = {}): Promise<Farm & { adminToken: string; repo: string }> {
  const repo = makeRepo(t);
  const farm = await startFarm({ repo, config: ServerConfig.parse({ port: 0, prloop: { reviewEveryCodegenUnit: false }, planner: { enabled: false }, ...config }), log: pino({ level: process.env.OPTIMUS_LOG_LEVEL ?? "silent" }) });
  t.after(() => farm.close());
  return Object.assign(farm, { adminToken: farm.startup.adminToken!.token, repo });
}
