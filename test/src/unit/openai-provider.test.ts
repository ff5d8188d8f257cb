import assert from "node:assert/strict";
import { createServer } from "node:net";
import { after, test } from "node:test";
import { OpenAiCompatibleProvider } from "@optimus/farm-server/dist/worker/models/openai-provider.js";
import { startOpenAiStandin, type Standin } from "../helpers/openai-standin.js";

const standins: Standin[] = [];
after(async () => {
  await Promise.all(standins.map((s) => s.close()));
});

async function standin(opts: Parameters<typeof startOpenAiStandin>[0]): Promise<Standin> {
  const s = await startOpenAiStandin(opts);
  standins.push(s);
  return s;
}

const ask = [{ role: "user" as const, content: "Write a greeting" }];

test("streams the scripted text, reports progress and the server's usage", async () => {
  const text = "Hello there, this is a scripted completion in several chunks.";
  const s = await standin({ script: [text] });
  const provider = new OpenAiCompatibleProvider({ baseUrl: s.url, model: "m" });
  const progress: number[] = [];
  const gen = await provider.generate(ask, { maxTokens: 200, onTokens: (n) => progress.push(n) });
  assert.equal(gen.text, text);
  assert.equal(gen.stopReason, "stop");
  assert.ok(progress.length > 3, `several chunks, got ${progress.length}`);
  assert.deepEqual(
    progress,
    progress.map((_, i) => i + 1),
  );
  // The stand-in's usage (≈4 chars a token) differs from its chunk count: usage wins.
  assert.equal(gen.tokens, Math.ceil(text.length / 4));
  assert.notEqual(gen.tokens, progress.length);
  assert.equal(gen.promptTokens, Math.ceil(ask[0]!.content.length / 4));
  assert.equal(gen.model, "m");
  assert.equal(provider.name, "m", "the worker registers the model's name, not its server's URL");
  const body = s.requests[0]!.body;
  assert.equal(body.stream, true);
  assert.deepEqual(body.stream_options, { include_usage: true });
  assert.equal(body.max_tokens, 200);
  assert.deepEqual(s.requests[0]!.messages, ask);
});

test("without a usage chunk, tokens are the chunks counted", async () => {
  const s = await standin({ script: ["one two three four five"], omitUsage: true });
  const gen = await new OpenAiCompatibleProvider({ baseUrl: s.url, model: "m" }).generate(ask);
  assert.equal(gen.text, "one two three four five");
  assert.equal(gen.tokens, 5);
  assert.equal(gen.promptTokens, undefined);
});

test("a JSON schema is sent as response_format json_schema", async () => {
  const schema = { type: "object", properties: { done: { type: "boolean" } }, required: ["done"], additionalProperties: false };
  const s = await standin({ script: ['{"done":true}'] });
  const gen = await new OpenAiCompatibleProvider({ baseUrl: s.url, model: "m" }).generate(ask, { jsonSchema: schema });
  assert.equal(gen.text, '{"done":true}');
  assert.deepEqual(s.requests[0]!.body.response_format, { type: "json_schema", json_schema: { name: "output", strict: true, schema } });
});

test("logprobs become a confidence; a script function sees the prompt", async () => {
  const s = await standin({
    script: [(req) => (req.messages.some((m) => m.content.includes("feedback: test failed")) ? "fixed it" : "no feedback")],
    logprob: Math.log(0.8),
  });
  const gen = await new OpenAiCompatibleProvider({ baseUrl: s.url, model: "m" }).generate([
    ...ask,
    { role: "user", content: "feedback: test failed" },
  ]);
  assert.equal(gen.text, "fixed it");
  assert.equal(s.requests[0]!.body.logprobs, true);
  assert.ok(gen.confidence);
  assert.ok(Math.abs(gen.confidence.mean - 0.8) < 1e-9 && Math.abs(gen.confidence.min - 0.8) < 1e-9, JSON.stringify(gen.confidence));
  assert.equal(gen.confidence.tokens, 2);
  const noLp = await standin({ script: ["x"] });
  const plain = await new OpenAiCompatibleProvider({ baseUrl: noLp.url, model: "m", logprobs: false }).generate(ask);
  assert.equal(plain.confidence, undefined);
  assert.equal(noLp.requests[0]!.body.logprobs, undefined);
});

