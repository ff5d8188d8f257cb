// The Anthropic stand-in driven by the real @anthropic-ai/sdk: what the SDK parses from it is what it
// would parse from the real API (messages, streams, error classes, headers).
import assert from "node:assert/strict";
import { request as httpRequest } from "node:http";
import { after, test } from "node:test";
import Anthropic from "@anthropic-ai/sdk";
import {
  countInputTokens,
  startAnthropicStandin,
  type AnthropicStandin,
  type AnthropicStandinOptions,
} from "../helpers/anthropic-standin.js";

const KEY = "sk-ant-api03-test-key";
const standins: AnthropicStandin[] = [];
after(async () => {
  await Promise.all(standins.map((s) => s.close()));
});

async function standin(opts: AnthropicStandinOptions = {}): Promise<{ s: AnthropicStandin; client: Anthropic }> {
  const s = await startAnthropicStandin({ apiKey: KEY, ...opts });
  standins.push(s);
  return { s, client: new Anthropic({ apiKey: KEY, baseURL: s.url, maxRetries: 0 }) };
}

const MODEL = "claude-sonnet-5-5"; // not in the SDK's DEPRECATED_MODELS (those print a warning per request)
const ask = {
  model: MODEL,
  max_tokens: 1024,
  system: "You are terse.",
  messages: [{ role: "user" as const, content: "Write a greeting for the team" }],
};
const tool = {
  name: "write_file",
  description: "Writes a file",
  input_schema: { type: "object" as const, properties: { path: { type: "string" }, text: { type: "string" } } },
};

/** Awaits a promise that must reject, returning the error. */
async function rejection(p: Promise<unknown>): Promise<unknown> {
  try {
    await p;
  } catch (err) {
    return err;
  }
  assert.fail("expected a rejection");
}

test("non-streaming text and tool_use messages parse with usage; requests are logged without the key", async () => {
  const text = "Hello team, good work this week.";
  const { s, client } = await standin({
    script: [
      { kind: "text", text },
      { kind: "tool_use", name: "write_file", input: { path: "a.ts", text: "x" }, text: "Writing it." },
    ],
  });
  const m = await client.messages.create(ask);
  assert.match(m.id, /^msg_01/);
  assert.equal(m.type, "message");
  assert.equal(m.role, "assistant");
  assert.equal(m.model, MODEL);
  assert.deepEqual(m.content, [{ type: "text", text }]);
  assert.equal(m.stop_reason, "end_turn");
  assert.equal(m.stop_sequence, null);
  const input = Math.ceil(("You are terse.".length + ask.messages[0]!.content.length) / 4);
  assert.deepEqual(m.usage, {
    input_tokens: input,
    output_tokens: Math.ceil(text.length / 4),
    cache_creation_input_tokens: 0,
    cache_read_input_tokens: 0,
  });

  const t = await client.messages.create({ ...ask, tools: [tool] });
  assert.equal(t.stop_reason, "tool_use");
  assert.equal(t.content.length, 2);
  assert.deepEqual(t.content[0], { type: "text", text: "Writing it." });
  const use = t.content[1]!;
  assert.ok(use.type === "tool_use");
  assert.match(use.id, /^toolu_01/);
  assert.equal(use.name, "write_file");
  assert.deepEqual(use.input, { path: "a.ts", text: "x" });
  assert.equal(t.usage.input_tokens, countInputTokens({ ...ask, tools: [tool] }));
  assert.ok(t.usage.input_tokens > m.usage.input_tokens, "tool definitions count as input");

  assert.equal(s.requests.length, 2);
  const r = s.requests[0]!;
  assert.equal(r.path, "/v1/messages");
  assert.equal(r.auth, "bearer");
  assert.equal(r.headers.authorization, undefined);
  assert.equal(r.headers["x-api-key"], undefined);
  assert.ok(r.headers["anthropic-version"]);
  assert.deepEqual(r.body?.messages, ask.messages);
  assert.equal(r.entry, "text");
  assert.equal(r.status, 200);
  assert.equal(s.requests[1]!.entry, "tool_use");
  assert.equal(s.pending(), 0);
  // Script exhausted: the fallback answers.
  const f = await client.messages.create(ask);
  assert.deepEqual(f.content, [{ type: "text", text: "ok" }]);
  assert.equal(s.requests[2]!.fromFallback, true);
});

