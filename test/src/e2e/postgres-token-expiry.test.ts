// Token expiry on a farm whose tokens live in PostgreSQL (issue 14, item 4): an idle worker token
// expires and is refused with the fix, a working one is renewed in PostgreSQL as it is used and
// outlives several ttls, a restart reads the expiries back, and a token revoked while connected is
// refused at once on its open socket.
import assert from "node:assert/strict";
import { test } from "node:test";
import { createFarmClient, errorCode } from "@optimus/farm-server";
import { httpClientFor } from "../helpers/clients.js";
import { freshSchema, pgQuery, TEST_PG_URL } from "../helpers/postgres.js";
import { makeRepo, writeFarmConfig } from "../helpers/repo.js";
import { startTestFarm } from "../helpers/test-farm.js";
import { sleep, waitFor } from "../helpers/wait.js";
import { newLedger, startWorkers, stopAll } from "../helpers/workers.js";

const pg = new URL(TEST_PG_URL);
const PGPASSWORD = decodeURIComponent(pg.password);
pg.password = "";
const TTL_MS = 3_000;
const date = String.raw`\d{4}-\d\d-\d\d \d\d:\d\d UTC`;

test(
  "PostgreSQL tokens: idle expires with the fix, a working worker's token is renewed there (read back after a restart), revoked is refused at once",
  { timeout: 120_000 },
  async (t) => {
    const repo = makeRepo(t);
    const schema = await freshSchema(t, "exp");
    writeFarmConfig(
      repo,
      `prloop: { reviewEveryCodegenUnit: false }\nplanner: { enabled: false }\nstore: { kind: postgres, url: "${pg}", schema: ${schema} }\n`,
    );
    const farm = await startTestFarm(t, { mode: "process", repo, env: { PGPASSWORD }, args: ["--heartbeat-ms", "400"] });
    const admin = () => httpClientFor(farm.url, farm.adminToken);
    const storedExpiry = async (tokenId: string) =>
      Number((await pgQuery<{ expires_at: string }>(`SELECT expires_at FROM "${schema}".tokens WHERE id = $1`, [tokenId]))[0]!.expires_at);

    const idle = await admin().admin.createToken.mutate({ role: "worker", name: "idle", ttlMs: TTL_MS });
    const busy = await admin().admin.createToken.mutate({ role: "worker", name: "busy", ttlMs: TTL_MS });
    assert.equal(await storedExpiry(busy.tokenId), busy.expiresAt);
    const ledger = newLedger();
    let agents = await startWorkers(farm.url, busy.token, [{ nodeId: "busy-1", role: "codegen", max: 1 }], ledger);
    t.after(() => stopAll(agents));
    const runUnits = async (until: number) => {
      while (Date.now() < until) {
        await admin().tasks.create.mutate({ title: `unit ${ledger.accepted.length}`, units: [{ id: "u", goal: "g" }] });
        const n = ledger.accepted.length + 1;
        await waitFor(() => ledger.accepted.length >= n, `unit ${n} to be completed`, 20_000);
        await sleep(200);
      }
    };
    await runUnits(busy.expiresAt! + TTL_MS);

    // The idle token, never used, is refused with when it expired and the fix.
    const late = await httpClientFor(farm.url, idle.token)
      .worker.register.mutate({ nodeId: "idle-1", role: "codegen", maxConcurrentTasks: 1, model: { primary: "manual" } })
      .then(
        () => assert.fail("an idle worker token was accepted past its ttl"),
        (e: unknown) => e as Error,
      );
    assert.equal(errorCode(late), "UNAUTHORIZED");
    assert.match(
      late.message,
      new RegExp(
        `^the worker token 'idle' expired at ${date} \\(unused for 3s\\); make a new one on the farm with \`optimus token create --role worker --name idle\``,
      ),
    );
    // The busy one moved on in PostgreSQL as it worked.
    const moved = await waitFor(async () => {
      const at = await storedExpiry(busy.tokenId);
      return at > busy.expiresAt! + TTL_MS && at > Date.now() ? at : null;
    }, "the busy token's stored expiry to move on");
    t.diagnostic(`${ledger.accepted.length} units; the stored expiry moved ${moved - busy.expiresAt!} ms on`);

    // A restart reads the expiries back from PostgreSQL: the idle token stays refused; the busy one's is what was stored.
    await stopAll(agents);
    await farm.stop();
    const stored = await storedExpiry(busy.tokenId);
    await farm.start();
    const listed = (await admin().admin.listTokens.query()).find((x) => x.tokenId === busy.tokenId)!;
    assert.equal(listed.expiresAt, stored);
    const again = await httpClientFor(farm.url, idle.token)
      .fleet.workers.query()
      .catch((e: unknown) => e as Error);
    assert.match((again as Error).message, /^the worker token 'idle' expired at /);

    // Revoked while its socket is open (and its worker running): the next call on that socket is refused at once.
    const held = await admin().admin.createToken.mutate({ role: "worker", name: "held" });
    agents = await startWorkers(farm.url, held.token, [{ nodeId: "held-1", role: "codegen", max: 1 }], ledger);
    const probe = createFarmClient({ url: farm.url, token: held.token, transport: "ws" });
    t.after(() => probe.close());
    const registration = { nodeId: "held-2", role: "codegen" as const, maxConcurrentTasks: 1, model: { primary: "manual" } };
    await probe.client.worker.register.mutate(registration);
    await admin().admin.revokeToken.mutate({ tokenId: held.tokenId });
    const refused = await probe.client.worker.register.mutate(registration).catch((e: unknown) => e);
    assert.equal(errorCode(refused), "UNAUTHORIZED");
    const told = await Promise.race([agents[0]!.refused, sleep(10_000).then(() => null)]);
    assert.ok(told, "the running worker agent was told its token is refused");
  },
);
