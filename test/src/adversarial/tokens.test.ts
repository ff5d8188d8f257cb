// Tokens and sockets, tried as an attacker would: a revoked token keeping its streams, batches and
// subscriptions without bound, sockets that never authenticate, a /git flood, and a subscriber that
// never reads. Each must end in a clear refusal, no state change, and a farm that still answers.
import assert from "node:assert/strict";
import http from "node:http";
import { Writable } from "node:stream";
import { test } from "node:test";
import { pino } from "pino";
// `ws` comes with the farm server (Node 20 has no global WebSocket client).
import WebSocket from "ws";
import { createFarmClient, errorCode, wsUrlOf, type Lease } from "@optimus/farm-server";
import type { FarmEvent, ServerConfigInput } from "@optimus/shared";
import { httpClientFor, tokenFor } from "../helpers/clients.js";
import { makeFixtureRepo } from "../helpers/fixture.js";
import { startTestFarm } from "../helpers/test-farm.js";
import { sleep, waitFor } from "../helpers/wait.js";
import { newLedger, startWorkers, stopAll } from "../helpers/workers.js";

const tokenIdOf = (token: string) => token.split("_")[1]!;

/** A farm whose log lines the test can read. */
async function farmWithLog(t: { after(fn: () => unknown): void }, repo: string, config: ServerConfigInput) {
  const lines: Array<Record<string, unknown>> = [];
  const sink = new Writable({
    write(chunk, _e, cb) {
      for (const l of String(chunk).split("\n")) if (l.trim()) lines.push(JSON.parse(l));
      cb();
    },
  });
  const farm = await startTestFarm(t, {
    repo,
    config: { planner: { enabled: false }, prloop: { reviewEveryCodegenUnit: false }, ...config },
    log: pino({ level: "info" }, sink),
  });
  return { farm, lines, admin: farm.adminToken };
}

/** A raw WebSocket (no tRPC client: it neither reconnects nor reads unless told to). */
function rawSocket(url: string): Promise<WebSocket & { closed: Promise<{ code: number; reason: string; at: number }> }> {
  const ws = new WebSocket(`${wsUrlOf(url)}?connectionParams=1`) as WebSocket & {
    closed: Promise<{ code: number; reason: string; at: number }>;
  };
  ws.closed = new Promise((r) => ws.once("close", (code, reason) => r({ code, reason: reason.toString(), at: Date.now() })));
  ws.on("error", () => undefined);
  return new Promise((resolve, reject) => {
    ws.once("open", () => resolve(ws));
    ws.once("error", reject);
  });
}

test("revoking an editor token closes its open views.stream within a second", async (t) => {
  const farm = await startTestFarm(t);
  const admin = httpClientFor(farm.url, farm.adminToken);
  const editor = await tokenFor(farm.url, farm.adminToken, "editor", "mallory");
  const closes: number[] = [];
  const ws = createFarmClient({
    url: farm.url,
    token: editor,
    transport: "ws",
    onConnectionChange: (s) => s === "closed" && closes.push(Date.now()),
  });
  t.after(() => ws.close());
  const got: Array<{ at: number; kind: string; titles: string[] }> = [];
  const errors: unknown[] = [];
  const sub = ws.client.views.stream.subscribe(
    {},
    {
      onData: (env) =>
        got.push({ at: Date.now(), kind: env.data.kind, titles: "tasks" in env.data ? env.data.tasks.map((x) => x.title) : [] }),
      onError: (e) => errors.push(e),
    },
  );
  t.after(() => sub.unsubscribe());
  await waitFor(() => got.some((m) => m.kind === "snapshot"), "the snapshot");

  const revokedAt = Date.now();
  await admin.admin.revokeToken.mutate({ tokenId: tokenIdOf(editor) });
  await waitFor(() => closes.find((at) => at >= revokedAt), "the revoked token's socket to be closed", 1_000, 10);
  t.diagnostic(`socket closed ${closes.find((at) => at >= revokedAt)! - revokedAt} ms after the revocation`);

  // What happens after the revocation never reaches it: not a delta, not a resubscription.
  await admin.tasks.create.mutate({ id: "secret-plan", title: "secret plan" });
  await waitFor(() => errors.length > 0, "the resubscription to be refused", 5_000);
  assert.equal(errorCode(errors[0]), "UNAUTHORIZED");
  await sleep(300);
  assert.deepEqual(
    got.filter((m) => m.titles.includes("secret plan")),
    [],
    "no view after the revocation",
  );
  assert.equal((await admin.health.query()).ok, true, "the farm is alive");
});

