// LlamaProvider against a tiny GGUF model the test writes itself (no model can be downloaded here):
// real node-llama-cpp loading, chat template, JSON-schema grammar, stop reasons and confidence.
// The model's weights are random, so only structure is asserted, never content.
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { defaultLlamaThreads, LlamaProvider } from "@optimus/farm-server/dist/worker/models/llama-provider.js";
import type { ChatMessage, Generation } from "@optimus/farm-server/dist/worker/models/model-provider.js";
import { pullModel } from "@optimus/farm-server/dist/worker/models/model-pull.js";
import { writeTinyGguf } from "../helpers/gguf.js";

const dir = mkdtempSync(join(tmpdir(), "optimus-llama-"));
const sha = (f: string) => createHash("sha256").update(readFileSync(f)).digest("hex");
// maxLength makes the grammar close the string: a model with random weights rarely picks `"` by itself.
// (Its length is not asserted: random byte tokens decode to invalid UTF-8, one U+FFFD per byte.)
const REVIEW = {
  type: "object",
  properties: { verdict: { enum: ["approve", "request_changes"] }, notes: { type: "string", maxLength: 40 } },
  required: ["verdict", "notes"],
};
const ask = (q: string): ChatMessage[] => [
  { role: "system", content: "You review code. Answer with a verdict and short notes." },
  { role: "user", content: q },
];

function assertConfidence(g: Generation) {
  const c = g.confidence;
  assert.ok(c, "confidence present");
  assert.ok(c.mean > 0 && c.mean <= 1, `0 < mean ≤ 1: ${c.mean}`);
  assert.ok(c.min > 0 && c.min <= c.mean, `0 < min ≤ mean: ${c.min} vs ${c.mean}`);
  assert.ok(c.tokens > 0 && c.tokens <= g.tokens, `counted ${c.tokens} of ${g.tokens}`);
}

const providers: LlamaProvider[] = [];
const models: string[] = [];
before(() => {
  for (const seed of [1, 2]) {
    const f = join(dir, `tiny-s${seed}.gguf`);
    writeTinyGguf(f, { seed });
    models.push(f);
  }
});
after(async () => {
  for (const p of providers) await p.close();
  rmSync(dir, { recursive: true, force: true });
});
async function open(i: number): Promise<LlamaProvider> {
  const p = await LlamaProvider.open({ modelPath: models[i]!, threads: 1, contextSize: 1024 });
  providers.push(p);
  return p;
}

test("the GGUF writer is deterministic: same arguments, same bytes", () => {
  const a = join(dir, "a.gguf"),
    b = join(dir, "b.gguf"),
    c = join(dir, "c.gguf");
  writeTinyGguf(a, { seed: 5, layers: 1, width: 32 });
  writeTinyGguf(b, { seed: 5, layers: 1, width: 32 });
  writeTinyGguf(c, { seed: 6, layers: 1, width: 32 });
  assert.equal(sha(a), sha(b));
  assert.notEqual(sha(a), sha(c));
  assert.equal(sha(models[0]!), sha(models[0]!));
});

test("JSON-schema output parses and fits the schema, for several models and prompts", async () => {
  for (const i of [0, 1]) {
    const p = await open(i);
    assert.equal(p.threads, 1);
    assert.equal(p.name, `tiny-s${i + 1}`);
    for (const q of ["Review this diff.", "Is the limiter correct?", "Approve or not?"]) {
      const g = await p.generate(ask(q), { jsonSchema: REVIEW, maxTokens: 200 });
      assert.equal(g.stopReason, "stop", JSON.stringify(g));
      const v = JSON.parse(g.text) as { verdict: unknown; notes: unknown };
      assert.ok(v.verdict === "approve" || v.verdict === "request_changes", g.text);
      assert.equal(typeof v.notes, "string");
      assert.deepEqual(Object.keys(v).sort(), ["notes", "verdict"]);
      assert.ok(g.tokens > 0 && (g.promptTokens ?? 0) > 0);
      assert.equal(g.model, p.name);
      assertConfidence(g);
    }
  }
});

test("free text, sampling at temperature > 0, progress callbacks and queued calls", async () => {
  const p = providers[0] ?? (await open(0));
  const counts: number[] = [];
  const [a, b] = await Promise.all([
    p.generate(ask("Write a function."), { maxTokens: 40, onTokens: (n) => counts.push(n) }),
    p.generate(ask("Write another."), { maxTokens: 40, temperature: 0.8 }),
  ]);
  for (const g of [a, b]) {
    assert.ok(g.tokens > 0 && g.tokens <= 40, JSON.stringify(g));
    assert.ok(g.stopReason === "stop" || g.stopReason === "length");
    assertConfidence(g);
  }
  assert.deepEqual(
    counts,
    Array.from({ length: a.tokens }, (_, k) => k + 1),
  );
  // greedy is the default: the same prompt gives the same text (and the cached prefix is reused)
  const again = await p.generate(ask("Write a function."), { maxTokens: 40 });
  assert.equal(again.text, a.text);
});

test("a maxTokens cut reports stopReason length, and the truncated JSON is detectable", async () => {
  const p = providers[0] ?? (await open(0));
  const g = await p.generate(ask("Review."), { jsonSchema: REVIEW, maxTokens: 5 });
  assert.equal(g.stopReason, "length");
  assert.equal(g.tokens, 5);
  assert.throws(() => JSON.parse(g.text));
});

