import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createServer, type Server } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { startEgressProxy, type EgressDecision, type EgressProxy } from "@optimus/farm-server/dist/egress/egress-proxy.js";
import { rewriteHead } from "@optimus/farm-server/dist/egress/relay.js";
import { runCheck, type RunCheckOptions } from "@optimus/farm-server/dist/sandbox/index.js";
import { sleep, waitFor } from "../helpers/wait.js";

const TOKEN = "Bearer w1-egress-token-93c1d";
const cwd = mkdtempSync(join(tmpdir(), "optimus-sandbox-egress-"));
const hasCurl = spawnSync("sh", ["-c", "command -v curl"]).status === 0;

/** the allowlisted upstream, and one that is not */
let allowed: Server;
let other: Server;
let allowedPort = 0;
let otherPort = 0;
const allowedSaw: string[] = [];
const otherSaw: string[] = [];
let proxy: EgressProxy;
const audits: EgressDecision[] = [];

const serve = async (saw: string[]): Promise<[Server, number]> => {
  const s = createServer((req, res) => {
    saw.push(`${req.url} pa=${req.headers["proxy-authorization"] ?? "none"}`);
    res.end(`reached ${req.url}`);
  });
  await new Promise<void>((r) => s.listen(0, "127.0.0.1", r));
  return [s, (s.address() as { port: number }).port];
};

before(async () => {
  [allowed, allowedPort] = await serve(allowedSaw);
  [other, otherPort] = await serve(otherSaw);
  proxy = await startEgressProxy({
    allow: [`localhost:${allowedPort}`],
    authorize: (h) => (h === TOKEN ? "worker:w1" : null),
    audit: (d) => audits.push(d),
  });
  // CONNECT through $HTTPS_PROXY with node's own http (its fetch ignores the proxy variables);
  // `forge` sends a Proxy-Authorization of the check's own.
  writeFileSync(
    join(cwd, "tunnel.cjs"),
    `const http = require("http");
const [target, path, forge] = process.argv.slice(2);
const proxy = new URL(process.env.HTTPS_PROXY);
const headers = forge ? { "Proxy-Authorization": forge } : {};
const req = http.request({ host: proxy.hostname, port: proxy.port, method: "CONNECT", path: target, headers });
req.on("connect", (res, socket) => {
  console.log("CONNECT " + res.statusCode);
  if (res.statusCode !== 200) return socket.destroy();
  let got = "";
  socket.on("data", (b) => (got += b));
  socket.on("end", () => console.log(got.slice(got.indexOf("\\r\\n\\r\\n") + 4)));
  socket.write("GET " + path + " HTTP/1.1\\r\\nHost: " + target + "\\r\\nConnection: close\\r\\n\\r\\n");
});
req.on("error", (e) => { console.log("ERROR " + e.code); process.exitCode = 4; });
req.end();
`,
  );
  // exits 0 when a direct TCP connection works, else prints the error code and exits 3
  writeFileSync(
    join(cwd, "direct.cjs"),
    `const [host, port] = process.argv.slice(2);
require("net").connect(Number(port), host)
  .on("connect", () => { console.log("CONNECTED " + host); process.exit(0); })
  .on("error", (e) => { console.log("FAILED " + host + " " + e.code); process.exit(3); })
  .setTimeout(5000, () => { console.log("FAILED " + host + " timeout"); process.exit(3); });
`,
  );
});

after(async () => {
  await proxy.close();
  await new Promise<void>((r) => allowed.close(() => r()));
  await new Promise<void>((r) => other.close(() => r()));
  rmSync(cwd, { recursive: true, force: true });
});

const egressOpts = (): RunCheckOptions => ({ cwd, timeoutMs: 20_000, egress: { proxyUrl: proxy.url, proxyAuthorization: TOKEN } });

/** Waits until `n` more audit records arrived after `from` and returns them (tunnels are audited when they end). */
async function newAudits(from: number, n: number): Promise<EgressDecision[]> {
  await waitFor(() => audits.length >= from + n, `${n} audit record(s)`, 5000);
  await sleep(50);
  assert.equal(audits.length, from + n, `exactly ${n} new record(s): ${JSON.stringify(audits.slice(from))}`);
  return audits.slice(from);
}

test("the allowlisted target is reached through the proxy, authorised as the worker", async (t) => {
  const from = audits.length;
  const r = await runCheck(`node tunnel.cjs localhost:${allowedPort} /via-node-tunnel`, egressOpts());
  t.diagnostic(`sandbox: ${r.sandbox}, ${r.durationMs} ms`);
  assert.notEqual(r.sandbox, "none");
  assert.equal(r.exitCode, 0, r.output);
  assert.equal(r.output, "CONNECT 200\nreached /via-node-tunnel\n");
  const [d] = await newAudits(from, 1);
  assert.deepEqual([d!.method, d!.host, d!.port, d!.allowed, d!.principal], ["CONNECT", "localhost", allowedPort, true, "worker:w1"]);
  assert.ok(d!.bytesDown! > 0 && d!.bytesUp! > 0);
  assert.ok(allowedSaw.includes("/via-node-tunnel pa=none"), "the upstream never sees the credential");
});

