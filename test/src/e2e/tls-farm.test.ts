import assert from "node:assert/strict";
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { createServer as createHttpServer, type IncomingHttpHeaders } from "node:http";
import { createServer as createHttpsServer } from "node:https";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { runCli } from "../helpers/cli.js";
import { makeFixtureRepo } from "../helpers/fixture.js";
import { startOpenAiStandin, type StandinRequest } from "../helpers/openai-standin.js";
import { freePort } from "../helpers/ports.js";
import { makeRepo, writeFarmConfig } from "../helpers/repo.js";
import { startTestFarm } from "../helpers/test-farm.js";

// Nodes joined safely (issue 14, item 4): TLS on the farm's port, a self-signed pair from
// `optimus farm cert`, and clients (CLI, workers, their git) that pin it or take a CA file.

const tmp = (t: { after(fn: () => void): void }, name: string) => {
  const dir = mkdtempSync(join(tmpdir(), name));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
};

/** `optimus farm cert --out <dir>`: the pin it prints on stdout, and the files it wrote. */
async function farmCert(dir: string, cwd: string): Promise<{ pin: string; cert: string; key: string; stderr: string }> {
  const r = await runCli(["farm", "cert", "--out", dir, "--san", "farm.test"], { cwd });
  assert.equal(r.code, 0, r.stderr);
  return { pin: r.stdout.trim(), cert: join(dir, "farm.crt"), key: join(dir, "farm.key"), stderr: r.stderr };
}

const isReview = (r: StandinRequest) => r.messages[0]!.content.startsWith("You review");
const fix = JSON.stringify({
  summary: "add adds",
  edits: [{ kind: "replace", path: "src/add.js", search: "return a - b;", replace: "return a + b;" }],
  done: true,
});

