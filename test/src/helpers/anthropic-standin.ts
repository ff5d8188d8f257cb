/**
 * A loopback stand-in for the Anthropic Messages API (the frontier cannot be reached from the test
 * machines). It speaks the wire protocol the real API speaks, checked against `@anthropic-ai/sdk`:
 * `POST /v1/messages` (JSON or `text/event-stream` with the real event sequence), `POST
 * /v1/messages/count_tokens`, `{type:"error",error:{type,message},request_id}` bodies, `request-id`
 * and `anthropic-ratelimit-*` headers. Each valid message request consumes the next script entry (or
 * the fallback when the script is empty); `requests` records everything that reached it, so tests can
 * prove what did (and did not) reach the frontier.
 */
import { createServer, type IncomingHttpHeaders, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";

/** A reply scripted for one request. */
export type StandinEntry =
  /** an assistant text reply; usage is derived from the request and text unless given */
  | { kind: "text"; text: string; inputTokens?: number; outputTokens?: number }
  /** a tool call (after an optional text block), stop_reason "tool_use" */
  | {
      kind: "tool_use";
      name: string;
      input: Record<string, unknown>;
      text?: string;
      id?: string;
      inputTokens?: number;
      outputTokens?: number;
    }
  /** 429 rate_limit_error with retry-after (when given) and anthropic-ratelimit-* headers */
  | { kind: "rate_limit"; retryAfterSeconds?: number }
  /** 529 overloaded_error */
  | { kind: "overloaded" }
  /** 429 rate_limit_error with details.error_code "enforced_spend_limit_reached" and no retry-after */
  | { kind: "spend_cap" }
  /** 400 invalid_request_error "You have reached your specified API usage limits…" */
  | { kind: "usage_limit" }
  /** 500 api_error */
  | { kind: "server_error" }
  /**
   * A stream that starts normally, sends `afterChars` characters of `text` (default 10), then an
   * `event: error` (overloaded_error) and ends. A non-streaming request gets a 529 instead, as the
   * real API answers an overload before it has begun.
   */
  | { kind: "mid_stream_error"; afterChars?: number; text?: string }
  /** accepts the request and never answers (timeouts, abort) */
  | { kind: "hang" }
  /** destroys the socket without answering */
  | { kind: "drop" };

export type StandinEntryKind = StandinEntry["kind"];
export type StandinScriptEntry = StandinEntry | ((req: StandinRequest) => StandinEntry);

export interface StandinRequest {
  /** Date.now() when the request arrived */
  at: number;
  method: string;
  /** path without the query, e.g. "/v1/messages" */
  path: string;
  /** the request headers, without `authorization` and `x-api-key` */
  headers: IncomingHttpHeaders;
  /** how the key was sent ("bearer" is what the SDK does), null when no key was sent */
  auth: "x-api-key" | "bearer" | null;
  /** the parsed JSON body (undefined when it was not JSON) */
  body: Record<string, unknown> | undefined;
  /** the kind of entry that answered; null when rejected before the script (auth, validation, count_tokens) */
  entry: StandinEntryKind | null;
  /** true when the answer came from `fallback` because the script was empty */
  fromFallback: boolean;
  /** HTTP status sent; null while unanswered (hang) or when the socket was dropped */
  status: number | null;
}

export interface AnthropicStandinOptions {
  /** the key requests must carry (x-api-key or Authorization: Bearer); default DEFAULT_STANDIN_KEY */
  apiKey?: string;
  script?: StandinScriptEntry[];
  /** the answer when the script is empty; default a text reply "ok" */
  fallback?: StandinScriptEntry;
  /** pause before answering every /v1/messages request */
  latencyMs?: number;
  /** pause between streamed events (to test progress and abort mid-stream) */
  chunkDelayMs?: number;
}

export interface AnthropicStandin {
  /** base URL for `new Anthropic({ baseURL })` (no /v1: the SDK adds it) */
  url: string;
  apiKey: string;
  /** every request that reached the stand-in, in order (rejected ones too) */
  requests: StandinRequest[];
  /** only the /v1/messages requests that consumed a script or fallback entry */
  answered(): StandinRequest[];
  /** replaces the queue of pending entries */
  setScript(entries: StandinScriptEntry[]): void;
  /** appends entries to the queue */
  push(...entries: StandinScriptEntry[]): void;
  /** entries not yet consumed */
  pending(): number;
  close(): Promise<void>;
}

export const DEFAULT_STANDIN_KEY = "sk-ant-api03-standin-key";

/** Limits reported in the anthropic-ratelimit-* headers. */
const LIMITS = { requests: 50, "input-tokens": 30000, "output-tokens": 8000 } as const;

class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly type: string,
    message: string,
    readonly extra: { details?: Record<string, unknown>; headers?: Record<string, string> } = {},
  ) {
    super(message);
  }
}

