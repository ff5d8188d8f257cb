import assert from "node:assert/strict";
import { createServer as createHttpServer, type Server as HttpServer } from "node:http";
import { connect, createServer, type Server, type Socket } from "node:net";
import { after, before, test } from "node:test";
import { checkAllowed, parseAllowList } from "@optimus/farm-server/dist/egress/allowlist.js";
import { startEgressProxy, type EgressDecision, type EgressProxy } from "@optimus/farm-server/dist/egress/egress-proxy.js";
import { sleep, waitFor } from "../helpers/wait.js";

const TOKEN = "Bearer s3cret-egress-token-7f3a";
const AUTH = `Proxy-Authorization: ${TOKEN}\r\n`;

let echo: Server;
let web: HttpServer;
let echoPort = 0;
let webPort = 0;
let closedPort = 0;
let proxy: EgressProxy;
const audits: EgressDecision[] = [];
/** one entry per attempt this file makes against `proxy`, in order */
const expected: Array<Pick<EgressDecision, "method" | "host" | "port" | "allowed" | "principal">> = [];
/** every byte the proxy sent back, to prove the token never comes back */
const responses: string[] = [];

before(async () => {
  echo = createServer((s) => s.pipe(s));
  await new Promise<void>((r) => echo.listen(0, "127.0.0.1", r));
  echoPort = (echo.address() as { port: number }).port;
  web = createHttpServer((req, res) => {
    const seen = Object.keys(req.headers).sort().join(",");
    res.end(`hello ${req.method} ${req.url} host=${req.headers.host} headers=${seen}`);
  });
  await new Promise<void>((r) => web.listen(0, "127.0.0.1", r));
  webPort = (web.address() as { port: number }).port;
  // a port with nothing listening: the upstream-failure case
  const tmp = createServer();
  await new Promise<void>((r) => tmp.listen(0, "127.0.0.1", r));
  closedPort = (tmp.address() as { port: number }).port;
  await new Promise<void>((r) => tmp.close(() => r()));
  proxy = await startEgressProxy({
    allow: [`localhost:${echoPort}`, `localhost:${webPort}`, `localhost:${closedPort}`, "*.example.com"],
    authorize: (h) => (h === TOKEN ? "worker:w1" : null),
    audit: (d) => audits.push(d),
    connectTimeoutMs: 3000,
  });
});

after(async () => {
  await proxy.close();
  await new Promise<void>((r) => echo.close(() => r()));
  await new Promise<void>((r) => web.close(() => r()));
});

/** Sends raw bytes to the proxy; resolves with everything it answered once it closes (or `until` matches). */
function raw(text: string, until?: RegExp): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = connect(proxy.port, "127.0.0.1");
    let got = "";
    const done = (): void => {
      responses.push(got);
      s.destroy();
      resolve(got);
    };
    s.on("data", (b: Buffer) => {
      got += b.toString("latin1");
      if (until?.test(got)) done();
    });
    s.on("close", done);
    s.on("error", reject);
    s.write(text);
  });
}

/** CONNECT through the proxy; resolves with the status line and, on 200, the open tunnel. */
function tunnel(target: string, headers = AUTH): Promise<{ status: string; socket: Socket; rest: string }> {
  return new Promise((resolve, reject) => {
    const s = connect(proxy.port, "127.0.0.1");
    let got = "";
    const onData = (b: Buffer): void => {
      got += b.toString("latin1");
      const end = got.indexOf("\r\n\r\n");
      if (end < 0) return;
      s.off("data", onData);
      responses.push(got);
      resolve({ status: got.slice(0, got.indexOf("\r\n")), socket: s, rest: got.slice(end + 4) });
    };
    s.on("data", onData);
    s.on("error", reject);
    s.write(`CONNECT ${target} HTTP/1.1\r\nHost: ${target}\r\n${headers}\r\n`);
  });
}