test("a revoked worker's lease stream gets no new lease; its leased unit is re-leased to another worker", async (t) => {
  // Leases live 30 s here: only the revocation can end this one in time.
  const farm = await startTestFarm(t, { config: { heartbeatIntervalMs: 20_000, leaseTtlMs: 30_000 } });
  const admin = httpClientFor(farm.url, farm.adminToken);
  const rogueToken = await tokenFor(farm.url, farm.adminToken, "worker", "rogue");
  const rogue = createFarmClient({ url: farm.url, token: rogueToken, transport: "ws" });
  t.after(() => rogue.close());
  await rogue.client.worker.register.mutate({ nodeId: "rogue-1", role: "codegen", maxConcurrentTasks: 5, model: { primary: "manual" } });
  const rogueLeases: Lease[] = [];
  const streamErrors: unknown[] = [];
  const sub = rogue.client.worker.leases.subscribe(
    { nodeId: "rogue-1" },
    { onData: (env) => rogueLeases.push(env.data as Lease), onError: (e) => streamErrors.push(e) },
  );
  t.after(() => sub.unsubscribe());
  await admin.tasks.create.mutate({ id: "first", title: "first", units: [{ id: "u1", goal: "g" }] });
  await waitFor(() => rogueLeases.length === 1, "the rogue worker's first lease");

  await admin.admin.revokeToken.mutate({ tokenId: tokenIdOf(rogueToken) });
  await admin.tasks.create.mutate({ id: "second", title: "second", units: [{ id: "u2", goal: "g" }] });
  await sleep(500);
  // A healthy worker joins: both units come to it, long before the rogue lease's 30 s were up.
  const ledger = newLedger();
  const healthyToken = await tokenFor(farm.url, farm.adminToken, "worker", "healthy");
  const agents = await startWorkers(farm.url, healthyToken, [{ nodeId: "healthy-1", role: "codegen", max: 2 }], ledger);
  t.after(() => stopAll(agents));
  await waitFor(() => ledger.accepted.length === 2, "the healthy worker to finish both units", 5_000);
  assert.deepEqual(
    rogueLeases.map((l) => `${l.taskId}/${l.unitId}#${l.attempt}`),
    ["first/u1#1"],
    "the revoked stream got nothing new",
  );
  assert.deepEqual(ledger.started.map((s) => `${s.key}#${s.attempt}`).sort(), ["first/u1#2", "second/u2#1"]);
  const events: FarmEvent[] = await farm.server.services.state.journal.readAfter(0, 10_000);
  const expired = events.filter((e) => e.type === "lease_expired");
  assert.equal(expired.length, 1, "the rogue lease ended once, journaled like an expired lease");
  assert.deepEqual([(expired[0]!.data as { worker: string }).worker, (expired[0]!.data as { unitId: string }).unitId], ["rogue-1", "u1"]);
  assert.equal(events.filter((e) => e.type === "unit_leased" && (e.data as { worker: string }).worker === "rogue-1").length, 1);
  // Its late report is refused, and the farm still answers.
  const late = await rogue.client.worker.submit
    .mutate({
      nodeId: "rogue-1",
      lease: { taskId: "first", unitId: "u1", attempt: 1, leaseId: rogueLeases[0]!.leaseId },
      result: { outcome: "succeeded", summary: "late" },
    })
    .catch((e: unknown) => e);
  assert.equal(errorCode(late), "UNAUTHORIZED");
  assert.equal((await admin.health.query()).ok, true);
});