export async function startAnthropicStandin(opts: AnthropicStandinOptions = {}): Promise<AnthropicStandin> {
  const apiKey = opts.apiKey ?? DEFAULT_STANDIN_KEY;
  const requests: StandinRequest[] = [];
  let queue: StandinScriptEntry[] = [...(opts.script ?? [])];
  const fallback: StandinScriptEntry = opts.fallback ?? { kind: "text", text: "ok" };

  const handle = async (req: IncomingMessage, res: ServerResponse, rec: StandinRequest, requestId: string): Promise<void> => {
    const raw = await readAll(req);
    try {
      const parsed: unknown = raw === "" ? undefined : JSON.parse(raw);
      if (parsed && typeof parsed === "object" && !Array.isArray(parsed)) rec.body = parsed as Record<string, unknown>;
    } catch {
      /* validated below */
    }
    if (rec.path !== "/v1/messages" && rec.path !== "/v1/messages/count_tokens") throw new ApiError(404, "not_found_error", "Not Found");
    if (req.method !== "POST") throw new ApiError(405, "invalid_request_error", `Method Not Allowed`);
    checkAuth(req, apiKey);
    if (!req.headers["anthropic-version"]) throw new ApiError(400, "invalid_request_error", "anthropic-version: header is required");
    const body = validate(raw, rec.path === "/v1/messages");
    if (rec.path === "/v1/messages/count_tokens") {
      rec.status = 200;
      return sendJson(res, 200, { input_tokens: countInputTokens(body) }, requestId);
    }

    const next = queue.shift();
    rec.fromFallback = next === undefined;
    const scripted = next ?? fallback;
    const entry = typeof scripted === "function" ? scripted(rec) : scripted;
    rec.entry = entry.kind;
    if (opts.latencyMs) await sleep(opts.latencyMs);
    const stream = body.stream === true;
    switch (entry.kind) {
      case "hang":
        return; // never answers; close() or the client's abort ends the socket
      case "drop":
        rec.status = null;
        req.socket.destroy();
        return;
      case "rate_limit": {
        const headers = rateLimitHeaders(entry.retryAfterSeconds ?? 60, true);
        if (entry.retryAfterSeconds !== undefined) headers["retry-after"] = String(entry.retryAfterSeconds);
        throw new ApiError(429, "rate_limit_error", "Number of request tokens has exceeded your per-minute rate limit", { headers });
      }
      case "overloaded":
        throw new ApiError(529, "overloaded_error", "Overloaded");
      case "spend_cap":
        throw new ApiError(
          429,
          "rate_limit_error",
          "You have reached your organization's monthly usage limit. Raise your spend limit in the Console to continue.",
          { details: { error_code: "enforced_spend_limit_reached" } },
        );
      case "usage_limit":
        throw new ApiError(
          400,
          "invalid_request_error",
          "You have reached your specified API usage limits. You will regain access on 2026-12-01 at 00:00 UTC.",
        );
      case "server_error":
        throw new ApiError(500, "api_error", "Internal server error");
      case "mid_stream_error": {
        if (!stream) throw new ApiError(529, "overloaded_error", "Overloaded");
        const text = entry.text ?? "This answer is interrupted by an overload before it ends.";
        const reply = buildReply(body, { kind: "text", text: text.slice(0, entry.afterChars ?? 10) });
        rec.status = 200;
        return streamReply(res, reply, requestId, opts.chunkDelayMs ?? 0, true);
      }
      case "text":
      case "tool_use": {
        const reply = buildReply(body, entry);
        rec.status = 200;
        if (stream) return streamReply(res, reply, requestId, opts.chunkDelayMs ?? 0, false);
        return sendJson(res, 200, messageJson(reply), requestId, rateLimitHeaders(0, false));
      }
    }
  };

  const server = createServer((req, res) => {
    const requestId = makeId("req_");
    const { authorization, "x-api-key": xApiKey, ...headers } = req.headers;
    const rec: StandinRequest = {
      at: Date.now(),
      method: req.method ?? "GET",
      path: (req.url ?? "/").split("?")[0] ?? "/",
      headers,
      auth: xApiKey !== undefined ? "x-api-key" : authorization !== undefined ? "bearer" : null,
      body: undefined,
      entry: null,
      fromFallback: false,
      status: null,
    };
    requests.push(rec);
    handle(req, res, rec, requestId).catch((err: unknown) => {
      const e = err instanceof ApiError ? err : new ApiError(500, "api_error", `stand-in failure: ${String(err)}`);
      if (res.headersSent || res.destroyed) return void res.end();
      rec.status = e.status;
      const error: Record<string, unknown> = { type: e.type, message: e.message };
      if (e.extra.details) error.details = e.extra.details;
      sendJson(res, e.status, { type: "error", error, request_id: requestId }, requestId, e.extra.headers);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    apiKey,
    requests,
    answered: () => requests.filter((r) => r.entry !== null),
    setScript: (entries) => void (queue = [...entries]),
    push: (...entries) => void queue.push(...entries),
    pending: () => queue.length,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

function checkAuth(req: IncomingMessage, apiKey: string): void {
  const x = req.headers["x-api-key"];
  const bearer = /^Bearer (.+)$/.exec(req.headers.authorization ?? "")?.[1];
  if (x === undefined && bearer === undefined) throw new ApiError(401, "authentication_error", "x-api-key header is required");
  if ((x ?? bearer) !== apiKey) throw new ApiError(401, "authentication_error", "invalid x-api-key");
}

/** The checks the real API answers with 400 invalid_request_error (extra fields are accepted here). */
function validate(raw: string, needsMaxTokens: boolean): Record<string, unknown> {
  let body: unknown;
  try {
    body = JSON.parse(raw);
  } catch {
    throw bad("There was an error parsing the body of your request. Please ensure the body is valid JSON.");
  }
  if (!body || typeof body !== "object" || Array.isArray(body)) throw bad("The request body must be a JSON object.");
  const b = body as Record<string, unknown>;
  if (b.model === undefined) throw bad("model: Field required");
  if (typeof b.model !== "string" || b.model === "") throw bad("model: Input should be a valid string");
  if (needsMaxTokens) {
    if (b.max_tokens === undefined) throw bad("max_tokens: Field required");
    if (!Number.isInteger(b.max_tokens) || (b.max_tokens as number) < 1)
      throw bad("max_tokens: Input should be greater than or equal to 1");
  }
  if (b.messages === undefined) throw bad("messages: Field required");
  if (!Array.isArray(b.messages)) throw bad("messages: Input should be a valid list");
  if (b.messages.length === 0) throw bad("messages: at least one message is required");
  b.messages.forEach((m: unknown, i) => {
    const msg = m as { role?: unknown; content?: unknown } | null;
    if (msg?.role === "system")
      throw bad(
        `messages.${i}.role: Unexpected role "system". The Messages API accepts a top-level \`system\` parameter, not "system" as an input message role.`,
      );
    if (msg?.role !== "user" && msg?.role !== "assistant") throw bad(`messages.${i}.role: Input should be 'user' or 'assistant'`);
    if (typeof msg.content !== "string" && !Array.isArray(msg.content))
      throw bad(`messages.${i}.content: Input should be a valid string or list`);
  });
  if (b.system !== undefined && typeof b.system !== "string" && !Array.isArray(b.system))
    throw bad("system: Input should be a valid string or list");
  if (b.stream !== undefined && typeof b.stream !== "boolean") throw bad("stream: Input should be a valid boolean");
  return b;
}

const bad = (message: string): ApiError => new ApiError(400, "invalid_request_error", message);

/** The text of a content value: strings as they are, text blocks' text, other blocks as their JSON. */
function contentChars(content: unknown): number {
  if (typeof content === "string") return content.length;
  if (!Array.isArray(content)) return 0;
  let n = 0;
  for (const block of content as Array<Record<string, unknown>>) {
    if (block?.type === "text" && typeof block.text === "string") n += block.text.length;
    else if (block?.type === "tool_result") n += contentChars(block.content);
    else n += JSON.stringify(block).length;
  }
  return n;
}

/**
 * The deterministic input token count: ceil(characters / 4) over the system prompt, every message's
 * content (text as is, other blocks as JSON) and the tool definitions as JSON. At least 1.
 */
export function countInputTokens(body: Record<string, unknown>): number {
  let chars = contentChars(body.system);
  for (const m of (body.messages as Array<{ content?: unknown }> | undefined) ?? []) chars += contentChars(m.content);
  if (Array.isArray(body.tools) && body.tools.length > 0) chars += JSON.stringify(body.tools).length;
  return Math.max(1, Math.ceil(chars / 4));
}

/** ≈4 characters a token, the rate output tokens are counted and max_tokens is applied at. */
export function countOutputTokens(chars: number): number {
  return Math.ceil(chars / 4);
}

interface Reply {
  model: string;
  text: string | null;
  tool: { id: string; name: string; input: Record<string, unknown>; json: string; truncated: boolean } | null;
  stopReason: "end_turn" | "tool_use" | "max_tokens" | "stop_sequence";
  stopSequence: string | null;
  inputTokens: number;
  outputTokens: number;
}

/** Applies stop_sequences and max_tokens to the scripted reply, the way the model's output would end. */
function buildReply(body: Record<string, unknown>, entry: Extract<StandinEntry, { kind: "text" | "tool_use" }>): Reply {
  const maxTokens = body.max_tokens as number;
  let text: string | null = entry.kind === "text" ? entry.text : (entry.text ?? null);
  let json = entry.kind === "tool_use" ? JSON.stringify(entry.input) : "";
  let stopReason: Reply["stopReason"] = entry.kind === "tool_use" ? "tool_use" : "end_turn";
  let stopSequence: string | null = null;
  const stops = Array.isArray(body.stop_sequences)
    ? (body.stop_sequences as unknown[]).filter((s): s is string => typeof s === "string" && s !== "")
    : [];
  if (text !== null) {
    let cut = -1;
    for (const s of stops) {
      const at = text.indexOf(s);
      if (at >= 0 && (cut < 0 || at < cut)) [cut, stopSequence] = [at, s];
    }
    if (cut >= 0) {
      text = text.slice(0, cut);
      json = "";
      stopReason = "stop_sequence";
    }
  }
  let keepTool = entry.kind === "tool_use" && stopReason !== "stop_sequence";
  let truncated = false;
  const budget = maxTokens * 4;
  if (countOutputTokens((text?.length ?? 0) + json.length) > maxTokens) {
    stopReason = "max_tokens";
    stopSequence = null;
    if (text !== null && text.length >= budget) {
      text = text.slice(0, budget);
      keepTool = false;
    } else {
      json = json.slice(0, budget - (text?.length ?? 0));
      truncated = true;
    }
  }
  const outChars = (text?.length ?? 0) + (keepTool ? json.length : 0);
  return {
    model: body.model as string,
    text,
    tool:
      keepTool && entry.kind === "tool_use"
        ? { id: entry.id ?? makeId("toolu_"), name: entry.name, input: truncated ? {} : entry.input, json, truncated }
        : null,
    stopReason,
    stopSequence,
    inputTokens: entry.inputTokens ?? countInputTokens(body),
    outputTokens: Math.min(entry.outputTokens ?? countOutputTokens(outChars), maxTokens),
  };
}

function contentBlocks(r: Reply): Array<Record<string, unknown>> {
  const blocks: Array<Record<string, unknown>> = [];
  if (r.text !== null && (r.text !== "" || r.tool === null)) blocks.push({ type: "text", text: r.text });
  if (r.tool) blocks.push({ type: "tool_use", id: r.tool.id, name: r.tool.name, input: r.tool.input });
  return blocks;
}

function messageJson(r: Reply): Record<string, unknown> {
  return {
    id: makeId("msg_"),
    type: "message",
    role: "assistant",
    model: r.model,
    content: contentBlocks(r),
    stop_reason: r.stopReason,
    stop_sequence: r.stopSequence,
    usage: {
      input_tokens: r.inputTokens,
      cache_creation_input_tokens: 0,
      cache_read_input_tokens: 0,
      output_tokens: r.outputTokens,
    },
  };
}

/**
 * The real event sequence: message_start (usage output_tokens 1), ping, per block
 * content_block_start / content_block_delta… / content_block_stop, message_delta (stop_reason and
 * the final output_tokens), message_stop. With `failAfterText`, the stream stops after the text
 * deltas with an `event: error` (overloaded_error) and ends.
 */
async function streamReply(res: ServerResponse, r: Reply, requestId: string, delayMs: number, failAfterText: boolean): Promise<void> {
  res.writeHead(200, {
    "content-type": "text/event-stream; charset=utf-8",
    "cache-control": "no-cache",
    connection: "keep-alive",
    "request-id": requestId,
    ...rateLimitHeaders(0, false),
  });
  let gone = false;
  res.on("close", () => (gone = true));
  const send = async (type: string, data: Record<string, unknown>): Promise<boolean> => {
    if (gone) return false;
    res.write(`event: ${type}\ndata: ${JSON.stringify({ type, ...data })}\n\n`);
    if (delayMs > 0) await sleep(delayMs);
    return !gone;
  };
  const msg = messageJson(r);
  const start = { ...msg, content: [], stop_reason: null, stop_sequence: null, usage: { ...(msg.usage as object), output_tokens: 1 } };
  if (!(await send("message_start", { message: start }))) return;
  if (!(await send("ping", {}))) return;
  let index = 0;
  if (r.text !== null && (r.text !== "" || r.tool === null || failAfterText)) {
    if (!(await send("content_block_start", { index, content_block: { type: "text", text: "" } }))) return;
    for (const piece of splitText(r.text)) {
      if (!(await send("content_block_delta", { index, delta: { type: "text_delta", text: piece } }))) return;
    }
    if (failAfterText) {
      res.end(`event: error\ndata: ${JSON.stringify({ type: "error", error: { type: "overloaded_error", message: "Overloaded" } })}\n\n`);
      return;
    }
    if (!(await send("content_block_stop", { index }))) return;
    index++;
  }
  if (r.tool) {
    if (!(await send("content_block_start", { index, content_block: { type: "tool_use", id: r.tool.id, name: r.tool.name, input: {} } })))
      return;
    for (const piece of ["", ...splitJson(r.tool.json)]) {
      if (!(await send("content_block_delta", { index, delta: { type: "input_json_delta", partial_json: piece } }))) return;
    }
    if (!(await send("content_block_stop", { index }))) return;
  }
  if (
    !(await send("message_delta", {
      delta: { stop_reason: r.stopReason, stop_sequence: r.stopSequence },
      usage: { output_tokens: r.outputTokens },
    }))
  )
    return;
  if (gone) return;
  res.end(`event: message_stop\ndata: ${JSON.stringify({ type: "message_stop" })}\n\n`);
}

/** Several text deltas: words with their trailing space, long words cut to 8 characters. */
function splitText(text: string): string[] {
  return text.match(/\S{1,8}\s*|\s+/g) ?? [];
}

/** Tool input JSON in several partial_json chunks of up to 12 characters. */
function splitJson(json: string): string[] {
  return json.match(/[\s\S]{1,12}/g) ?? [];
}

/** anthropic-ratelimit-* headers; `exhausted` reports nothing remaining until `resetSeconds` from now. */
function rateLimitHeaders(resetSeconds: number, exhausted: boolean): Record<string, string> {
  const reset = new Date(Date.now() + Math.max(resetSeconds, 1) * 1000).toISOString().replace(/\.\d{3}Z$/, "Z");
  const headers: Record<string, string> = {};
  for (const [name, limit] of Object.entries(LIMITS)) {
    headers[`anthropic-ratelimit-${name}-limit`] = String(limit);
    headers[`anthropic-ratelimit-${name}-remaining`] = String(exhausted ? 0 : limit - 1);
    headers[`anthropic-ratelimit-${name}-reset`] = reset;
  }
  return headers;
}

function sendJson(res: ServerResponse, status: number, value: unknown, requestId: string, headers: Record<string, string> = {}): void {
  const text = JSON.stringify(value);
  res.writeHead(status, {
    "content-type": "application/json",
    "content-length": Buffer.byteLength(text),
    "request-id": requestId,
    ...headers,
  });
  res.end(text);
}

async function readAll(req: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of req) chunks.push(c as Buffer);
  return Buffer.concat(chunks).toString("utf8");
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

const ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
/** ids shaped like the real ones: msg_01…, toolu_01…, req_01… followed by 22 base-62 characters */
function makeId(prefix: string): string {
  let s = `${prefix}01`;
  for (let i = 0; i < 22; i++) s += ALPHABET[Math.floor(Math.random() * ALPHABET.length)];
  return s;
}
