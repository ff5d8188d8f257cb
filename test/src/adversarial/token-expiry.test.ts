// Worker tokens that expire (issue 14, item 4): a token left unused past its ttl is refused like a
// revoked one — over HTTP, over an open socket and at /git — with when it expired and the fix; a
// worker that keeps running keeps its token, which the farm renews as it is used (durably, in the
// farm's SQLite token database); a revoked worker stops with the farm's answer instead of retrying.
import assert from "node:assert/strict";
import { join } from "node:path";
import { test } from "node:test";
import Database from "better-sqlite3";
import WebSocket from "ws";
import { createFarmClient, errorCode, wsUrlOf, stateDirOf, type WorkerAgent } from "@optimus/farm-server";
import { httpClientFor } from "../helpers/clients.js";
import { startTestFarm, type InProcessTestFarm } from "../helpers/test-farm.js";
import { sleep, waitFor } from "../helpers/wait.js";
import { newLedger, startWorkers, stopAll } from "../helpers/workers.js";

const TTL_MS = 2_000;
/** the working worker's: its heartbeats (every 300 ms) renew it well within this, even on a busy machine */
const RENEW_TTL_MS = 3_000;
const REGISTRATION = { nodeId: "idle-1", role: "codegen" as const, maxConcurrentTasks: 1, model: { primary: "manual" } };
const date = String.raw`\d{4}-\d\d-\d\d \d\d:\d\d UTC`;

/** The expiry the farm's token database holds for a token (not the farm's memory of it). */
function storedExpiry(farm: InProcessTestFarm, tokenId: string): number {
  const db = new Database(join(stateDirOf(farm.server.services.repo, farm.server.services.config), "tokens.db"), { readonly: true });
  try {
    return db.prepare("SELECT expires_at FROM tokens WHERE id = ?").pluck().get(tokenId) as number;
  } finally {
    db.close();
  }
}

/** A raw WebSocket that presents a token and then says nothing. */
async function silentSocket(url: string, token: string): Promise<Promise<{ code: number; reason: string }>> {
  const ws = new WebSocket(`${wsUrlOf(url)}?connectionParams=1`);
  ws.on("error", () => undefined);
  const closed = new Promise<{ code: number; reason: string }>((r) =>
    ws.once("close", (code, reason) => r({ code, reason: String(reason) })),
  );
  await new Promise((r) => ws.once("open", r));
  ws.send(JSON.stringify({ method: "connectionParams", data: { token } }));
  return closed;
}

test("a worker token left unused past its ttl is refused over HTTP, /git and an open socket, with when it expired and the fix", async (t) => {
  const farm = await startTestFarm(t);
  // Made in the farm's own store (the admin API takes `ttlMs` too: see the CLI test), so that this
  // test also runs against a farm from before expiry existed, where it shows the attack succeed.
  const issued = await farm.server.services.tokens.create("worker", "idle", { ttlMs: TTL_MS });
  const madeAt = Date.now();
  const worker = httpClientFor(farm.url, issued.token);
  await worker.worker.register.mutate(REGISTRATION);
  const socket = await silentSocket(farm.url, issued.token);

  // Nobody uses it for longer than its ttl.
  await waitFor(() => Date.now() > madeAt + TTL_MS + 250, "the token's ttl to pass");

  const late = await worker.worker.register.mutate(REGISTRATION).then(
    () => null,
    (e: unknown) => e as Error,
  );
  assert.ok(late, "a worker token unused for longer than its ttl was accepted (the attack succeeds)");
  assert.equal(errorCode(late), "UNAUTHORIZED");
  assert.match(
    late.message,
    new RegExp(
      `^the worker token 'idle' expired at ${date} \\(unused for 2s\\); make a new one on the farm with \`optimus token create --role worker --name idle\` and give it to the worker's --token-file$`,
    ),
  );
  const git = await fetch(`${farm.url}/git/info/refs?service=git-upload-pack`, { headers: { authorization: `Bearer ${issued.token}` } });
  assert.equal(git.status, 401, "git refuses it too");
  // The socket that opened while the token was good, and said nothing since, is closed.
  assert.deepEqual(await socket, { code: 4419, reason: "this token expired: make a new one on the farm" });

  // Only the holder of the secret learns why: a guess at the secret gets the words of any bad token.
  const guess = await httpClientFor(farm.url, `opt_${issued.tokenId}_${"A".repeat(43)}`)
    .worker.register.mutate(REGISTRATION)
    .then(
      () => assert.fail("a guessed secret was accepted"),
      (e: unknown) => e as Error,
    );
  assert.match(
    guess.message,
    /^missing, revoked or invalid token; an admin makes one with `optimus token create --role worker --name <who>`$/,
  );

  const listed = (await farm.client.admin.listTokens.query()).find((x) => x.tokenId === issued.tokenId)!;
  assert.equal(listed.ttlMs, TTL_MS);
  assert.ok(listed.expiresAt! <= Date.now(), "token list shows an expiry in the past");
  assert.equal((await farm.client.health.query()).ok, true);
});

