import assert from "node:assert/strict";
import { randomBytes, randomUUID } from "node:crypto";
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { createServer, type IncomingHttpHeaders, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { after, before, test } from "node:test";
import { inspect } from "node:util";
import {
  FileProvider,
  Redactor,
  SecretError,
  SecretResolver,
  isSecretRef,
  parseSecretRef,
  secretPatterns,
  type SecretsConfig,
} from "@optimus/farm-server/dist/secrets/index.js";
import { ROOT } from "../helpers/paths.js";

// Canaries: values that must never appear in an error message or in redacted output. One has no
// known key shape (only the held-value redactor and "first line only" can stop it), one looks like
// an Anthropic key, one has characters that JSON and URL encoding change.
const CANARY = `c4n4ry-${randomBytes(16).toString("hex")}`;
const ANT_CANARY = `sk-ant-api03-${randomBytes(30).toString("base64url")}`;
const ODD_CANARY = `p@ss"w0rd/\\ +&=?é-${randomBytes(6).toString("hex")}`;
const CANARIES = [CANARY, ANT_CANARY, ODD_CANARY];

const BIN = join(ROOT, "test", "fixtures", "secrets", "bin");
const VAULT_TOKEN = `hvs.${randomBytes(18).toString("base64url")}`;
let tmp: string;
let home: string;
let filesDir: string;
let vault: VaultStandin;
/** what the providers see as their environment: the stand-ins first on PATH, secrets they must not pass on */
let env: NodeJS.ProcessEnv;

/** Every SecretError the tests provoke, checked for canaries one by one and all together at the end. */
const seen: SecretError[] = [];

async function rejects(p: Promise<unknown>, message: RegExp): Promise<SecretError> {
  const err = await p.then(
    () => assert.fail(`expected a rejection matching ${message}`),
    (e: unknown) => e,
  );
  assert.ok(err instanceof SecretError, `a SecretError, got ${inspect(err)}`);
  assert.match(err.message, message);
  assertNoCanary(err);
  seen.push(err);
  return err;
}

function assertNoCanary(err: Error): void {
  for (const text of [err.message, String(err.stack), inspect(err, { depth: 5 }), JSON.stringify(err)]) {
    for (const c of CANARIES) assert.ok(!text.includes(c), `a canary leaked into: ${text}`);
  }
}

before(async () => {
  tmp = mkdtempSync(join(tmpdir(), "optimus-secrets-"));
  home = join(tmp, "home");
  filesDir = join(tmp, "files");
  mkdirSync(home);
  mkdirSync(filesDir);
  // Git keeps the stand-ins' mode, but a checkout through other tools may not.
  for (const f of ["op", "security"]) chmodSync(join(BIN, f), 0o755);
  writeFileSync(
    join(home, "op-items.json"),
    JSON.stringify({
      items: {
        "prod/anthropic/key": ANT_CANARY,
        "prod/other/key": CANARY,
        "prod/empty/key": "",
        "Shared Vault/My Item/api key": "spaced-value-123",
        "prod/slow/key": "slow-value-123",
      },
      accounts: { "team.1password.com": { "prod/anthropic/key": "team-account-value" } },
      fail: {
        // A tool that echoes a held value on its first line and another secret below it.
        "prod/leaky/key": {
          stderr: `[ERROR] 2024/05/01 10:00:00 token ${ANT_CANARY} was rejected for ${CANARY}\nrequest dump: ${CANARY} ${ODD_CANARY}\n`,
        },
        // A tool that printed the value and then failed: stdout must never reach a message.
        "prod/half/key": { stdout: `${CANARY}\n`, stderr: "[ERROR] 2024/05/01 10:00:00 something odd happened\n", code: 3 },
        "prod/signedout/key": {
          stderr: "[ERROR] 2024/05/01 10:00:00 You are not currently signed in. Please run `op signin --help` for instructions\n",
        },
      },
      sleep: { "prod/slow/key": 5_000 },
    }),
  );
  writeFileSync(
    join(home, "keychain.json"),
    JSON.stringify({ "optimus-anthropic|api-key": CANARY, "shared-service|deploy": "shared-value-123" }),
  );
  vault = await startVaultStandin({
    token: VAULT_TOKEN,
    items: { anthropic: { key: ANT_CANARY, other: CANARY }, odd: { key: ODD_CANARY, count: 3 }, empty: { key: "" } },
  });
  env = {
    PATH: `${BIN}:${dirname(process.execPath)}:${process.env.PATH ?? "/usr/bin:/bin"}`,
    HOME: home,
    USER: "tester",
    LANG: "C.UTF-8",
    OP_SERVICE_ACCOUNT_TOKEN: "ops_standin-token-not-a-real-one",
    VAULT_TOKEN,
    OTHER_VAULT_TOKEN: "hvs.wrong-token-for-the-standin",
    ANTHROPIC_API_KEY: CANARY,
    AWS_SECRET_ACCESS_KEY: CANARY,
    OPTIMUS_SECRET_ANTHROPIC_PROD_API_KEY: ANT_CANARY,
    DEV_ANTHROPIC_KEY: "custom-prefix-value",
    OPTIMUS_SECRET_EMPTY_KEY: "",
  };
});

after(async () => {
  await vault?.close();
  if (tmp) rmSync(tmp, { recursive: true, force: true });
});

const config = (): SecretsConfig => ({
  vaults: {
    prod: { provider: "1password" },
    team: { provider: "1password", vault: "prod", account: "team.1password.com" },
    kv: { provider: "hashicorp-vault", address: vault.url },
    kvns: { provider: "hashicorp-vault", address: `${vault.url}/`, namespace: "team-a", tokenEnv: "VAULT_TOKEN" },
    kvbad: { provider: "hashicorp-vault", address: vault.url, tokenEnv: "OTHER_VAULT_TOKEN" },
    kvnotoken: { provider: "hashicorp-vault", address: vault.url, tokenEnv: "NO_SUCH_TOKEN_VAR" },
    kvremote: { provider: "hashicorp-vault", address: "http://vault.example.com:8200" },
    mac: { provider: "keychain" },
    macsvc: { provider: "keychain", service: "shared-service" },
    dev: { provider: "env" },
    devp: { provider: "env", prefix: "DEV_" },
    files: { provider: "file", dir: filesDir },
  },
});
const resolver = (opts: { timeoutMs?: number; redactor?: Redactor } = {}) => new SecretResolver(config(), { env, ...opts });
const lastCall = (tool: "op" | "security"): { argv: string[]; env: string[] } => {
  const lines = readFileSync(join(home, `${tool}-calls.jsonl`), "utf8")
    .trim()
    .split("\n");
  return JSON.parse(lines[lines.length - 1]!) as { argv: string[]; env: string[] };
};
/** Variables a shell adds on its own (the stand-ins are sh wrappers); not from the provider. */
const SHELL_ADDED = new Set(["PWD", "OLDPWD", "SHLVL", "_"]);

// ---- references ----

test("parseSecretRef splits a reference; isSecretRef spots anything written as one", () => {
  assert.deepEqual(parseSecretRef("secrets-manager://prod/anthropic/key"), { vault: "prod", item: "anthropic", field: "key" });
  assert.deepEqual(parseSecretRef("secrets-manager://Shared Vault/My.Item_2/api-key"), {
    vault: "Shared Vault",
    item: "My.Item_2",
    field: "api-key",
  });
  assert.equal(isSecretRef("secrets-manager://a/b/c"), true);
  assert.equal(isSecretRef("secrets-manager://broken"), true, "malformed, but a reference: parse reports it");
  assert.equal(isSecretRef(ANT_CANARY), false);
  assert.equal(isSecretRef(undefined), false);
});

test("parseSecretRef refuses malformed references, naming the problem and the reference", () => {
  const cases: Array<[string, RegExp]> = [
    ["op://prod/anthropic/key", /must start with secrets-manager:\/\//],
    ["secrets-manager://prod/anthropic", /found 2 part/],
    ["secrets-manager://prod/team/anthropic/key", /found 4 part/],
    ["secrets-manager://prod//key", /the item is empty/],
    ["secrets-manager://prod/../key", /the item cannot be '\.\.'/],
    ["secrets-manager://prod/./key", /the item cannot be '\.'/],
    ["secrets-manager://prod/anthropic/ke\ny", /the field holds a control character/],
    ["secrets-manager://prod/anthropic/key%2F..", /the field may hold only/],
    ["secrets-manager://prod/anthropic/key?x=1", /the field may hold only/],
    ["secrets-manager://prod/anthropic /key", /the item starts or ends with a space/],
    [`secrets-manager://prod/${"a".repeat(201)}/key`, /the item is longer than 200/],
  ];
  for (const [ref, why] of cases) {
    const err = (() => {
      try {
        parseSecretRef(ref);
      } catch (e) {
        return e;
      }
      return assert.fail(`accepted ${JSON.stringify(ref)}`);
    })();
    assert.ok(err instanceof SecretError);
    assert.match(err.message, why);
    assert.match(err.message, /^invalid secret reference /);
    if (!ref.includes("\n") && ref.length < 300) assert.ok(err.message.includes(ref), `names the reference: ${err.message}`);
    seen.push(err);
  }
  assert.ok(parseSecretRef(`secrets-manager://prod/${"a".repeat(200)}/key`));
  // A key pasted where the reference belongs is not echoed back.
  const pasted = (() => {
    try {
      parseSecretRef(ANT_CANARY);
    } catch (e) {
      return e as SecretError;
    }
    return assert.fail("accepted a key as a reference");
  })();
  assertNoCanary(pasted);
  assert.match(pasted.message, /sk-ant-\[redacted\]/);
});

// ---- redactor ----

test("the redactor removes a held value raw, JSON-escaped, URL-encoded and base64-encoded", () => {
  const r = new Redactor();
  const release = [r.add(CANARY), r.add(ANT_CANARY), r.add(ODD_CANARY)];
  for (const v of CANARIES) {
    const shapes = [
      `raw: ${v} end`,
      JSON.stringify({ headers: { "x-api-key": v }, nested: JSON.stringify({ key: v }) }),
      `https://api.example.com/v1?key=${encodeURIComponent(v)}&x=1`,
      `form: ${new URLSearchParams({ key: v }).toString()}`,
      `Authorization: Bearer ${Buffer.from(v).toString("base64")}`,
      `url-safe ${Buffer.from(v).toString("base64url")}`,
    ];
    for (const s of shapes) {
      const out = r.redact(s);
      assert.ok(out.includes("[redacted]"), `redacted: ${out}`);
      for (const form of [v, JSON.stringify(v).slice(1, -1), encodeURIComponent(v), Buffer.from(v).toString("base64")])
        assert.ok(!out.includes(form), `no trace of the value in ${out}`);
    }
    // Inside a longer base64 text, at each of the three byte alignments (Basic auth is user:key).
    for (const user of ["u", "us", "usr", "user:"]) {
      const out = r.redact(`Authorization: Basic ${Buffer.from(`${user}:${v}:tail`).toString("base64")}`);
      assert.ok(out.includes("[redacted]"), `redacted at alignment ${user.length}: ${out}`);
      const rest = out.split("Basic ")[1]!.split("[redacted]");
      for (const part of rest) assert.ok(!Buffer.from(part, "base64").toString("latin1").includes(v.slice(0, 6)));
    }
  }
  for (const f of release) f();
  assert.equal(r.size, 0);
  assert.equal(r.redact(`raw: ${CANARY}`), `raw: ${CANARY}`, "released values are no longer redacted");
});

test("the redactor refuses short values and counts holders of the same value", () => {
  const r = new Redactor();
  assert.throws(
    () => r.add("12345"),
    (e: Error) => e instanceof RangeError && !e.message.includes("12345"),
  );
  const a = r.add(CANARY);
  const b = r.add(CANARY);
  a();
  a(); // a second release of the same holder changes nothing
  assert.equal(r.redact(CANARY), "[redacted]", "still held by b");
  b();
  assert.equal(r.redact(CANARY), CANARY);
});

test("overlapping held values are both removed; redactDeep copies and redacts structures", () => {
  const r = new Redactor();
  r.add("alpha-secret-one");
  r.add("one-and-beta-secret");
  assert.equal(r.redact("x alpha-secret-one-and-beta-secret y"), "x [redacted] y");
  r.add(CANARY);
  const cyclic: Record<string, unknown> = { note: `key ${CANARY}`, list: [CANARY, 1, null, { [CANARY]: true }] };
  cyclic.self = cyclic;
  const err = Object.assign(new Error(`failed with ${CANARY}`), { body: { key: CANARY } });
  const out = r.redactDeep({ cyclic, err, when: 5 });
  assert.equal(out.cyclic.note, "key [redacted]");
  assert.deepEqual(out.cyclic.list, ["[redacted]", 1, null, { "[redacted]": true }]);
  assert.equal(out.cyclic.self, out.cyclic, "cycles are kept, not followed forever");
  assert.ok(out.err instanceof Error);
  assert.equal(out.err.message, "failed with [redacted]");
  assert.ok(!String(out.err.stack).includes(CANARY));
  assert.deepEqual((out.err as unknown as { body: unknown }).body, { key: "[redacted]" });
  assert.equal(out.when, 5);
  assert.equal(cyclic.note, `key ${CANARY}`, "the input is not modified");
  assert.equal(err.message, `failed with ${CANARY}`);
  assert.ok(!inspect(out, { depth: 6 }).includes(CANARY));
});

test("redactKnownShapes masks key-shaped strings nobody registered", () => {
  const openai = `sk-${randomBytes(24).toString("hex")}`;
  const text = `anthropic=${ANT_CANARY} openai=${openai} proj=sk-proj-${"x".repeat(30)} auth: Bearer abcdefghijklmnopqrstuvwxyz0123 vault=${VAULT_TOKEN}`;
  const out = secretPatterns.redactKnownShapes(text);
  for (const s of [ANT_CANARY, openai, "x".repeat(30), "abcdefghijklmnopqrstuvwxyz0123", VAULT_TOKEN])
    assert.ok(!out.includes(s), `masked ${s}: ${out}`);
  assert.match(
    out,
    /anthropic=sk-ant-\[redacted\] openai=sk-\[redacted\] proj=sk-\[redacted\] auth: Bearer \[redacted\] vault=hvs\.\[redacted\]/,
  );
  const ordinary = "task-0123456789abcdefghijklmn, Bearer short, sk-short, desk-abcdefghijklmnopqrstuvwxyz";
  assert.equal(secretPatterns.redactKnownShapes(ordinary), ordinary);
});

// ---- HashiCorp Vault (a loopback server speaking the KV v2 read API) ----

test("vault: reads a field of a KV v2 item with the token from the environment", async () => {
  const s = resolver();
  assert.equal(await s.resolve("secrets-manager://kv/anthropic/key"), ANT_CANARY);
  const req = vault.requests.at(-1)!;
  assert.equal(req.url, "/v1/secret/data/anthropic");
  assert.equal(req.headers["x-vault-token"], VAULT_TOKEN);
  assert.equal(req.headers["x-vault-namespace"], undefined);
  assert.equal(await s.resolve("secrets-manager://kvns/odd/key"), ODD_CANARY);
  assert.equal(vault.requests.at(-1)!.headers["x-vault-namespace"], "team-a");
});

test("vault: 404, 403, a missing field, a missing token, an empty value and plain http to a remote host", async () => {
  const s = resolver();
  const missing = await rejects(s.resolve("secrets-manager://kv/nope/key"), /^cannot read secrets-manager:\/\/kv\/nope\/key: no such item/);
  assert.equal(missing.ref, "secrets-manager://kv/nope/key");
  await rejects(
    s.resolve("secrets-manager://kvbad/anthropic/key"),
    /^cannot read secrets-manager:\/\/kvbad\/anthropic\/key: permission denied.*OTHER_VAULT_TOKEN/,
  );
  assert.equal(vault.requests.at(-1)!.status, 403);
  await rejects(s.resolve("secrets-manager://kv/anthropic/password"), /item has no field password$/);
  await rejects(s.resolve("secrets-manager://kv/odd/count"), /the field count is not a string/);
  await rejects(s.resolve("secrets-manager://kvnotoken/anthropic/key"), /NO_SUCH_TOKEN_VAR is not set/);
  await rejects(s.resolve("secrets-manager://kv/empty/key"), /: the secret is empty$/);
  const before = vault.requests.length;
  await rejects(s.resolve("secrets-manager://kvremote/anthropic/key"), /must use https/);
  assert.equal(vault.requests.length, before, "nothing was sent");
});

test("vault: a server error's first message is masked; a redirect and a hang are refused", async () => {
  const s = resolver({ timeoutMs: 400 });
  await s.withSecret("secrets-manager://kv/anthropic/other", async () => {
    const err = await rejects(
      s.resolve("secrets-manager://kv/boom/key"),
      /Vault answered HTTP 500 \(internal error: token \[redacted\] is sealed\)/,
    );
    assert.ok(!err.message.includes("second"));
  });
  await rejects(s.resolve("secrets-manager://kv/moved/key"), /answered with a redirect \(HTTP 307\)/);
  assert.ok(!vault.requests.some((r) => r.url.startsWith("/elsewhere")), "the redirect was not followed");
  const t0 = Date.now();
  await rejects(s.resolve("secrets-manager://kv/hang/key"), /did not answer within 0\.4 s/);
  assert.ok(Date.now() - t0 < 3_000);
  const ac = new AbortController();
  setTimeout(() => ac.abort(), 50);
  await rejects(resolver().resolve("secrets-manager://kv/hang/key", ac.signal), /the read was cancelled/);
});

// ---- 1Password (stand-in `op` first on PATH) ----

test("1password: `op read` with the reference, the configured vault and account, and a filtered environment", async () => {
  const s = resolver();
  assert.equal(await s.resolve("secrets-manager://prod/anthropic/key"), ANT_CANARY);
  const call = lastCall("op");
  assert.deepEqual(call.argv, ["read", "op://prod/anthropic/key"]);
  const passed = call.env.filter((k) => !SHELL_ADDED.has(k));
  assert.ok(passed.includes("OP_SERVICE_ACCOUNT_TOKEN"), "OP_* reaches op");
  for (const k of passed) assert.ok(["PATH", "HOME", "USER", "LANG"].includes(k) || k.startsWith("OP_"), `op must not see ${k}`);
  assert.ok(!passed.includes("ANTHROPIC_API_KEY") && !passed.includes("VAULT_TOKEN") && !passed.includes("AWS_SECRET_ACCESS_KEY"));

  // "team" maps to 1Password vault "prod" in another account.
  assert.equal(await s.resolve("secrets-manager://team/anthropic/key"), "team-account-value");
  assert.deepEqual(lastCall("op").argv, ["read", "op://prod/anthropic/key", "--account", "team.1password.com"]);
  // Spaces travel as one argument: no shell.
  assert.equal(
    await new SecretResolver({ vaults: { "Shared Vault": { provider: "1password" } } }, { env }).resolve(
      "secrets-manager://Shared Vault/My Item/api key",
    ),
    "spaced-value-123",
  );
});

test("1password: missing items, signed out, a leaky or half-failed op, a slow op, no op at all", async () => {
  const s = resolver({ timeoutMs: 800 });
  await rejects(
    s.resolve("secrets-manager://prod/nothing/key"),
    /^cannot read secrets-manager:\/\/prod\/nothing\/key: no such item or field in 1Password \(op: could not read secret 'op:\/\/prod\/nothing\/key'.*"nothing" isn't an item/,
  );
  await rejects(s.resolve("secrets-manager://prod/anthropic/password"), /no such item or field in 1Password.*cannot be found/);
  await rejects(s.resolve("secrets-manager://prod/signedout/key"), /the 1Password CLI is not signed in/);
  // op echoes the value being held elsewhere on its first line, and other secrets on the next.
  const leaky = await s.withSecret("secrets-manager://prod/other/key", () =>
    rejects(
      s.resolve("secrets-manager://prod/leaky/key"),
      /op exited with code 1 \(op: token sk-ant-\[redacted\] was rejected for \[redacted\]\)$/,
    ),
  );
  assert.ok(!leaky.message.includes("request dump"));
  await rejects(s.resolve("secrets-manager://prod/half/key"), /op exited with code 3 \(op: something odd happened\)$/);
  await rejects(s.resolve("secrets-manager://prod/empty/key"), /the secret is empty/);
  const t0 = Date.now();
  await rejects(s.resolve("secrets-manager://prod/slow/key"), /1Password CLI `op` did not answer within 0\.8 s/);
  assert.ok(Date.now() - t0 < 4_000, "killed at the time limit, not after the tool's 5 s");
  const ac = new AbortController();
  setTimeout(() => ac.abort(), 300);
  await rejects(resolver().resolve("secrets-manager://prod/slow/key", ac.signal), /the read was cancelled/);
  const noOp = new SecretResolver({ vaults: { prod: { provider: "1password" } } }, { env: { ...env, PATH: "/nonexistent" } });
  await rejects(
    noOp.resolve("secrets-manager://prod/anthropic/key"),
    /^cannot read secrets-manager:\/\/prod\/anthropic\/key: 1Password CLI `op` is not installed \(not found on PATH\)$/,
  );
  const badPath = new SecretResolver({ vaults: { prod: { provider: "1password", opPath: join(tmp, "no-op") } } }, { env });
  await rejects(badPath.resolve("secrets-manager://prod/anthropic/key"), /`op` is not installed \(not found at .*no-op\)/);
});

// ---- keychain (stand-in `security` first on PATH) ----

test("keychain: `security find-generic-password -s -a -w`, exit 44 is not found", async () => {
  const s = resolver();
  assert.equal(await s.resolve("secrets-manager://mac/optimus-anthropic/api-key"), CANARY);
  const call = lastCall("security");
  assert.deepEqual(call.argv, ["find-generic-password", "-s", "optimus-anthropic", "-a", "api-key", "-w"]);
  for (const k of call.env.filter((x) => !SHELL_ADDED.has(x)))
    assert.ok(["PATH", "HOME", "USER", "LANG"].includes(k), `security must not see ${k}`);
  assert.equal(await s.resolve("secrets-manager://macsvc/whatever/deploy"), "shared-value-123");
  assert.deepEqual(lastCall("security").argv, ["find-generic-password", "-s", "shared-service", "-a", "deploy", "-w"]);
  await rejects(
    s.resolve("secrets-manager://mac/optimus-anthropic/nobody"),
    /^cannot read secrets-manager:\/\/mac\/optimus-anthropic\/nobody: no keychain item with service 'optimus-anthropic' and account 'nobody'$/,
  );
});

// ---- env and file providers ----

test("env: OPTIMUS_SECRET_<ITEM>_<FIELD>, or a configured prefix", async () => {
  const s = resolver();
  assert.equal(await s.resolve("secrets-manager://dev/anthropic-prod/api key"), ANT_CANARY);
  assert.equal(await s.resolve("secrets-manager://devp/anthropic/key"), "custom-prefix-value");
  await rejects(
    s.resolve("secrets-manager://dev/anthropic/nothing"),
    /the environment variable OPTIMUS_SECRET_ANTHROPIC_NOTHING is not set/,
  );
  await rejects(s.resolve("secrets-manager://dev/empty/key"), /the secret is empty/);
});

test("file: dir/item/field, one trailing newline dropped, read anew at each call", async () => {
  mkdirSync(join(filesDir, "anthropic"), { recursive: true });
  const f = join(filesDir, "anthropic", "key");
  writeFileSync(f, `${CANARY}\n\n`, { mode: 0o600 });
  const s = resolver();
  assert.equal(await s.resolve("secrets-manager://files/anthropic/key"), `${CANARY}\n`);
  writeFileSync(f, `${ANT_CANARY}\n`);
  assert.equal(await s.resolve("secrets-manager://files/anthropic/key"), ANT_CANARY, "no caching: a rotated key is seen at once");
  // A link that stays inside the folder is fine.
  symlinkSync(f, join(filesDir, "anthropic", "alias"));
  assert.equal(await s.resolve("secrets-manager://files/anthropic/alias"), ANT_CANARY);
});

test("file: traversal, links out of the folder and files others can read are refused", async () => {
  const s = resolver();
  const provider = new FileProvider({ provider: "file", dir: filesDir });
  const outside = join(tmp, "outside");
  mkdirSync(outside, { recursive: true });
  writeFileSync(join(outside, "key"), CANARY, { mode: 0o600 });
  // The reference parser refuses '..'; the provider refuses it again when called directly.
  await rejects(s.resolve("secrets-manager://files/../outside"), /invalid secret reference.*cannot be '\.\.'/);
  await rejects(provider.read({ vault: "files", item: "..", field: "outside" }), /leaves the secrets folder/);
  await rejects(provider.read({ vault: "files", item: "../outside", field: "key" }), /leaves the secrets folder/);
  symlinkSync(outside, join(filesDir, "linkdir"));
  await rejects(s.resolve("secrets-manager://files/linkdir/key"), /symbolic link that leads out of the secrets folder/);
  mkdirSync(join(filesDir, "links"));
  symlinkSync(join(outside, "key"), join(filesDir, "links", "key"));
  await rejects(s.resolve("secrets-manager://files/links/key"), /symbolic link that leads out of the secrets folder/);
  mkdirSync(join(filesDir, "shared"));
  writeFileSync(join(filesDir, "shared", "key"), CANARY, { mode: 0o640 });
  chmodSync(join(filesDir, "shared", "key"), 0o640); // the umask may have narrowed it
  await rejects(s.resolve("secrets-manager://files/shared/key"), /can be read or written by others \(mode 0640\); run chmod 600/);
  await rejects(
    s.resolve("secrets-manager://files/nothing/key"),
    /^cannot read secrets-manager:\/\/files\/nothing\/key: no file nothing\/key in the secrets folder/,
  );
  await rejects(s.resolve("secrets-manager://files/anthropic"), /found 2 part/);
  mkdirSync(join(filesDir, "adir", "key"), { recursive: true });
  chmodSync(join(filesDir, "adir", "key"), 0o700);
  await rejects(s.resolve("secrets-manager://files/adir/key"), /is not a regular file/);
});

// ---- the resolver ----

test("resolver: an unknown vault lists the configured ones; bad settings fail at construction", async () => {
  const err = await rejects(
    resolver().resolve("secrets-manager://staging/anthropic/key"),
    /no vault named 'staging' is configured \(configured: dev, devp, files, kv, kvbad, kvnotoken, kvns, kvremote, mac, macsvc, prod, team\)/,
  );
  assert.equal(err.ref, "secrets-manager://staging/anthropic/key");
  await rejects(new SecretResolver({ vaults: {} }).resolve("secrets-manager://prod/a/b"), /no vaults are configured/);
  assert.throws(() => new SecretResolver({ vaults: { x: { provider: "lastpass" } } }), /secrets\.vaults\.x\.provider must be one of/);
  assert.throws(
    () => new SecretResolver({ vaults: { x: { provider: "hashicorp-vault", adress: "https://v" } } }),
    /unknown setting 'adress'/,
  );
  assert.throws(() => new SecretResolver({ vaults: { x: { provider: "file" } } }), /secrets\.vaults\.x\.dir is required/);
});

test("withSecret holds the value in the redactor while fn runs, for each concurrent holder, and releases it on failure", async () => {
  const redactor = new Redactor();
  const s = resolver({ redactor });
  const ref = "secrets-manager://kv/anthropic/other";
  let release!: () => void;
  const gate = new Promise<void>((r) => (release = r));
  const first = s.withSecret(ref, async (v) => {
    assert.equal(v, CANARY);
    await gate;
    return redactor.redact(`log: ${v}`);
  });
  const second = await s.withSecret(ref, async (v) => redactor.redact(`log: ${v}`));
  assert.equal(second, "log: [redacted]");
  assert.equal(redactor.redact(CANARY), "[redacted]", "the first holder still holds it");
  release();
  assert.equal(await first, "log: [redacted]");
  assert.equal(redactor.size, 0);
  assert.equal(redactor.redact(CANARY), CANARY);
  await assert.rejects(
    s.withSecret(ref, async () => {
      throw new Error("the call failed");
    }),
    /the call failed/,
  );
  assert.equal(redactor.size, 0, "released after a failure too");
  const short = new SecretResolver({ vaults: { d: { provider: "env" } } }, { env: { OPTIMUS_SECRET_A_B: "12345" } });
  assert.equal(await short.resolve("secrets-manager://d/a/b"), "12345");
  await rejects(
    short.withSecret("secrets-manager://d/a/b", async () => "never"),
    /shorter than 6 characters/,
  );
});

test("no error message above holds a secret value, and each names its reference", () => {
  assert.ok(seen.length >= 40, `collected ${seen.length} errors`);
  for (const err of seen) {
    assertNoCanary(err);
    assert.ok(err.message.includes(err.ref), `names ${err.ref}: ${err.message}`);
    assert.ok(!err.message.includes(VAULT_TOKEN) && !err.message.includes("ops_standin"), `no provider credential: ${err.message}`);
  }
});

// ---- a Vault stand-in: the KV v2 read API over loopback HTTP ----

interface VaultStandin {
  url: string;
  requests: Array<{ url: string; headers: IncomingHttpHeaders; status: number }>;
  close(): Promise<void>;
}

async function startVaultStandin(o: { token: string; items: Record<string, Record<string, unknown>> }): Promise<VaultStandin> {
  const requests: VaultStandin["requests"] = [];
  const server: Server = createServer((req, res) => {
    const send = (status: number, body: unknown, headers: Record<string, string> = {}) => {
      requests.push({ url: req.url ?? "", headers: req.headers, status });
      res.writeHead(status, { "content-type": "application/json", ...headers });
      res.end(JSON.stringify(body));
    };
    const m = /^\/v1\/secret\/data\/([^/?]+)$/.exec(req.url ?? "");
    if (req.method !== "GET" || !m) return send(404, { errors: [] });
    // Vault checks the token before it looks at the path.
    if (req.headers["x-vault-token"] !== o.token) return send(403, { errors: ["permission denied"] });
    const item = decodeURIComponent(m[1]!);
    if (item === "hang") return requests.push({ url: req.url ?? "", headers: req.headers, status: 0 }); // never answers
    if (item === "boom") return send(500, { errors: [`internal error: token ${CANARY} is sealed\nsecond line ${ANT_CANARY}`, "second"] });
    if (item === "moved")
      return send(307, {}, { location: `http://127.0.0.1:${(server.address() as AddressInfo).port}/elsewhere/v1/secret/data/anthropic` });
    const data = o.items[item];
    if (!data) return send(404, { errors: [] });
    send(200, {
      request_id: randomUUID(),
      lease_id: "",
      renewable: false,
      lease_duration: 0,
      data: {
        data,
        metadata: { created_time: "2024-05-01T10:00:00.000000Z", custom_metadata: null, deletion_time: "", destroyed: false, version: 1 },
      },
      wrap_info: null,
      warnings: null,
      auth: null,
    });
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    requests,
    close: () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}
