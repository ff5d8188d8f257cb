// Token expiry in both token stores, on real SQLite and PostgreSQL: an upgraded farm's worker tokens
// get a day from the upgrade (none dies at once, none lives for ever), and a token the farm holds
// itself (its in-process workers') is renewed at a start even after lapsing while the farm was stopped.
import assert from "node:assert/strict";
import { createHash, randomBytes } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import Database from "better-sqlite3";
import { migratePg, openPgPool, PG_MIGRATIONS, PgTokenStore, SqliteTokenStore, type TokenStore } from "@optimus/farm-server";
import { freshSchema, pgQuery, TEST_PG_URL } from "../helpers/postgres.js";
import { waitFor } from "../helpers/wait.js";

const DAY_MS = 86_400_000;

/** A token as a store before expiry existed kept it: its presented form and the row's values. */
function oldToken(role: string, name: string) {
  const id = randomBytes(6).toString("hex");
  const secret = randomBytes(32).toString("base64url");
  return {
    id,
    name,
    role,
    hash: createHash("sha256").update(secret).digest(),
    token: `opt_${id}_${secret}`,
    createdAt: Date.now() - 30 * DAY_MS,
  };
}

/** What both stores must do with a worker token whose ttl ran out while nobody used it. */
async function lapsedThenRenewed(store: TokenStore): Promise<void> {
  const issued = await store.create("worker", "local-codegen", { ttlMs: 1_000 });
  await waitFor(() => Date.now() > issued.expiresAt! + 50, "the token to lapse");
  assert.equal(store.authenticate(issued.token), null, "a lapsed token is refused");
  assert.equal(store.whyRefused(issued.token)?.kind, "expired");
  const renewed = await store.renewHeld(issued.token);
  assert.equal(renewed?.tokenId, issued.tokenId, "the farm renews a token it holds itself");
  assert.equal(store.authenticate(issued.token)?.name, "local-codegen");
  const listed = (await store.list()).find((x) => x.tokenId === issued.tokenId)!;
  assert.ok(listed.expiresAt! > Date.now());
  await store.revoke(issued.tokenId);
  assert.equal(await store.renewHeld(issued.token), null, "never a revoked one");
  assert.equal(await store.renewHeld(`opt_${issued.tokenId}_${"A".repeat(43)}`), null, "never with a wrong secret");
}

test("SQLite: a token database from before expiry gives its worker tokens a day from the upgrade; lapsed held tokens renew", async (t) => {
  const dir = mkdtempSync(join(tmpdir(), "optimus-tokens-"));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, "tokens.db");
  const db = new Database(file);
  // The schema at version 2, as the release before expiry wrote it.
  db.exec(`CREATE TABLE tokens (id TEXT PRIMARY KEY, name TEXT NOT NULL, role TEXT NOT NULL, hash BLOB NOT NULL,
    created_at INTEGER NOT NULL, revoked_at INTEGER, approver INTEGER NOT NULL DEFAULT 0)`);
  db.pragma("user_version = 2");
  const worker = oldToken("worker", "coders");
  const editor = oldToken("editor", "alice");
  for (const x of [worker, editor])
    db.prepare("INSERT INTO tokens (id, name, role, hash, created_at) VALUES (?, ?, ?, ?, ?)").run(
      x.id,
      x.name,
      x.role,
      x.hash,
      x.createdAt,
    );
  db.close();

  const before = Date.now();
  const store = new SqliteTokenStore(file);
  t.after(() => store.close());
  assert.equal(new Database(file, { readonly: true }).pragma("user_version", { simple: true }), 3);
  assert.equal(store.authenticate(worker.token)?.name, "coders", "an old worker token still works after the upgrade");
  const listed = new Map((await store.list()).map((x) => [x.name, x]));
  assert.equal(listed.get("coders")!.ttlMs, DAY_MS);
  assert.ok(listed.get("coders")!.expiresAt! >= before + DAY_MS, "a day counted from the upgrade, not from its creation");
  assert.deepEqual([listed.get("alice")!.expiresAt, listed.get("alice")!.ttlMs], [undefined, undefined], "an editor token does not expire");
  await lapsedThenRenewed(store);
});

test("PostgreSQL: the schema's expiry step gives old worker tokens a day from the upgrade; lapsed held tokens renew", async (t) => {
  const schema = await freshSchema(t, "tok");
  const pool = openPgPool(TEST_PG_URL);
  t.after(() => pool.end());
  await migratePg(pool, schema, PG_MIGRATIONS.slice(0, 1));
  const worker = oldToken("worker", "coders");
  const editor = oldToken("editor", "alice");
  for (const x of [worker, editor])
    await pgQuery(`INSERT INTO "${schema}".tokens (id, name, role, hash, created_at) VALUES ($1, $2, $3, $4, $5)`, [
      x.id,
      x.name,
      x.role,
      x.hash,
      x.createdAt,
    ]);

  const before = Date.now();
  assert.deepEqual(await migratePg(pool, schema), { from: 1, to: 2 });
  const store = await new PgTokenStore(pool, schema).load();
  assert.equal(store.authenticate(worker.token)?.name, "coders", "an old worker token still works after the upgrade");
  const rows = await pgQuery<{ name: string; expires_at: string | null; ttl_ms: string | null }>(
    `SELECT name, expires_at, ttl_ms FROM "${schema}".tokens ORDER BY name`,
  );
  assert.deepEqual(
    rows.map((r) => [r.name, r.ttl_ms === null ? null : Number(r.ttl_ms)]),
    [
      ["alice", null],
      ["coders", DAY_MS],
    ],
  );
  assert.ok(Number(rows[1]!.expires_at) >= before + DAY_MS, "a day counted from the upgrade, not from its creation");
  await lapsedThenRenewed(store);
  // What the farm renewed is in PostgreSQL, where a standby that takes over reads it.
  const reloaded = await new PgTokenStore(pool, schema).load();
  const held = (await reloaded.list()).find((x) => x.name === "local-codegen")!;
  assert.ok(held.expiresAt! > Date.now());
});