test("curl, going by HTTP_PROXY/HTTPS_PROXY alone, reaches the allowlisted target (plain and tunnelled)", async (t) => {
  if (!hasCurl) return t.skip("curl is not installed");
  const from = audits.length;
  const r = await runCheck(
    `curl -sS -m 10 http://localhost:${allowedPort}/via-curl; echo; curl -sS -m 10 -p http://localhost:${allowedPort}/via-curl-tunnel`,
    egressOpts(),
  );
  assert.equal(r.exitCode, 0, r.output);
  assert.equal(r.output, "reached /via-curl\nreached /via-curl-tunnel");
  const got = await newAudits(from, 2);
  assert.deepEqual(got.map((d) => `${d.method} ${d.allowed} ${d.principal}`).sort(), ["CONNECT true worker:w1", "GET true worker:w1"]);
});

test("a target not on the allowlist is refused by the proxy, and audited", async () => {
  const from = audits.length;
  const curl = hasCurl ? `; curl -sS -m 10 http://127.0.0.1:${allowedPort}/by-ip` : "";
  const r = await runCheck(`node tunnel.cjs localhost:${otherPort} /x; node tunnel.cjs 127.0.0.1:${allowedPort} /y${curl}`, egressOpts());
  assert.equal(r.exitCode, 0, r.output);
  assert.equal(r.output, `CONNECT 403\nCONNECT 403\n${hasCurl ? "127.0.0.1 is not on the egress allowlist\n" : ""}`);
  const got = await newAudits(from, hasCurl ? 3 : 2);
  assert.deepEqual(
    got.map((d) => [d.host, d.port, d.allowed, d.principal]),
    [
      ["localhost", otherPort, false, "worker:w1"],
      ["127.0.0.1", allowedPort, false, "worker:w1"],
      ...(hasCurl ? [["127.0.0.1", allowedPort, false, "worker:w1"]] : []),
    ],
  );
  assert.deepEqual(otherSaw, []);
});

test("direct connections still fail: the target, the proxy itself, and the outside world", async () => {
  const r = await runCheck(
    `node direct.cjs 127.0.0.1 ${allowedPort}; node direct.cjs 127.0.0.1 ${proxy.port}; node direct.cjs 192.0.2.1 80; node direct.cjs 1.1.1.1 443; echo done`,
    egressOpts(),
  );
  assert.equal(r.exitCode, 0, r.output);
  assert.doesNotMatch(r.output, /CONNECTED/);
  assert.match(
    r.output,
    /^FAILED 127\.0\.0\.1 ECONNREFUSED\nFAILED 127\.0\.0\.1 ECONNREFUSED\nFAILED 192\.0\.2\.1 ENETUNREACH\nFAILED 1\.1\.1\.1 ENETUNREACH\ndone\n$/,
  );
});

test("DNS lookups fail inside the sandbox", async (t) => {
  const script = `const dns = require("dns");
dns.lookup("registry.example", (e, a) => console.log("lookup " + (e ? "FAILED " + e.code : "OK " + a)));
dns.promises.resolve4("registry.example").then((a) => console.log("resolve4 OK " + a), (e) => console.log("resolve4 FAILED " + e.code));`;
  writeFileSync(join(cwd, "dns.cjs"), script);
  const control = await runCheck("node dns.cjs", { cwd, timeoutMs: 20_000, sandbox: "none" });
  t.diagnostic(`without a sandbox: ${control.output.trim().replace(/\n/g, "; ")}`);
  const r = await runCheck("node dns.cjs", egressOpts());
  assert.equal(r.exitCode, 0, r.output);
  assert.match(r.output, /^lookup FAILED \w+$/m);
  assert.match(r.output, /^resolve4 FAILED \w+$/m);
});

test("the credential is nowhere in the check's environment, argv or files; the proxy variables are", async () => {
  const r = await runCheck(
    `env; echo; tr '\\0' '\\n' < /proc/$PPID/environ; tr '\\0' ' ' < /proc/$PPID/cmdline; echo; ls -la "$HOME"; grep -rs "w1-egress-tok""en" "$HOME" . && echo FOUND-IN-FILES; echo end`,
    egressOpts(),
  );
  assert.equal(r.exitCode, 0, r.output);
  assert.ok(!r.output.includes("w1-egress-token"), r.output);
  assert.ok(!/proxy-authorization/i.test(r.output), r.output);
  for (const name of ["HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy"])
    assert.match(r.output, new RegExp(`^${name}=http://127\\.0\\.0\\.1:3128$`, "m"));
  assert.match(r.output, /^NO_PROXY=$/m);
  assert.match(r.output, /\nend\n$/);
});

test("a Proxy-Authorization sent by the check itself is dropped: only the worker's relay authorises", async () => {
  const from = audits.length;
  const r = await runCheck(`node tunnel.cjs localhost:${allowedPort} /forged "${TOKEN}"`, {
    cwd,
    timeoutMs: 20_000,
    egress: { proxyUrl: proxy.url },
  });
  assert.equal(r.output, "CONNECT 407\n");
  const [d] = await newAudits(from, 1);
  assert.deepEqual([d!.allowed, d!.principal], [false, null]);
});