test("a tRPC batch over the limit is refused whole, with nothing done", async (t) => {
  const farm = await startTestFarm(t);
  const admin = httpClientFor(farm.url, farm.adminToken);
  const n = 51;
  const paths = Array.from({ length: n }, () => "tasks.create").join(",");
  const body = Object.fromEntries(Array.from({ length: n }, (_, i) => [String(i), { id: `batch-${i}`, title: `t${i}` }]));
  const res = await fetch(`${farm.url}/trpc/${paths}?batch=1`, {
    method: "POST",
    headers: { authorization: `Bearer ${farm.adminToken}`, "content-type": "application/json" },
    body: JSON.stringify(body),
  });
  const text = await res.text();
  assert.ok(res.status === 400 || res.status === 413, `status ${res.status}: ${text.slice(0, 300)}`);
  assert.match(text, /batch/i);
  assert.deepEqual(await admin.tasks.list.query(), [], "no call of the batch was processed");
  // A batch within the limit still works.
  const ok = await fetch(`${farm.url}/trpc/${Array.from({ length: 50 }, () => "health").join(",")}?batch=1`, {
    headers: { authorization: `Bearer ${farm.adminToken}` },
  });
  assert.equal(ok.status, 200);
});

test("the 21st subscription on one socket is refused; the 20 before it keep working", async (t) => {
  const farm = await startTestFarm(t);
  const editor = await tokenFor(farm.url, farm.adminToken, "editor", "greedy");
  const ws = createFarmClient({ url: farm.url, token: editor, transport: "ws" });
  t.after(() => ws.close());
  const seen = new Map<number, number>();
  const errors = new Map<number, unknown>();
  const subs: Array<{ unsubscribe(): void }> = [];
  for (let i = 0; i < 21; i++) {
    subs.push(
      ws.client.events.stream.subscribe(
        {},
        {
          onData: (env) => (env.data as FarmEvent).type === "task_created" && seen.set(i, (seen.get(i) ?? 0) + 1),
          onError: (e) => errors.set(i, e),
        },
      ),
    );
    await sleep(5);
  }
  t.after(() => subs.forEach((s) => s.unsubscribe()));
  await waitFor(() => errors.has(20), "the 21st subscription to be refused", 5_000);
  assert.equal(errorCode(errors.get(20)), "TOO_MANY_REQUESTS");
  assert.match((errors.get(20) as Error).message, /20 subscriptions/);
  await httpClientFor(farm.url, farm.adminToken).tasks.create.mutate({ title: "still live" });
  await waitFor(() => [...Array(20).keys()].every((i) => seen.get(i) === 1), "the first 20 subscriptions to get the event");
  assert.deepEqual([...errors.keys()], [20], "only the 21st was refused");
});

test("a WebSocket that never presents a valid token is closed after the limit", async (t) => {
  const farm = await startTestFarm(t, { config: { limits: { unauthenticatedSocketMs: 1_000 } } });
  const editor = await tokenFor(farm.url, farm.adminToken, "editor", "ok");
  const started = Date.now();
  const silent = await rawSocket(farm.url);
  const badToken = await rawSocket(farm.url);
  badToken.send(JSON.stringify({ method: "connectionParams", data: { token: "opt_000000000000_" + "x".repeat(43) } }));
  const good = await rawSocket(farm.url);
  good.send(JSON.stringify({ method: "connectionParams", data: { token: editor } }));
  t.after(() => [silent, badToken, good].forEach((s) => s.terminate()));
  for (const [name, s] of [
    ["silent", silent],
    ["bad token", badToken],
  ] as const) {
    const closed = await Promise.race([s.closed, sleep(3_000).then(() => null)]);
    assert.ok(closed, `the ${name} socket was still open after 3 s`);
    assert.ok(closed.at - started < 2_500, `the ${name} socket closed after ${closed.at - started} ms`);
    assert.equal(closed.code, 4401);
  }
  assert.equal(good.readyState, WebSocket.OPEN, "an authenticated socket stays open");
  assert.equal((await httpClientFor(farm.url, farm.adminToken).health.query()).ok, true);
});