test("streaming yields text deltas, assembles tool input from partial JSON and takes usage from message_delta", async () => {
  const input = { path: "src/greeting.ts", text: "export const hi = 'hello';\n", lines: [1, 2, 3] };
  const { s, client } = await standin({
    script: [{ kind: "tool_use", name: "write_file", input, text: "Let me write the greeting file now." }],
  });
  const stream = client.messages.stream({ ...ask, tools: [tool] });
  const deltas: string[] = [];
  const partials: string[] = [];
  const events: string[] = [];
  stream.on("text", (d) => deltas.push(d));
  stream.on("inputJson", (p) => partials.push(p));
  stream.on("streamEvent", (e) => events.push(e.type));
  const m = await stream.finalMessage();
  assert.ok(deltas.length > 3, `several text deltas, got ${deltas.length}`);
  assert.equal(deltas.join(""), "Let me write the greeting file now.");
  assert.ok(partials.filter((p) => p !== "").length > 2, `several partial_json chunks, got ${partials.length}`);
  assert.deepEqual(events, [
    "message_start",
    "content_block_start",
    ...deltas.map(() => "content_block_delta"),
    "content_block_stop",
    "content_block_start",
    ...partials.map(() => "content_block_delta"),
    "content_block_stop",
    "message_delta",
    "message_stop",
  ]);
  assert.equal(m.stop_reason, "tool_use");
  const use = m.content[1]!;
  assert.ok(use.type === "tool_use");
  assert.deepEqual(use.input, input);
  const outChars = "Let me write the greeting file now.".length + JSON.stringify(input).length;
  assert.equal(m.usage.output_tokens, Math.ceil(outChars / 4), "from message_delta, not message_start's 1");
  assert.equal(m.usage.input_tokens, countInputTokens({ ...ask, tools: [tool] }));
  assert.equal(s.requests[0]!.body?.stream, true);
});

test("the raw stream is the exact event sequence in event:/data: frames", async () => {
  const { s } = await standin({ script: [{ kind: "text", text: "hi there" }] });
  const body = JSON.stringify({ ...ask, stream: true });
  const raw = await new Promise<{ type: string; text: string }>((resolve, reject) => {
    const req = httpRequest(
      `${s.url}/v1/messages`,
      { method: "POST", headers: { "x-api-key": KEY, "anthropic-version": "2023-06-01", "content-type": "application/json" } },
      (res) => {
        let text = "";
        res.on("data", (c: Buffer) => (text += c.toString()));
        res.on("end", () => resolve({ type: String(res.headers["content-type"]), text }));
      },
    );
    req.on("error", reject);
    req.end(body);
  });
  assert.match(raw.type, /^text\/event-stream/);
  const frames = raw.text
    .split("\n\n")
    .filter(Boolean)
    .map((f) => {
      const [ev, data] = f.split("\n");
      const json = JSON.parse(data!.replace(/^data: /, "")) as { type: string };
      assert.equal(ev, `event: ${json.type}`);
      return json;
    });
  assert.deepEqual(
    frames.map((f) => f.type),
    [
      "message_start",
      "ping",
      "content_block_start",
      "content_block_delta",
      "content_block_delta",
      "content_block_stop",
      "message_delta",
      "message_stop",
    ],
  );
  assert.deepEqual((frames[0] as unknown as { message: { usage: object } }).message.usage, {
    input_tokens: countInputTokens(ask),
    output_tokens: 1,
    cache_creation_input_tokens: 0,
    cache_read_input_tokens: 0,
  });
  assert.deepEqual(frames[6], {
    type: "message_delta",
    delta: { stop_reason: "end_turn", stop_sequence: null },
    usage: { output_tokens: 2 },
  });
  assert.equal(s.requests[0]!.auth, "x-api-key");
});