test(
  "a worker working past several ttls keeps its token: the farm renews it as it is used, in its database",
  { timeout: 60_000 },
  async (t) => {
    const farm = await startTestFarm(t, { config: { heartbeatIntervalMs: 300 } });
    const issued = await farm.client.admin.createToken.mutate({ role: "worker", name: "busy", ttlMs: RENEW_TTL_MS });
    const first = storedExpiry(farm, issued.tokenId);
    assert.equal(first, issued.expiresAt);
    const ledger = newLedger();
    const agents = await startWorkers(farm.url, issued.token, [{ nodeId: "busy-1", role: "codegen", max: 1 }], ledger);
    t.after(() => stopAll(agents));
    let refused: Error | undefined;
    void agents[0]!.refused.then((e) => (refused = e));

    // Units keep coming for longer than three ttls; each is leased and completed.
    let n = 0;
    while (Date.now() < first + 2 * RENEW_TTL_MS) {
      await farm.client.tasks.create.mutate({ title: `unit ${n}`, units: [{ id: "u", goal: "g" }] });
      n++;
      await waitFor(() => ledger.accepted.length === n, `unit ${n} to be completed`, 10_000);
      await sleep(200);
    }
    assert.ok(n >= 2);
    assert.equal(refused, undefined, "the worker's token was never refused");
    // Its expiry moved on in the database: past where it began, and ahead of now.
    const stored = await waitFor(() => {
      const at = storedExpiry(farm, issued.tokenId);
      return at > first + RENEW_TTL_MS && at > Date.now() ? at : null;
    }, "the stored expiry to move on");
    t.diagnostic(
      `${n} units over ${Math.round((Date.now() - first + RENEW_TTL_MS) / 1000)} s; the stored expiry moved ${stored - first} ms on`,
    );
    assert.equal((await farm.client.admin.listTokens.query()).find((x) => x.tokenId === issued.tokenId)!.revoked, false);
  },
);

test("a worker whose token is revoked while it is connected is refused at once and stops with the farm's answer", async (t) => {
  const farm = await startTestFarm(t, { config: { heartbeatIntervalMs: 300 } });
  const issued = await farm.client.admin.createToken.mutate({ role: "worker", name: "rogue" });
  const agents: WorkerAgent[] = await startWorkers(farm.url, issued.token, [{ nodeId: "rogue-1", role: "codegen", max: 1 }], newLedger());
  t.after(() => stopAll(agents));
  const probe = createFarmClient({ url: farm.url, token: issued.token, transport: "ws" });
  t.after(() => probe.close());
  await probe.client.worker.register.mutate({ ...REGISTRATION, nodeId: "rogue-2" });

  await farm.client.admin.revokeToken.mutate({ tokenId: issued.tokenId });
  // The open socket's next call is refused; the worker agent hears it and settles its refusal.
  const call = await probe.client.worker.register.mutate({ ...REGISTRATION, nodeId: "rogue-2" }).catch((e: unknown) => e);
  assert.equal(errorCode(call), "UNAUTHORIZED");
  const refused = await Promise.race([agents[0]!.refused, new Promise<null>((r) => setTimeout(() => r(null), 10_000))]);
  assert.ok(refused, "the worker agent was told its token is refused");
  assert.match(refused.message, /^missing, revoked or invalid token/);
});