test(
  "a worker joins a TLS farm over wss:// pinning its `farm cert` certificate, fetches over https and finishes a unit; the CLI pins it too",
  { timeout: 240_000 },
  async (t) => {
    const repo = makeFixtureRepo(t);
    const made = await farmCert(tmp(t, "optimus-tls-"), repo);
    assert.match(made.pin, /^sha256\/[A-Za-z0-9+/]{43}=$/);
    for (const f of [made.cert, made.key]) assert.equal(statSync(f).mode & 0o777, 0o600, `${f} is private`);
    assert.match(made.stderr, /DNS:farm\.test/);
    assert.ok(made.stderr.includes(`  tls:\n    cert: ${made.cert}\n    key: ${made.key}\n`), made.stderr);

    const model = await startOpenAiStandin({
      script: Array.from(
        { length: 8 },
        () => (req: StandinRequest) =>
          isReview(req) ? JSON.stringify({ verdict: "approve", risk: "low", summary: "ok", comments: [] }) : fix,
      ),
    });
    t.after(() => model.close());
    const farm = await startTestFarm(t, {
      mode: "process",
      repo,
      config: { tls: { cert: made.cert, key: made.key } },
      farmPin: made.pin,
      args: ["--heartbeat-ms", "1000"],
      workers: { model: model.url },
    });
    assert.match(farm.url, /^https:\/\//);
    assert.ok(farm.log.includes(`Optimus farm listening on ${farm.url} `), farm.log);
    assert.ok(farm.log.includes(`TLS certificate pin ${made.pin})`), farm.log);
    for (const w of farm.workers) assert.match(w.log, new RegExp(`worker connected to ${farm.url} with model`));

    // The CLI with the pin (OPTIMUS_FARM_PIN in farm.env), and with the flag.
    const taskId = (await runCli(["send", "Make add add", "--files", "src/add.js"], { cwd: repo, env: farm.env })).stdout.trim();
    assert.ok(taskId, "the task was created over https");
    const status = await runCli(["status", "--farm", farm.url, "--farm-pin", made.pin, "--json"], {
      cwd: repo,
      env: { OPTIMUS_TOKEN: farm.adminToken },
    });
    assert.equal(status.code, 0, status.stderr);
    assert.ok(status.stdout.includes(taskId));

    // The unit is leased over wss://, its worktree fetched over https:// (git pinning the same key), and merged.
    await farm.untilMerged(taskId, "the task to merge over TLS");
    const pinned = join(farm.workDir, "codegen", "farm-cert.pem");
    assert.ok(existsSync(pinned), "git was given the pinned certificate as its CA");
    assert.equal(readFileSync(pinned, "utf8").trim(), readFileSync(made.cert, "utf8").trim());

    // A plain-http:// client of the TLS port is told what to use, in one line.
    const plain = farm.url.replace("https://", "http://");
    const r = await runCli(["status", "--farm", plain], { cwd: repo, env: { OPTIMUS_TOKEN: farm.adminToken } });
    assert.equal(r.code, 1);
    assert.equal(r.stderr, `optimus: the farm at ${plain} serves HTTPS only: use ${farm.url} (with --farm-pin or --farm-ca)\n`);
  },
);

/** A server that records every request that reaches it: an attacker on the network, or a stand-in farm of another key. */
async function impostor(t: { after(fn: () => unknown): void }, tls?: { cert: string; key: string }) {
  const seen: IncomingHttpHeaders[] = [];
  const handler = (req: { headers: IncomingHttpHeaders; resume(): void }, res: { writeHead(s: number): { end(b: string): void } }) => {
    seen.push(req.headers);
    req.resume();
    res.writeHead(200).end('{"ok":true}');
  };
  const server = tls ? createHttpsServer({ cert: readFileSync(tls.cert), key: readFileSync(tls.key) }, handler) : createHttpServer(handler);
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  t.after(() => new Promise<void>((r) => server.close(() => r())));
  return { url: `${tls ? "https" : "http"}://127.0.0.1:${(server.address() as AddressInfo).port}`, seen };
}

test(
  "a certificate other than the pinned one is refused with one line, and no request (no token) ever reaches it",
  { timeout: 120_000 },
  async (t) => {
    const repo = makeRepo(t);
    writeFarmConfig(repo);
    const real = await farmCert(tmp(t, "optimus-tls-real-"), repo);
    const other = await farmCert(tmp(t, "optimus-tls-other-"), repo);
    assert.notEqual(real.pin, other.pin);
    const token = "opt_abcdef123456_" + "s".repeat(40);

    // The attack, first: over plain http:// a host on the path reads the bearer token as it passes.
    const sniffer = await impostor(t);
    await runCli(["status", "--farm", sniffer.url], { cwd: repo, env: { OPTIMUS_TOKEN: token } });
    assert.equal(sniffer.seen[0]?.authorization, `Bearer ${token}`);

    // Over TLS, a host presenting another certificate (its own self-signed pair) gets nothing.
    const evil = await impostor(t, other);
    const cli = (...args: string[]) => runCli(["status", "--farm", evil.url, ...args], { cwd: repo, env: { OPTIMUS_TOKEN: token } });

    const pinned = await cli("--farm-pin", real.pin);
    assert.equal(pinned.code, 1);
    assert.equal(
      pinned.stderr,
      `optimus: the farm at ${evil.url} presented a certificate whose pin is ${other.pin} but --farm-pin expects ${real.pin}\n`,
    );

    const byEnv = await runCli(["status", "--farm", evil.url], { cwd: repo, env: { OPTIMUS_TOKEN: token, OPTIMUS_FARM_PIN: real.pin } });
    assert.equal(
      byEnv.stderr,
      `optimus: the farm at ${evil.url} presented a certificate whose pin is ${other.pin} but OPTIMUS_FARM_PIN expects ${real.pin}\n`,
    );

    // No pin, no CA: not silently accepted either (a self-signed certificate is trusted by nobody's CAs).
    const bare = await cli();
    assert.equal(bare.code, 1);
    assert.match(
      bare.stderr,
      /^optimus: the farm at https:\/\/127\.0\.0\.1:\d+ presented a certificate this machine does not trust \(DEPTH_ZERO_SELF_SIGNED_CERT; pin sha256\/\S+\); if the farm's operator confirms that pin, pass --farm-pin sha256\/\S+ \(or --farm-ca <the farm's certificate file>\)\n$/,
    );
    assert.ok(bare.stderr.includes(`pin ${other.pin})`));

    const ca = await cli("--farm-ca", real.cert);
    assert.equal(ca.code, 1);
    assert.equal(
      ca.stderr,
      `optimus: the farm at ${evil.url} presented a certificate (pin ${other.pin}) that --farm-ca ${real.cert} does not vouch for (DEPTH_ZERO_SELF_SIGNED_CERT)\n`,
    );

    // A worker given the real pin stops at once with the same line, before it opens its model.
    const worker = await runCli(
      [
        "worker",
        "--role",
        "codegen",
        "--model",
        "http://127.0.0.1:9/v1",
        "--farm",
        evil.url,
        "--farm-pin",
        real.pin,
        "--work-dir",
        tmp(t, "optimus-w-"),
      ],
      { cwd: repo, env: { OPTIMUS_TOKEN: token } },
    );
    assert.equal(worker.code, 1);
    assert.equal(
      worker.stderr.trim().split("\n").at(-1),
      `optimus: the farm at ${evil.url} presented a certificate whose pin is ${other.pin} but --farm-pin expects ${real.pin}`,
    );
    assert.equal(evil.seen.length, 0, "no request, so no token, reached the host with the other certificate");

    // The pin's own checks: a malformed pin, and a pin for a plain http:// farm, are usage errors.
    const bad = await runCli(["status", "--farm", evil.url, "--farm-pin", "sha256/short"], { cwd: repo, env: { OPTIMUS_TOKEN: token } });
    assert.equal(bad.code, 2);
    assert.equal(
      bad.stderr,
      "optimus: --farm-pin: 'sha256/short' is not a pin; expected sha256/ and 44 base64 characters, as `optimus farm cert` prints\n",
    );
    const http = await runCli(["status", "--farm", sniffer.url, "--farm-pin", real.pin], { cwd: repo, env: { OPTIMUS_TOKEN: token } });
    assert.equal(http.code, 2);
    assert.equal(
      http.stderr,
      `optimus: --farm-pin is for a farm served over TLS, but ${sniffer.url} is plain http://; use https:// (the farm needs \`tls\` in its config)\n`,
    );
  },
);

