// Takeover time: two farm nodes (`optimus farm up`, separate homes) on this machine's PostgreSQL with
// the default lease; the leader SIGKILLed or SIGSTOPped, the time until the standby answers as the
// leader with a later epoch. A stopped leader is woken and waited for to stand by again.
import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { faultAndTakeOver, recoverNode } from "../helpers/takeover.js";
import { pgQuery, TEST_PG_URL } from "../helpers/postgres.js";
import { makeRepo, writeFarmConfig } from "../helpers/repo.js";
import { startTestFarm, type ProcessTestFarm } from "../helpers/test-farm.js";
import { sleep } from "../helpers/wait.js";
import { percentile } from "./stats.js";

export interface TakeoverBenchResult {
  kills: number;
  stops: number;
  leaseMs: number;
  samples: number[];
  p50: number;
  max: number;
}

const LEASE_MS = 3_000; // the default of store.leaseMs

export async function benchTakeover(o: { kills: number; stops: number }): Promise<TakeoverBenchResult> {
  const u = new URL(TEST_PG_URL);
  const password = decodeURIComponent(u.password);
  u.password = "";
  const schema = `bench_ha_${randomBytes(5).toString("hex")}`;
  const repo = makeRepo(undefined, "optimus-bench-ha-");
  writeFarmConfig(repo, `planner: { enabled: false }\nstore: { kind: postgres, url: "${u}", schema: ${schema} }\n`);
  const homeB = mkdtempSync(join(tmpdir(), "optimus-bench-ha-b-"));
  const nodes: ProcessTestFarm[] = [];
  try {
    nodes.push(await startTestFarm(undefined, { mode: "process", repo, env: { PGPASSWORD: password } }));
    nodes.push(await startTestFarm(undefined, { mode: "process", repo, env: { PGPASSWORD: password, OPTIMUS_HOME: homeB } }));
    let [leader, standby] = nodes as [ProcessTestFarm, ProcessTestFarm];
    const samples: number[] = [];
    const faults = [...Array<"kill">(o.kills).fill("kill"), ...Array<"stop">(o.stops).fill("stop")];
    for (const fault of faults) {
      await sleep(500);
      samples.push(await faultAndTakeOver(leader, standby, fault, { pollMs: 10 }));
      await recoverNode(leader, fault);
      [leader, standby] = [standby, leader];
    }
    return { ...o, leaseMs: LEASE_MS, samples, p50: percentile(samples, 50), max: Math.max(...samples) };
  } finally {
    for (const n of nodes) await n.stop().catch(() => undefined);
    rmSync(homeB, { recursive: true, force: true });
    rmSync(repo, { recursive: true, force: true });
    await pgQuery(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`).catch(() => undefined);
  }
}

if (process.argv[1]?.endsWith("takeover.js")) {
  console.log(JSON.stringify(await benchTakeover({ kills: 4, stops: 2 }), null, 1));
}
