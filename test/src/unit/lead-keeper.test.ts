/**
 * Before each push a leader asks whether it still leads (issue 13). The answer comes from its own
 * heartbeat, not a query per push: it must stay true while renewals succeed, and be false the moment
 * a node wakes from a pause past its lease (before any timer of its has run). Asked before a push,
 * that node renews first: it still leads if nobody took over meanwhile, and never again once
 * another node has.
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { dirname } from "node:path";
import { fileURLToPath } from "node:url";
import { test } from "node:test";
import { LeaderLease, openPgPool, PostgresJournal } from "@optimus/farm-server";
import { LeadKeeper } from "@optimus/farm-server/dist/store/lead-keeper.js";
import { freshSchema, TEST_PG_URL } from "../helpers/postgres.js";
import { sleep } from "../helpers/wait.js";

const LEASE_MS = 600;
const here = dirname(fileURLToPath(import.meta.url));

/** Stops this process's event loop as SIGSTOP would: no timer, no socket read. */
function freeze(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

/** A standby in a process of its own, polling for the lead until it takes it; resolves once it is ready to. */
async function standbyProcess(schema: string): Promise<{ tookOver: Promise<number> }> {
  const code = `
    import { LeaderLease, openPgPool, PostgresJournal } from "@optimus/farm-server";
    const pool = openPgPool(${JSON.stringify(TEST_PG_URL)}, () => undefined, 1);
    const lease = new LeaderLease(pool, ${JSON.stringify(schema)}, "node-b", ${LEASE_MS});
    await lease.current();
    console.log("ready");
    for (let i = 0; i < 100; i++) {
      const epoch = await lease.acquire("http://b").catch(() => 0);
      if (epoch) { console.log("epoch " + epoch); break; }
      await new Promise((r) => setTimeout(r, 50));
    }
    await pool.end();`;
  const child = spawn(process.execPath, ["--input-type=module", "-e", code], { cwd: here, stdio: ["ignore", "pipe", "inherit"] });
  let out = "";
  const ready = new Promise<void>((resolve, reject) => {
    child.stdout.on("data", (b: Buffer) => {
      out += b.toString();
      if (out.includes("ready")) resolve();
    });
    child.on("exit", () => reject(new Error(`the standby exited before it was ready: ${out}`)));
  });
  const tookOver = new Promise<number>((resolve, reject) =>
    child.on("exit", () => {
      const m = /epoch (\d+)/.exec(out);
      if (m) resolve(Number(m[1]));
      else reject(new Error(`the standby never took the lead: ${out}`));
    }),
  );
  await ready;
  return { tookOver };
}

test("a leader's heartbeat says whether it leads: true while renewed, false on waking past its lease and once deposed", async (t) => {
  const schema = await freshSchema(t, "keeper");
  const pool = openPgPool(TEST_PG_URL, () => undefined, 4);
  t.after(() => pool.end());
  const lease = new LeaderLease(pool, schema, "node-a", LEASE_MS);
  // The journal makes the schema and takes the lead, as a farm's start does.
  const { epoch } = await new PostgresJournal(pool, schema, lease).open();
  const lost: string[] = [];
  const keeper = new LeadKeeper(lease, epoch, (err) => lost.push(err.message));
  keeper.start();
  t.after(() => keeper.stop());

  // Renewed every third of a lease: it stays fresh well past one lease.
  for (let i = 0; i < 6; i++) {
    assert.equal(keeper.fresh(), true, `fresh after ${i * (LEASE_MS / 2)} ms`);
    await sleep(LEASE_MS / 2);
  }

  // Paused past its lease: on waking, before its first beat, it does not claim the lead.
  freeze(LEASE_MS + 100);
  assert.equal(keeper.fresh(), false, "a node waking from a pause past its lease does not claim the lead");

  // Nobody took over meanwhile: asked before a push, it renews first, and it still leads.
  assert.equal(await keeper.confirm(), true, "renewed after the pause, as nobody took over");
  assert.equal(keeper.fresh(), true);

  // Another node (another process) takes the lead while this one is paused: it never leads again.
  const other = await standbyProcess(schema);
  freeze(LEASE_MS * 3);
  assert.equal(keeper.fresh(), false);
  assert.equal(await keeper.confirm(), false, "asked before a push, the renewal finds another node leading");
  const next = await other.tookOver;
  assert.ok(next > epoch, `the other node leads with a later epoch (${next} > ${epoch})`);
  assert.equal(keeper.fresh(), false, "deposed");
  assert.equal(keeper.held, false);
  assert.match(lost.join("\n"), /another farm node took the lead/);
});