/** Waits for the audit record of the attempt just made and checks it against what was expected. */
async function audited(e: (typeof expected)[number], reason?: RegExp): Promise<EgressDecision> {
  expected.push(e);
  await waitFor(() => audits.length >= expected.length, `audit record #${expected.length} (${e.method} ${e.host}:${e.port})`, 5000);
  await sleep(20); // a second record for the same attempt would show up now
  assert.equal(audits.length, expected.length, `exactly one record per attempt; got ${JSON.stringify(audits.slice(expected.length - 1))}`);
  const d = audits[audits.length - 1]!;
  assert.deepEqual({ method: d.method, host: d.host, port: d.port, allowed: d.allowed, principal: d.principal }, e, JSON.stringify(d));
  if (reason) assert.match(d.reason, reason);
  assert.match(d.client, /^127\.0\.0\.1:\d+$/);
  assert.ok(Math.abs(d.at - Date.now()) < 10_000);
  return d;
}

test("allow patterns: exact, wildcard subdomains only, ports, IP literals, normalisation", () => {
  const rules = parseAllowList(["registry.example", "*.example.com", "localhost:8080", "10.0.0.1", "[::1]:9000"]);
  const ok = (h: string, p: number): boolean => checkAllowed(rules, h, p).allowed;
  assert.equal(ok("registry.example", 443), true);
  assert.equal(ok("registry.example", 80), true);
  assert.equal(ok("registry.example", 8443), false);
  assert.equal(ok("evil-registry.example", 443), false);
  assert.equal(ok("a.example.com", 443), true);
  assert.equal(ok("a.b.example.com", 443), true);
  assert.equal(ok("example.com", 443), false, "a wildcard never matches the apex");
  assert.equal(ok("badexample.com", 443), false);
  assert.equal(ok("localhost", 8080), true);
  assert.equal(ok("localhost", 443), false, "an explicit port replaces the default ones");
  assert.equal(ok("10.0.0.1", 443), true);
  assert.equal(ok("10.0.0.2", 443), false);
  assert.equal(ok("::1", 9000), true);
  assert.match(checkAllowed(rules, "example.com", 443).reason, /not on the egress allowlist/);
  assert.match(checkAllowed(rules, "localhost", 22).reason, /port 22 is not allowed for localhost/);
  assert.throws(() => parseAllowList(["*.10.0.0.1"]), /wildcard cannot apply to an IP/);
  assert.throws(() => parseAllowList(["bad host"]), /invalid egress allow pattern "bad host"/);
  assert.throws(() => parseAllowList(["x.com:99999"]), /not a valid port/);
});

test("CONNECT to an allowed name reaches the upstream and pipes both ways; audited when it ends, with byte counts", async () => {
  const t = await tunnel(`localhost:${echoPort}`);
  assert.equal(t.status, "HTTP/1.1 200 Connection Established");
  const reply = new Promise<string>((r) => t.socket.once("data", (b: Buffer) => r(b.toString())));
  t.socket.write("ping-through-the-tunnel");
  assert.equal(await reply, "ping-through-the-tunnel");
  t.socket.end();
  const d = await audited(
    { method: "CONNECT", host: "localhost", port: echoPort, allowed: true, principal: "worker:w1" },
    /^allowed by localhost:\d+$/,
  );
  assert.equal(d.bytesUp, "ping-through-the-tunnel".length);
  assert.equal(d.bytesDown, "ping-through-the-tunnel".length);
});

test("host names are compared lowercased with the trailing dot stripped", async () => {
  const t = await tunnel(`LocalHost.:${echoPort}`);
  assert.equal(t.status, "HTTP/1.1 200 Connection Established");
  t.socket.end();
  await audited({ method: "CONNECT", host: "localhost", port: echoPort, allowed: true, principal: "worker:w1" });
});

test("CONNECT to anything not listed is 403 with a one-line reason", async () => {
  const cases: Array<[string, string, number, RegExp]> = [
    [`127.0.0.1:${echoPort}`, "127.0.0.1", echoPort, /127\.0\.0\.1 is not on the egress allowlist/], // IP literal of an allowed name
    ["example.com:443", "example.com", 443, /example\.com is not on the egress allowlist/], // apex of *.example.com
    ["localhost:1", "localhost", 1, /port 1 is not allowed for localhost/], // a name that is listed, on another port
    ["sub.example.com:22", "sub.example.com", 22, /port 22 is not allowed for sub\.example\.com/],
    ["[::1]:443", "::1", 443, /::1 is not on the egress allowlist/],
  ];
  for (const [target, host, port, reason] of cases) {
    const t = await tunnel(target);
    assert.equal(t.status, "HTTP/1.1 403 Forbidden", target);
    const body =
      t.rest +
      (await new Promise<string>((r) => {
        let more = "";
        t.socket.on("data", (b: Buffer) => (more += b.toString()));
        t.socket.on("close", () => r(more));
      }));
    assert.match(body, reason);
    assert.equal(body.trim().split("\n").length, 1, "one line");
    await audited({ method: "CONNECT", host, port, allowed: false, principal: "worker:w1" }, reason);
  }
});