test('finish_reason "length" becomes stopReason "length"', async () => {
  const s = await standin({ script: ["a long answer that will not fit in the few tokens allowed for it"] });
  const gen = await new OpenAiCompatibleProvider({ baseUrl: s.url, model: "m" }).generate(ask, { maxTokens: 3 });
  assert.equal(gen.stopReason, "length");
  assert.equal(gen.text, "a long answe");
  assert.equal(gen.tokens, 3);
});

test("an exhausted script (HTTP 500) gives the status and the server's message", async () => {
  const s = await standin({ script: ["only one"] });
  const provider = new OpenAiCompatibleProvider({ baseUrl: s.url, model: "m" });
  await provider.generate(ask);
  await assert.rejects(provider.generate(ask), (err: Error) => {
    assert.match(err.message, /HTTP 500/);
    assert.match(err.message, /script exhausted/);
    assert.ok(err.message.includes(s.url));
    return true;
  });
});

test("a wrong API key is a 401 whose message never contains the key", async () => {
  const s = await standin({ script: ["ok", "ok"], apiKey: "sk-right" });
  const wrong = new OpenAiCompatibleProvider({ baseUrl: s.url, model: "m", apiKey: "sk-wrong-secret" });
  await assert.rejects(wrong.generate(ask), (err: Error) => /HTTP 401/.test(err.message) && !err.message.includes("sk-wrong-secret"));
  const right = await new OpenAiCompatibleProvider({ baseUrl: s.url, model: "m", apiKey: "sk-right" }).generate(ask);
  assert.equal(right.text, "ok");
});

test("the stand-in rejects malformed requests with 400 and serves /v1/models", async () => {
  const s = await standin({ script: ["x"], model: "tiny" });
  const bad = await fetch(`${s.url}/chat/completions`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: "{not json",
  });
  assert.equal(bad.status, 400);
  const err = (await bad.json()) as { error: { message: string; type: string } };
  assert.equal(err.error.type, "invalid_request_error");
  const noMessages = await fetch(`${s.url}/chat/completions`, { method: "POST", body: JSON.stringify({ model: "tiny", messages: [] }) });
  assert.equal(noMessages.status, 400);
  const models = (await (await fetch(`${s.url}/models`)).json()) as { data: Array<{ id: string }> };
  assert.equal(models.data[0]!.id, "tiny");
  const plain = await fetch(`${s.url}/chat/completions`, { method: "POST", body: JSON.stringify({ model: "tiny", messages: ask }) });
  const completion = (await plain.json()) as { object: string; choices: Array<{ message: { content: string }; finish_reason: string }> };
  assert.equal(completion.object, "chat.completion");
  assert.equal(completion.choices[0]!.message.content, "x");
  assert.equal(s.requests.length, 1, "malformed requests are not recorded");
});

test("connection refused says how to fix it", async () => {
  const port = await closedPort();
  const provider = new OpenAiCompatibleProvider({ baseUrl: `http://127.0.0.1:${port}/v1`, model: "m", apiKey: "sk-secret" });
  await assert.rejects(provider.generate(ask), (err: Error) => {
    assert.equal(
      err.message,
      `cannot reach the model server at http://127.0.0.1:${port}/v1 (connection refused): start it or pass --model <url>`,
    );
    return true;
  });
});

test("aborting mid-stream returns the partial text with stopReason abort", async () => {
  const s = await standin({ script: ["one two three four five six seven eight nine ten"], chunkDelayMs: 40 });
  const controller = new AbortController();
  const gen = await new OpenAiCompatibleProvider({ baseUrl: s.url, model: "m" }).generate(ask, {
    signal: controller.signal,
    onTokens: (n) => n === 2 && controller.abort(),
  });
  assert.equal(gen.stopReason, "abort");
  assert.equal(gen.text, "one two ");
  const already = await new OpenAiCompatibleProvider({ baseUrl: s.url, model: "m" }).generate(ask, { signal: AbortSignal.abort() });
  assert.equal(already.stopReason, "abort");
  assert.equal(s.requests.length, 1, "an already-aborted call sends nothing");
});

test("a server slower than timeoutMs is an error, not an abort", async () => {
  const s = await standin({ script: ["one two three four five six"], chunkDelayMs: 100 });
  const provider = new OpenAiCompatibleProvider({ baseUrl: s.url, model: "m", timeoutMs: 150 });
  await assert.rejects(provider.generate(ask), /did not finish within 150 ms/);
});

/** A port nothing listens on: bind one, note it, close it. */
async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as { port: number };
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}