test("exit codes and output pass through the bridge; a timeout kills the command and the bridge", async () => {
  const ok = await runCheck("echo out; echo err >&2; exit 7", egressOpts());
  assert.equal(ok.exitCode, 7);
  assert.equal(ok.output, "out\nerr\n");
  const missing = await runCheck("no-such-command-here", egressOpts());
  assert.equal(missing.exitCode, 127);
  const marker = "30.4545";
  const started = Date.now();
  const r = await runCheck(`sleep ${marker} & sleep ${marker}`, { ...egressOpts(), timeoutMs: 500 });
  assert.equal(r.timedOut, true);
  assert.equal(r.exitCode, null);
  assert.ok(Date.now() - started < 4000);
  await sleep(200);
  assert.deepEqual(processesWith(`sleep\0${marker}`), [], "no sleep survived");
  assert.deepEqual(processesWith("optimus-check-egress-"), [], "no bridge survived");
  assert.deepEqual(
    readdirSync(tmpdir()).filter((f) => f.startsWith("optimus-check-egress-")),
    [],
    "the socket folder is removed",
  );
});

test("with sandbox none, egress still goes through the relay (on loopback TCP) with the worker's credential", async () => {
  const from = audits.length;
  const r = await runCheck(`node tunnel.cjs localhost:${allowedPort} /unsandboxed; echo "$HTTPS_PROXY"`, {
    ...egressOpts(),
    sandbox: "none",
  });
  assert.match(r.sandboxNote ?? "", /WITHOUT a sandbox \(sandbox: none\)/);
  assert.match(r.output, /^CONNECT 200\nreached \/unsandboxed\nhttp:\/\/127\.0\.0\.1:\d+\n$/);
  assert.doesNotMatch(r.output, /:3128\n/);
  const [d] = await newAudits(from, 1);
  assert.equal(d!.principal, "worker:w1");
});

test("without egress nothing is reachable, the proxy included (existing behaviour)", async () => {
  const from = audits.length;
  const r = await runCheck(
    `node direct.cjs 127.0.0.1 ${proxy.port}; node tunnel.cjs localhost:${allowedPort} /no-egress; env | grep -i _proxy; echo end`,
    {
      cwd,
      timeoutMs: 20_000,
      env: { HTTPS_PROXY: proxy.url },
    },
  );
  assert.notEqual(r.sandbox, "none");
  // loopback is down in a bare namespace: ENETUNREACH (bwrap brings it up: ECONNREFUSED)
  assert.match(r.output, /^FAILED 127\.0\.0\.1 (ENETUNREACH|ECONNREFUSED)\nERROR (ENETUNREACH|ECONNREFUSED)\n/);
  assert.match(r.output, new RegExp(`\nHTTPS_PROXY=${proxy.url}\nend\n$`));
  await sleep(100);
  assert.equal(audits.length, from, "nothing reached the proxy");
});

test("bwrap bridges to the proxy and nowhere else", async () => {
  const r = await runCheck(`node tunnel.cjs localhost:${allowedPort} /bwrap; node direct.cjs 127.0.0.1 ${allowedPort}`, {
    ...egressOpts(),
    sandbox: "bwrap",
  });
  assert.equal(r.sandbox, "bwrap");
  assert.equal(r.output, `CONNECT 200\nreached /bwrap\nFAILED 127.0.0.1 ECONNREFUSED\n`);
});

test("the relay's head rewrite: drops the check's credential, adds the worker's, closes plain-HTTP connections", () => {
  assert.equal(
    rewriteHead("CONNECT a:443 HTTP/1.1\r\nHost: a:443\r\nproxy-authorization: Basic Zm9yZ2Vk", "Bearer t"),
    "CONNECT a:443 HTTP/1.1\r\nHost: a:443\r\nProxy-Authorization: Bearer t\r\n\r\n",
  );
  assert.equal(
    rewriteHead("GET http://a/ HTTP/1.1\r\nHost: a\r\nProxy-Connection: keep-alive\r\nConnection: keep-alive, X-Hop", undefined),
    "GET http://a/ HTTP/1.1\r\nHost: a\r\nConnection: X-Hop, close\r\n\r\n",
  );
  assert.deepEqual(rewriteHead("GET http://a/ HTTP/1.1\r\nX: 1\r\n Proxy-Authorization: x", "t"), { error: "malformed header line" });
  assert.deepEqual(rewriteHead("GET http://a/ HTTP/1.1\nProxy-Authorization: x", "t"), { error: "bare CR or LF in the request head" });
});

/** pids whose command line contains `needle` (NUL-separated argv), seen from outside any namespace. */
function processesWith(needle: string): string[] {
  return readdirSync("/proc")
    .filter((p) => /^\d+$/.test(p) && Number(p) !== process.pid)
    .filter((p) => {
      try {
        return readFileSync(`/proc/${p}/cmdline`, "utf8").includes(needle);
      } catch {
        return false;
      }
    });
}