test(
  "a farm whose certificate or key is missing or mismatched does not start, and says so in one line",
  { timeout: 120_000 },
  async (t) => {
    const repo = makeRepo(t);
    writeFarmConfig(repo);
    const a = await farmCert(tmp(t, "optimus-tls-a-"), repo);
    const b = await farmCert(tmp(t, "optimus-tls-b-"), repo);
    const dir = tmp(t, "optimus-tls-config-");
    const up = async (tls: { cert: string; key: string }) => {
      const file = join(dir, "config.yaml");
      writeFileSync(file, JSON.stringify({ tls }));
      return runCli(["farm", "up", "--repo", repo, "--port", String(await freePort()), "--config", file], { cwd: repo });
    };
    const missing = await up({ cert: join(dir, "nope.crt"), key: a.key });
    assert.equal(missing.code, 1);
    assert.equal(
      missing.stderr.trim().split("\n").at(-1),
      `optimus: tls.cert: cannot read ${join(dir, "nope.crt")} (ENOENT); make a pair with \`optimus farm cert\` or fix the path in the farm's config`,
    );
    const mismatched = await up({ cert: a.cert, key: b.key });
    assert.equal(mismatched.code, 1);
    assert.equal(
      mismatched.stderr.trim().split("\n").at(-1),
      `optimus: tls.key: the key in ${b.key} does not belong to the certificate in ${a.cert}; give the key made with it (\`optimus farm cert\` writes both)`,
    );
    const swapped = await up({ cert: a.key, key: a.cert });
    assert.equal(
      swapped.stderr.trim().split("\n").at(-1),
      `optimus: tls.cert: ${a.key} holds no PEM certificate; make a pair with \`optimus farm cert\``,
    );
    // `farm cert` keeps a pair clients may pin unless told to replace it.
    const again = await runCli(["farm", "cert", "--out", join(a.cert, "..")], { cwd: repo });
    assert.equal(again.code, 4);
    assert.match(again.stderr, /already exists and clients may pin it; pass --force to replace it/);
  },
);