test("an abort signal stops generation with stopReason abort", async () => {
  const p = providers[0] ?? (await open(0));
  const ctl = new AbortController();
  const g = await p.generate(ask("Write a lot."), { maxTokens: 200, signal: ctl.signal, onTokens: (n) => n === 3 && ctl.abort() });
  assert.equal(g.stopReason, "abort");
  assert.equal(g.tokens, 3);
  const pre = await p.generate(ask("x"), { signal: AbortSignal.abort() });
  assert.deepEqual([pre.stopReason, pre.tokens, pre.text], ["abort", 0, ""]);
});

test("a missing or invalid model file gives an error naming the path and the fix", async () => {
  const missing = join(dir, "nope.gguf");
  await assert.rejects(LlamaProvider.open({ modelPath: missing }), (e: Error) => {
    assert.ok(e.message.includes(missing), e.message);
    assert.match(e.message, /optimus model pull/);
    return true;
  });
  const bad = join(dir, "bad.gguf");
  writeFileSync(bad, "this is not a model");
  await assert.rejects(LlamaProvider.open({ modelPath: bad }), (e: Error) => {
    assert.ok(e.message.includes(bad), e.message);
    assert.match(e.message, /not a GGUF model file/);
    return true;
  });
  const cut = join(dir, "cut.gguf"); // a download that stopped half-way
  writeFileSync(cut, readFileSync(models[0]!).subarray(0, 100_000));
  await assert.rejects(LlamaProvider.open({ modelPath: cut }), (e: Error) => {
    assert.ok(e.message.startsWith(`could not load the model at ${cut}`), e.message);
    assert.ok(!e.message.includes("\n"), e.message);
    return true;
  });
});

test("the default thread count is 1 on ≤ 2 cores, else physical cores", () => {
  assert.equal(defaultLlamaThreads(2, 2), 1);
  assert.equal(defaultLlamaThreads(1, 1), 1);
  assert.equal(defaultLlamaThreads(4, 8), 4);
  assert.equal(defaultLlamaThreads(undefined, 16), 8);
  assert.ok(defaultLlamaThreads() >= 1);
});

test("pullModel: an unreachable host fails fast with one line; a loopback server downloads with progress", async () => {
  // a port that was just free: connection refused
  const closed = createServer();
  await new Promise<void>((r) => closed.listen(0, "127.0.0.1", r));
  const deadPort = (closed.address() as AddressInfo).port;
  await new Promise((r) => closed.close(r));
  const t0 = Date.now();
  await assert.rejects(pullModel(`http://127.0.0.1:${deadPort}/m.gguf`, join(dir, "models")), (e: Error) => {
    assert.match(e.message, new RegExp(`^cannot reach 127\\.0\\.0\\.1:${deadPort} \\(ECONNREFUSED\\)`));
    assert.ok(!e.message.includes("\n"), e.message);
    return true;
  });
  assert.ok(Date.now() - t0 < 5_000);
  await assert.rejects(pullModel("ftp://example.com/m.gguf", dir), /not a model URI/);

  const body = readFileSync(models[0]!);
  const srv: Server = createServer((req, res) => {
    if (req.url !== "/tiny.gguf") return void res.writeHead(404).end();
    const m = /bytes=(\d+)-(\d*)/.exec(req.headers.range ?? "");
    const [a, b] = m ? [Number(m[1]), m[2] ? Number(m[2]) : body.length - 1] : [0, body.length - 1];
    res.writeHead(m ? 206 : 200, {
      "content-length": b - a + 1,
      "accept-ranges": "bytes",
      ...(m ? { "content-range": `bytes ${a}-${b}/${body.length}` } : {}),
    });
    res.end(req.method === "HEAD" ? undefined : body.subarray(a, b + 1));
  });
  await new Promise<void>((r) => srv.listen(0, "127.0.0.1", r));
  try {
    const base = `http://127.0.0.1:${(srv.address() as AddressInfo).port}`;
    const seen: Array<[number, number]> = [];
    const path = await pullModel(`${base}/tiny.gguf`, join(dir, "models"), (p) => seen.push([p.downloadedBytes, p.totalBytes]));
    assert.equal(sha(path), sha(models[0]!));
    assert.deepEqual(seen.at(-1), [body.length, body.length]);
    assert.equal(await pullModel(`${base}/tiny.gguf`, join(dir, "models")), path, "already present: same path");
    await assert.rejects(pullModel(`${base}/missing.gguf`, join(dir, "models")), (e: Error) => {
      assert.equal(e.message, `could not download ${base}/missing.gguf: HTTP 404 Not Found`);
      return true;
    });
    // the downloaded file is a model the provider opens (here without the per-token confidence)
    const p = await LlamaProvider.open({ modelPath: path, threads: 1, contextSize: 256, confidence: false });
    providers.push(p);
    const g = await p.generate(ask("hi"), { maxTokens: 3 });
    assert.ok(g.tokens > 0);
    assert.equal(g.confidence, undefined);
  } finally {
    srv.closeAllConnections();
    await new Promise((r) => srv.close(r));
  }
});