test("malformed CONNECT targets and request lines are 400", async () => {
  for (const target of ["localhost", "2130706433:443", "0x7f000001:443", "a..b:443", "localhost:0", "::1:443"]) {
    const got = await raw(`CONNECT ${target} HTTP/1.1\r\n${AUTH}\r\n`);
    assert.match(got, /^HTTP\/1\.1 400 Bad Request\r\n/, target);
    await audited({ method: "CONNECT", host: "", port: 0, allowed: false, principal: null }, /^bad CONNECT target/);
  }
  const garbage = await raw("THIS IS NOT HTTP\r\n\r\n");
  assert.match(garbage, /^HTTP\/1\.1 400 Bad Request\r\n/);
  await audited({ method: "-", host: "", port: 0, allowed: false, principal: null }, /^bad request \(HPE_/);
});

test("absent or invalid authorisation is 407, and the credential is never echoed", async () => {
  for (const headers of ["", "Proxy-Authorization: Bearer wrong-token-value\r\n", `Proxy-Authorization: ${TOKEN}x\r\n`]) {
    const t = await tunnel(`localhost:${echoPort}`, headers);
    assert.equal(t.status, "HTTP/1.1 407 Proxy Authentication Required");
    t.socket.destroy();
    await audited(
      { method: "CONNECT", host: "localhost", port: echoPort, allowed: false, principal: null },
      /authorization missing or invalid/,
    );
  }
  const plain = await raw(
    `GET http://localhost:${webPort}/x HTTP/1.1\r\nHost: localhost\r\nProxy-Authorization: Bearer wrong-token-value\r\nConnection: close\r\n\r\n`,
  );
  assert.match(plain, /^HTTP\/1\.1 407 /);
  assert.match(plain, /\r\nproxy-authenticate: Basic realm="optimus-egress"\r\n/i);
  assert.ok(!plain.includes("wrong-token-value"));
  await audited({ method: "GET", host: "localhost", port: webPort, allowed: false, principal: null });
  assert.ok(!JSON.stringify(audits).includes("wrong-token-value"));
});

test("plain HTTP: allowed absolute-form requests are forwarded without Proxy-* and hop-by-hop headers, Host from the URL", async () => {
  const got = await raw(
    `GET http://localhost:${webPort}/path?q=1 HTTP/1.1\r\nHost: evil.invalid\r\n${AUTH}Proxy-Connection: keep-alive\r\nConnection: close, X-Hop\r\nX-Hop: 1\r\nX-Kept: 2\r\n\r\n`,
  );
  assert.match(got, /^HTTP\/1\.1 200 OK\r\n/);
  const body = got.slice(got.indexOf("\r\n\r\n") + 4);
  assert.equal(body, `hello GET /path?q=1 host=localhost:${webPort} headers=connection,host,x-kept`);
  const d = await audited({ method: "GET", host: "localhost", port: webPort, allowed: true, principal: "worker:w1" }, /^allowed by /);
  assert.equal(d.bytesDown, body.length);
  assert.equal(d.bytesUp, 0);

  const post = await raw(`POST http://localhost:${webPort}/up HTTP/1.1\r\n${AUTH}Content-Length: 5\r\nConnection: close\r\n\r\nhello`);
  assert.match(post, /hello POST \/up /);
  const dp = await audited({ method: "POST", host: "localhost", port: webPort, allowed: true, principal: "worker:w1" });
  assert.equal(dp.bytesUp, 5);
});

test("plain HTTP: denied hosts are 403; https:// absolute-form and origin-form requests are 400", async () => {
  const denied = await raw(`GET http://127.0.0.1:${webPort}/ HTTP/1.1\r\nHost: x\r\n${AUTH}Connection: close\r\n\r\n`);
  assert.match(denied, /^HTTP\/1\.1 403 Forbidden\r\n/);
  assert.match(denied, /127\.0\.0\.1 is not on the egress allowlist\n$/);
  await audited({ method: "GET", host: "127.0.0.1", port: webPort, allowed: false, principal: "worker:w1" });

  // an Expect Node does not know would otherwise be answered (417) without reaching the proxy's code
  const odd = await raw(
    `GET http://127.0.0.1:${webPort}/ HTTP/1.1\r\nHost: x\r\nExpect: something-odd\r\n${AUTH}Connection: close\r\n\r\n`,
  );
  assert.match(odd, /^HTTP\/1\.1 403 Forbidden\r\n/);
  await audited({ method: "GET", host: "127.0.0.1", port: webPort, allowed: false, principal: "worker:w1" });

  // the URL is what counts: user@host tricks decide (and connect) on the real host
  const trick = await raw(`GET http://localhost:${webPort}@example.com/ HTTP/1.1\r\nHost: x\r\n${AUTH}Connection: close\r\n\r\n`);
  assert.match(trick, /^HTTP\/1\.1 (400|403) /);
  await audited({ method: "GET", host: "example.com", port: 80, allowed: false, principal: null });

  const https = await raw(`GET https://localhost:${webPort}/ HTTP/1.1\r\nHost: x\r\n${AUTH}Connection: close\r\n\r\n`);
  assert.match(https, /^HTTP\/1\.1 400 Bad Request\r\n/);
  assert.match(https, /only http:\/\/ URLs are forwarded/);
  await audited({ method: "GET", host: "localhost", port: webPort, allowed: false, principal: null });

  const origin = await raw(`GET / HTTP/1.1\r\nHost: localhost:${webPort}\r\n${AUTH}Connection: close\r\n\r\n`);
  assert.match(origin, /^HTTP\/1\.1 400 Bad Request\r\n/);
  assert.match(origin, /not a proxy request/);
  await audited({ method: "GET", host: "", port: 0, allowed: false, principal: null });
});

test("an allowed upstream that refuses is 502, audited as allowed with the failure as reason", async () => {
  const t = await tunnel(`localhost:${closedPort}`);
  assert.equal(t.status, "HTTP/1.1 502 Bad Gateway");
  t.socket.destroy();
  const d = await audited(
    { method: "CONNECT", host: "localhost", port: closedPort, allowed: true, principal: "worker:w1" },
    /upstream connect failed: ECONNREFUSED/,
  );
  assert.equal(d.bytesDown, 0);
  const plain = await raw(`GET http://localhost:${closedPort}/ HTTP/1.1\r\nHost: x\r\n${AUTH}Connection: close\r\n\r\n`);
  assert.match(plain, /^HTTP\/1\.1 502 Bad Gateway\r\n/);
  await audited(
    { method: "GET", host: "localhost", port: closedPort, allowed: true, principal: "worker:w1" },
    /upstream connect failed: ECONNREFUSED/,
  );
});

test("100% of attempts were audited exactly once, and the token never appears in a response or a record", async () => {
  await sleep(100);
  assert.ok(expected.length >= 20, `${expected.length} attempts`);
  assert.equal(audits.length, expected.length);
  assert.deepEqual(
    audits.map((d) => d.allowed),
    expected.map((e) => e.allowed),
  );
  for (const r of responses) assert.ok(!r.includes("s3cret-egress-token"), r);
  assert.ok(!JSON.stringify(audits).includes("s3cret-egress-token"));
});

test("close() ends open tunnels, and they are audited", async () => {
  const own: EgressDecision[] = [];
  const p = await startEgressProxy({ allow: [`localhost:${echoPort}`], audit: (d) => own.push(d) });
  assert.match(p.url, /^http:\/\/127\.0\.0\.1:\d+$/);
  const s = connect(p.port, "127.0.0.1");
  s.on("error", () => undefined);
  const head = new Promise<string>((r) => s.once("data", (b: Buffer) => r(b.toString())));
  s.write(`CONNECT localhost:${echoPort} HTTP/1.1\r\n\r\n`);
  assert.match(await head, /^HTTP\/1\.1 200 /);
  const closed = new Promise<void>((r) => s.on("close", () => r()));
  await p.close();
  await closed;
  assert.equal(own.length, 1);
  assert.equal(own[0]!.allowed, true);
  assert.equal(own[0]!.principal, null, "no authorize: no principal");
});