test("429 is a RateLimitError with retry-after and the anthropic-ratelimit headers", async () => {
  const { client } = await standin({ script: [{ kind: "rate_limit", retryAfterSeconds: 7 }] });
  const err = await rejection(client.messages.create(ask));
  assert.ok(err instanceof Anthropic.RateLimitError, String(err));
  assert.equal(err.status, 429);
  assert.equal(err.type, "rate_limit_error");
  assert.equal(err.errorCode, null);
  assert.equal(err.headers.get("retry-after"), "7");
  assert.match(err.requestID ?? "", /^req_01/);
  for (const kind of ["requests", "input-tokens", "output-tokens"]) {
    assert.ok(Number(err.headers.get(`anthropic-ratelimit-${kind}-limit`)) > 0, kind);
    assert.equal(err.headers.get(`anthropic-ratelimit-${kind}-remaining`), "0");
    const reset = err.headers.get(`anthropic-ratelimit-${kind}-reset`) ?? "";
    assert.match(reset, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
    const inS = (Date.parse(reset) - Date.now()) / 1000;
    assert.ok(inS > 4 && inS <= 8, `reset ${reset} about retry-after from now`);
  }
});

test("529 is an OverloadedError; 500 an InternalServerError", async () => {
  const { client } = await standin({ script: [{ kind: "overloaded" }, { kind: "server_error" }] });
  const err = await rejection(client.messages.create(ask));
  assert.ok(err instanceof Anthropic.OverloadedError, String(err));
  assert.ok(err instanceof Anthropic.InternalServerError);
  assert.equal(err.status, 529);
  assert.equal(err.type, "overloaded_error");
  const e500 = await rejection(client.messages.create(ask));
  assert.ok(e500 instanceof Anthropic.InternalServerError);
  assert.equal(e500.status, 500);
  assert.equal(e500.type, "api_error");
});

test("the spend cap is a RateLimitError with error_code enforced_spend_limit_reached and no retry-after; the usage limit a BadRequestError", async () => {
  const { client } = await standin({ script: [{ kind: "spend_cap" }, { kind: "usage_limit" }] });
  const err = await rejection(client.messages.create(ask));
  assert.ok(err instanceof Anthropic.RateLimitError, String(err));
  assert.ok(err instanceof Anthropic.EnforcedSpendLimitReachedError, "the SDK maps the error_code to its own subclass");
  assert.equal((err.error as { error: { details: { error_code: string } } }).error.details.error_code, "enforced_spend_limit_reached");
  assert.equal(err.errorCode, "enforced_spend_limit_reached");
  assert.equal(err.headers.get("retry-after"), null);
  const usage = await rejection(client.messages.create(ask));
  assert.ok(usage instanceof Anthropic.BadRequestError, String(usage));
  assert.equal(usage.type, "invalid_request_error");
  assert.match(usage.apiMessage ?? "", /specified API usage limits.*regain access on 2026-12-01/);
});

test("a mid-stream error rejects finalMessage with an APIError after the first text arrived", async () => {
  const { s, client } = await standin({ script: [{ kind: "mid_stream_error", afterChars: 12, text: "Partial answer that is cut off" }] });
  const stream = client.messages.stream(ask);
  const deltas: string[] = [];
  stream.on("text", (d) => deltas.push(d));
  const err = await rejection(stream.finalMessage());
  assert.ok(err instanceof Anthropic.APIError, String(err));
  assert.equal(err.status, undefined, "an error event carries no HTTP status (the response was 200)");
  assert.equal(err.type, "overloaded_error");
  assert.equal(deltas.join(""), "Partial answ");
  assert.equal(s.requests[0]!.status, 200);
  // Non-streaming, the same entry is an overload before the answer.
  s.push({ kind: "mid_stream_error" });
  const plain = await rejection(client.messages.create(ask));
  assert.ok(plain instanceof Anthropic.OverloadedError);
});

test("a wrong or missing key is an AuthenticationError and consumes no script entry", async () => {
  const { s } = await standin({ script: [{ kind: "text", text: "secret" }] });
  const wrong = new Anthropic({ apiKey: "sk-ant-wrong", baseURL: s.url, maxRetries: 0 });
  const err = await rejection(wrong.messages.create(ask));
  assert.ok(err instanceof Anthropic.AuthenticationError, String(err));
  assert.equal(err.type, "authentication_error");
  assert.equal(err.apiMessage, "invalid x-api-key");
  assert.equal(s.requests[0]!.status, 401);
  assert.equal(s.requests[0]!.entry, null);
  assert.equal(s.answered().length, 0);
  assert.equal(s.pending(), 1);
});

test("invalid bodies are 400 invalid_request_error", async () => {
  const { s, client } = await standin();
  const cases: Array<[Record<string, unknown>, RegExp]> = [
    [{ ...ask, max_tokens: 0 }, /max_tokens/],
    [{ ...ask, max_tokens: 1.5 }, /max_tokens/],
    [{ ...ask, messages: [] }, /messages/],
    [{ ...ask, model: undefined }, /model/],
    [{ ...ask, messages: [{ role: "system", content: "x" }] }, /system/],
  ];
  for (const [body, re] of cases) {
    const err = await rejection(client.messages.create(body as never));
    assert.ok(err instanceof Anthropic.BadRequestError, String(err));
    assert.match(err.apiMessage ?? "", re);
  }
  assert.equal(s.answered().length, 0);
});

test("max_tokens truncates the output and sets stop_reason max_tokens, streaming or not", async () => {
  const text = "a long answer that will not fit in the few tokens allowed for it";
  const { client } = await standin({
    script: [
      { kind: "text", text },
      { kind: "text", text },
    ],
  });
  const m = await client.messages.create({ ...ask, max_tokens: 3 });
  assert.equal(m.stop_reason, "max_tokens");
  assert.deepEqual(m.content, [{ type: "text", text: text.slice(0, 12) }]);
  assert.equal(m.usage.output_tokens, 3);
  const streamed = await client.messages.stream({ ...ask, max_tokens: 3 }).finalMessage();
  assert.equal(streamed.stop_reason, "max_tokens");
  assert.deepEqual(streamed.content, [{ type: "text", text: text.slice(0, 12) }]);
  assert.equal(streamed.usage.output_tokens, 3);
});

test("count_tokens, script functions, setScript and stop_sequences", async () => {
  const { s, client } = await standin();
  const counted = await client.messages.countTokens({ model: MODEL, system: ask.system, messages: ask.messages });
  assert.equal(counted.input_tokens, countInputTokens(ask));
  assert.equal(s.requests[0]!.path, "/v1/messages/count_tokens");
  assert.equal(s.answered().length, 0);
  s.setScript([(req) => ({ kind: "text", text: `you said: ${(req.body?.messages as Array<{ content: string }>)[0]!.content}` })]);
  const m = await client.messages.create(ask);
  assert.deepEqual(m.content, [{ type: "text", text: "you said: Write a greeting for the team" }]);
  s.push({ kind: "text", text: "one two STOP three", inputTokens: 42, outputTokens: 5 });
  const stopped = await client.messages.create({ ...ask, stop_sequences: ["STOP"] });
  assert.equal(stopped.stop_reason, "stop_sequence");
  assert.equal(stopped.stop_sequence, "STOP");
  assert.deepEqual(stopped.content, [{ type: "text", text: "one two " }]);
  assert.deepEqual([stopped.usage.input_tokens, stopped.usage.output_tokens], [42, 5]);
});

test("hang never answers (the SDK times out or aborts); drop is a connection error; latency delays", async () => {
  const { s, client } = await standin({ script: [{ kind: "hang" }, { kind: "hang" }, { kind: "drop" }] });
  const timedOut = await rejection(client.messages.create(ask, { timeout: 200 }));
  assert.ok(timedOut instanceof Anthropic.APIConnectionTimeoutError, String(timedOut));
  const ctrl = new AbortController();
  const pending = client.messages.create(ask, { signal: ctrl.signal });
  // Aborted once the stand-in took its scripted hang (a fixed 50 ms could abort it before it was sent on a
  // loaded machine: the next call then met this one's scripted hang and waited for ever).
  while (s.requests[1]?.entry !== "hang") await new Promise((r) => setTimeout(r, 5));
  ctrl.abort();
  assert.ok((await rejection(pending)) instanceof Anthropic.APIUserAbortError);
  const dropped = await rejection(client.messages.create(ask));
  assert.ok(dropped instanceof Anthropic.APIConnectionError, String(dropped));
  assert.deepEqual(
    s.requests.map((r) => [r.entry, r.status]),
    [
      ["hang", null],
      ["hang", null],
      ["drop", null],
    ],
  );

  const slow = await standin({ latencyMs: 150 });
  const t0 = Date.now();
  await slow.client.messages.create(ask);
  assert.ok(Date.now() - t0 >= 140, `latency applied (${Date.now() - t0} ms)`);
});
