import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { FarmTrustError, wsUrlOf } from "@optimus/farm-server";
import { trustedWebSocket } from "@optimus/farm-server/dist/client/trusted-transport.js";
import { farmUnreachableCause } from "@optimus/farm-server/dist/worker/reachability.js";
import { serviceSpecFrom } from "@optimus/farm-server/dist/cli/service-commands.js";
import { SystemdManager } from "@optimus/farm-server/dist/service/systemd-manager.js";
import { startStandbyServer } from "@optimus/farm-server/dist/api/standby-server.js";
import { FarmEndpoints } from "@optimus/farm-server/dist/client/farm-endpoints.js";
import { loadFarmTls } from "@optimus/farm-server/dist/tls/farm-tls.js";
import { makeSelfSigned } from "@optimus/farm-server/dist/tls/self-signed.js";
import { SecretResolver } from "@optimus/farm-server/dist/secrets/index.js";

// The farm's TLS port and its clients' trust, in process: a standby over TLS, and a worker's
// wss:// connection meeting another key (it never connects, and its reachability line says why).

async function pairIn(dir: string, name: string) {
  const p = await makeSelfSigned(["localhost", "127.0.0.1"]);
  const cert = join(dir, `${name}.crt`);
  const key = join(dir, `${name}.key`);
  writeFileSync(cert, p.cert, { mode: 0o600 });
  writeFileSync(key, p.key, { mode: 0o600 });
  return { ...p, files: { cert, key } };
}

test("a standby of a TLS farm answers over TLS, and plain HTTP on its port is told to use https", async (t) => {
  const dir = mkdtempSync(join(tmpdir(), "optimus-tls-unit-"));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const pair = await pairIn(dir, "farm");
  const tls = await loadFarmTls(pair.files, new SecretResolver({ vaults: {} }));
  assert.equal(tls.pin, pair.pin);
  const standby = await startStandbyServer({ host: "127.0.0.1", port: 0, version: "test", leader: () => null, tls });
  t.after(() => standby.close());
  assert.match(standby.url, /^https:\/\/127\.0\.0\.1:\d+$/);

  const pinned = new FarmEndpoints(standby.url, { pins: [pair.pin] });
  const health = (await (await pinned.fetch(`${standby.url}/healthz`)).json()) as { role: string };
  assert.equal(health.role, "standby");

  const plain = await fetch(`${standby.url.replace("https", "http")}/healthz`);
  assert.equal(plain.status, 400);
  assert.equal(plain.headers.get("x-optimus-tls-only"), standby.url);
  assert.equal(await plain.text(), `this farm serves HTTPS only: use ${standby.url}\n`);
});

test("a worker pinned to one key opens no wss:// socket to a farm of another, and its reachability line says why", async (t) => {
  const dir = mkdtempSync(join(tmpdir(), "optimus-tls-unit-"));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const real = await pairIn(dir, "real");
  const other = await pairIn(dir, "other");
  const tls = await loadFarmTls(other.files, new SecretResolver({ vaults: {} }));
  const server = await startStandbyServer({ host: "127.0.0.1", port: 0, version: "test", leader: () => null, tls });
  t.after(() => server.close());
  const farm = new FarmEndpoints(server.url, { pins: [real.pin], pinFrom: "--farm-pin" });
  const expected = `the farm at ${server.url} presented a certificate whose pin is ${other.pin} but --farm-pin expects ${real.pin}`;

  const WebSocket = trustedWebSocket(farm.trust);
  const socket = new WebSocket(wsUrlOf(server.url), { headers: { authorization: "Bearer opt_abcdef123456_secret" } });
  const err = await new Promise<Error>((resolve) => socket.once("error", resolve));
  assert.ok(err instanceof FarmTrustError, String(err));
  assert.equal(err.message, expected);

  // What a worker prints every few seconds while it cannot connect (FarmReachability's cause).
  assert.equal(await farmUnreachableCause(server.url, 2_000, farm.fetch), expected);
});

test("a worker service installed for an https:// farm carries its pin and CA file, and a malformed pin is refused before anything is written", async (t) => {
  const dir = mkdtempSync(join(tmpdir(), "optimus-tls-unit-"));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const pair = await pairIn(dir, "farm");
  const tokenFile = join(dir, "worker.token");
  writeFileSync(tokenFile, "opt_abcdef123456_" + "s".repeat(40) + "\n", { mode: 0o600 });
  const o = {
    role: "codegen",
    model: "http://127.0.0.1:9/v1",
    farm: "https://farm.lan:7420",
    tokenFile,
    farmPin: pair.pin,
    farmCa: pair.files.cert,
  };
  const spec = serviceSpecFrom("worker", o, new SystemdManager(dir));
  const args = spec.programArguments.slice(2).join(" ");
  assert.ok(
    args.startsWith(`--farm https://farm.lan:7420 --farm-pin ${pair.pin} --farm-ca ${pair.files.cert} --token-file ${tokenFile} worker `),
    args,
  );
  assert.throws(
    () => serviceSpecFrom("worker", { ...o, farmPin: "sha256/nope" }, new SystemdManager(dir)),
    /--farm-pin: 'sha256\/nope' is not a pin/,
  );
});