test("a subscriber that never reads is cut off before the farm buffers more than the limit for it", { timeout: 180_000 }, async (t) => {
  const { farm, lines, admin } = await farmWithLog(t, makeFixtureRepo(t), { limits: { maxBufferedBytesPerSocket: 1024 * 1024 } });
  const c = httpClientFor(farm.url, admin);
  // ~20 MB of journal: far more than the kernel's socket buffers hold, so the farm must buffer the rest.
  const description = "x".repeat(50_000);
  for (let i = 0; i < 400; i++) await c.tasks.create.mutate({ title: `big ${i}`, description, units: [{ id: "u1", goal: "g" }] });
  const editor = await tokenFor(farm.url, admin, "editor", "slow-reader");
  const s = await rawSocket(farm.url);
  s.send(JSON.stringify({ method: "connectionParams", data: { token: editor } }));
  s.send(JSON.stringify({ id: 1, jsonrpc: "2.0", method: "subscription", params: { path: "events.stream", input: {} } }));
  // Never read again.
  (s as unknown as { _socket: { pause(): void } })._socket.pause();
  const rssBefore = process.memoryUsage().rss;
  const cut = await waitFor(() => lines.find((l) => /cut off/.test(String(l.msg))), "the farm to cut the slow subscriber off", 60_000);
  assert.ok(Number(cut.bufferedBytes) > 1024 * 1024, `cut off at ${String(cut.bufferedBytes)} buffered bytes`);
  assert.ok(Number(cut.bufferedBytes) < 4 * 1024 * 1024, `it buffered ${String(cut.bufferedBytes)} bytes before the cut (limit 1 MiB)`);
  t.diagnostic(
    `cut off at ${String(cut.bufferedBytes)} bytes; rss grew ${Math.round((process.memoryUsage().rss - rssBefore) / 1e6)} MB meanwhile`,
  );
  (s as unknown as { _socket: { resume(): void } })._socket.resume();
  const closed = await Promise.race([s.closed, sleep(10_000).then(() => null)]);
  assert.ok(closed, "the slow socket is closed");
  assert.equal((await c.health.query()).ok, true, "the farm is alive");
  assert.equal((await c.tasks.list.query()).length, 400);
});

test("a /git flood over the cap gets 503 with Retry-After; the farm stays alive and serves fetches after", async (t) => {
  const repo = makeFixtureRepo(t);
  const { farm, admin } = await farmWithLog(t, repo, { limits: { maxGitProcesses: 2, maxGitQueue: 4, gitQueueWaitMs: 2_000 } });
  const worker = await tokenFor(farm.url, admin, "worker", "flood");
  const port = new URL(farm.url).port;
  // Requests that never finish their body hold a git process each: the slow-loris way to fill the slots.
  const hanging: http.ClientRequest[] = [];
  for (let i = 0; i < 2; i++) {
    const req = http.request({
      host: "127.0.0.1",
      port,
      path: "/git/git-upload-pack",
      method: "POST",
      headers: { authorization: `Bearer ${worker}`, "content-type": "application/x-git-upload-pack-request" },
    });
    req.on("error", () => undefined);
    req.write("0032want ");
    hanging.push(req);
  }
  t.after(() => hanging.forEach((r) => r.destroy()));
  await sleep(300);
  const flood = await Promise.all(
    Array.from({ length: 30 }, () =>
      fetch(`${farm.url}/git/info/refs?service=git-upload-pack`, { headers: { authorization: `Bearer ${worker}` } }).then(async (r) => ({
        status: r.status,
        retryAfter: r.headers.get("retry-after"),
        body: await r.text(),
      })),
    ),
  );
  const refused = flood.filter((r) => r.status === 503);
  t.diagnostic(`statuses: ${JSON.stringify(flood.map((r) => r.status))}`);
  assert.ok(refused.length >= 26, `${refused.length} of 30 refused with 503 (2 slots held, 4 may wait)`);
  assert.ok(
    refused.every((r) => r.retryAfter && Number(r.retryAfter) >= 1),
    "each 503 says when to retry",
  );
  assert.match(refused[0]!.body, /busy/);
  // The slots free up when the slow clients go away; the farm serves again.
  hanging.forEach((r) => r.destroy());
  const after = await waitFor(
    async () => {
      const r = await fetch(`${farm.url}/git/info/refs?service=git-upload-pack`, { headers: { authorization: `Bearer ${worker}` } });
      return r.status === 200 ? r.text() : null;
    },
    "a fetch to be served again",
    10_000,
  );
  assert.match(after, /refs\/remotes\/origin\/main/, "the farm's view of the origin is served");
  assert.equal((await httpClientFor(farm.url, admin).health.query()).ok, true);
});
