/**
 * A loopback stand-in for an OpenAI-compatible chat server (llama-server, Ollama, vLLM) that replays
 * scripted completions: the tests cannot run a model that writes sensible code, so each request
 * consumes the next script entry. It speaks the wire protocol like the real servers do: status codes,
 * `{error:{message,type}}` bodies, `text/event-stream` chunks ending in `data: [DONE]`.
 */
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";

export interface StandinMessage {
  role: string;
  content: string;
}

export interface StandinRequest {
  messages: StandinMessage[];
  /** the whole parsed request body */
  body: Record<string, unknown>;
}

export type ScriptEntry = string | ((req: StandinRequest) => string);

export interface StandinOptions {
  script: ScriptEntry[];
  /** when set, requests must carry `authorization: Bearer <apiKey>` */
  apiKey?: string;
  /** the model id reported by /v1/models and in completions */
  model?: string;
  /** pause between streamed chunks, to test progress and abort */
  chunkDelayMs?: number;
  /** behave like a server that ignores stream_options.include_usage (no usage chunk) */
  omitUsage?: boolean;
  /** the logprob reported for every chunk when the request asks for logprobs */
  logprob?: number;
}

export interface Standin {
  /** base URL ending in /v1 */
  url: string;
  /** every well-formed chat-completions request, in order */
  requests: StandinRequest[];
  close(): Promise<void>;
}

class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly type: string,
    readonly code: string | null = null,
  ) {
    super(message);
  }
}

export async function startOpenAiStandin(opts: StandinOptions): Promise<Standin> {
  const requests: StandinRequest[] = [];
  let next = 0;
  const model = opts.model ?? "standin-model";

  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const path = (req.url ?? "/").split("?")[0];
    checkAuth(req, opts.apiKey);
    if (req.method === "GET" && path === "/v1/models") {
      return sendJson(res, 200, { object: "list", data: [{ id: model, object: "model", created: now(), owned_by: "optimus-standin" }] });
    }
    if (path !== "/v1/chat/completions")
      throw new HttpError(404, `Unknown request URL: ${req.method} ${path}`, "invalid_request_error", "unknown_url");
    if (req.method !== "POST") throw new HttpError(405, `Method ${req.method} not allowed`, "invalid_request_error");
    const body = parseBody(await readAll(req));
    const request: StandinRequest = { messages: body.messages as StandinMessage[], body };
    requests.push(request);
    const entry = opts.script[next++];
    if (entry === undefined) {
      throw new HttpError(
        500,
        `stand-in script exhausted: request ${next} has no scripted completion (the script has ${opts.script.length})`,
        "server_error",
      );
    }
    const full = typeof entry === "function" ? entry(request) : entry;
    const { content, finish } = truncate(full, body.max_tokens);
    const usage = {
      prompt_tokens: countTokens(request.messages.map((m) => m.content).join("\n")),
      completion_tokens: countTokens(content),
    };
    usage.completion_tokens = Math.min(usage.completion_tokens, typeof body.max_tokens === "number" ? body.max_tokens : Infinity);
    const withUsage = { ...usage, total_tokens: usage.prompt_tokens + usage.completion_tokens };
    if (body.stream === true) {
      const includeUsage = !opts.omitUsage && (body.stream_options as { include_usage?: unknown } | undefined)?.include_usage === true;
      await stream(res, {
        model,
        content,
        finish,
        usage: includeUsage ? withUsage : null,
        logprob: body.logprobs === true ? (opts.logprob ?? -0.1) : null,
        delayMs: opts.chunkDelayMs ?? 0,
      });
    } else {
      sendJson(res, 200, {
        id: completionId(),
        object: "chat.completion",
        created: now(),
        model,
        choices: [{ index: 0, message: { role: "assistant", content }, logprobs: null, finish_reason: finish }],
        usage: withUsage,
      });
    }
  };

  const server = createServer((req, res) => {
    handle(req, res).catch((err: unknown) => {
      const e = err instanceof HttpError ? err : new HttpError(500, String(err), "server_error");
      if (res.headersSent) return void res.end();
      sendJson(res, e.status, { error: { message: e.message, type: e.type, param: null, code: e.code } });
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/v1`,
    requests,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

function checkAuth(req: IncomingMessage, apiKey: string | undefined): void {
  if (apiKey === undefined) return;
  // Same shape as llama-server's answer for --api-key; it does not echo the key back.
  if (req.headers.authorization !== `Bearer ${apiKey}`)
    throw new HttpError(401, "Invalid API Key", "authentication_error", "invalid_api_key");
}

/** Validates the fields real servers reject with 400; unknown extra fields are accepted, as they are there. */
function parseBody(raw: string): Record<string, unknown> {
  let body: unknown;
  try {
    body = JSON.parse(raw);
  } catch {
    throw new HttpError(400, "We could not parse the JSON body of your request.", "invalid_request_error");
  }
  if (!body || typeof body !== "object" || Array.isArray(body))
    throw new HttpError(400, "The request body must be a JSON object.", "invalid_request_error");
  const b = body as Record<string, unknown>;
  if (typeof b.model !== "string" || b.model === "") throw bad("you must provide a model parameter");
  if (!Array.isArray(b.messages) || b.messages.length === 0) throw bad("'messages' must be a non-empty array");
  b.messages.forEach((m: unknown, i) => {
    const msg = m as { role?: unknown; content?: unknown } | null;
    if (!msg || !["system", "user", "assistant", "developer", "tool"].includes(msg.role as string))
      throw bad(`Invalid value for 'messages[${i}].role'`);
    if (typeof msg.content !== "string") throw bad(`Invalid type for 'messages[${i}].content': expected a string`);
  });
  if (b.max_tokens !== undefined && !(Number.isInteger(b.max_tokens) && (b.max_tokens as number) > 0))
    throw bad("'max_tokens' must be a positive integer");
  if (b.stream !== undefined && typeof b.stream !== "boolean") throw bad("'stream' must be a boolean");
  checkResponseFormat(b.response_format);
  return b;
}

function checkResponseFormat(rf: unknown): void {
  if (rf === undefined) return;
  const f = rf as { type?: unknown; json_schema?: { name?: unknown; schema?: unknown } };
  if (!["text", "json_object", "json_schema"].includes(f?.type as string)) throw bad("Invalid value for 'response_format.type'");
  if (f.type !== "json_schema") return;
  if (typeof f.json_schema?.name !== "string") throw bad("Missing required parameter: 'response_format.json_schema.name'");
  if (!f.json_schema.schema || typeof f.json_schema.schema !== "object")
    throw bad("Missing required parameter: 'response_format.json_schema.schema'");
}

const bad = (message: string): HttpError => new HttpError(400, message, "invalid_request_error");

/** Streams the content in several chunks, the way the servers do: role first, then deltas, finish, usage, [DONE]. */
async function stream(
  res: ServerResponse,
  s: { model: string; content: string; finish: string; usage: object | null; logprob: number | null; delayMs: number },
): Promise<void> {
  res.writeHead(200, { "content-type": "text/event-stream", "cache-control": "no-cache", connection: "keep-alive" });
  // 'close' before we end means the client went away (abort): stop generating, like a real server.
  let gone = false;
  res.on("close", () => (gone = true));
  const id = completionId();
  const created = now();
  const send = (choices: unknown[], usage?: object): boolean =>
    res.write(
      `data: ${JSON.stringify({ id, object: "chat.completion.chunk", created, model: s.model, choices, ...(usage ? { usage } : {}) })}\n\n`,
    );
  const pieces = splitChunks(s.content);
  for (const [i, piece] of pieces.entries()) {
    if (gone) return;
    const delta = i === 0 ? { role: "assistant", content: piece } : { content: piece };
    const logprobs =
      s.logprob === null ? null : { content: [{ token: piece, logprob: s.logprob, bytes: [...Buffer.from(piece)], top_logprobs: [] }] };
    send([{ index: 0, delta, logprobs, finish_reason: null }]);
    if (s.delayMs > 0) await new Promise((r) => setTimeout(r, s.delayMs));
  }
  if (gone) return;
  send([{ index: 0, delta: {}, logprobs: null, finish_reason: s.finish }]);
  if (s.usage) send([], s.usage);
  res.end("data: [DONE]\n\n");
}

/** Several chunks per completion: words with their trailing space, long words cut to 8 characters. */
function splitChunks(content: string): string[] {
  const pieces = content.match(/\S{1,8}\s*|\s+/g) ?? [];
  return pieces.length > 0 ? pieces : [""];
}

/** A rough token count (≈4 characters a token), enough for usage numbers and max_tokens. */
function countTokens(text: string): number {
  return Math.ceil(text.length / 4);
}

function truncate(content: string, maxTokens: unknown): { content: string; finish: "stop" | "length" } {
  if (typeof maxTokens !== "number" || countTokens(content) <= maxTokens) return { content, finish: "stop" };
  return { content: content.slice(0, maxTokens * 4), finish: "length" };
}

function sendJson(res: ServerResponse, status: number, value: unknown): void {
  const text = JSON.stringify(value);
  res.writeHead(status, { "content-type": "application/json", "content-length": Buffer.byteLength(text) });
  res.end(text);
}

async function readAll(req: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of req) chunks.push(c as Buffer);
  return Buffer.concat(chunks).toString("utf8");
}

const now = (): number => Math.floor(Date.now() / 1000);
const completionId = (): string => `chatcmpl-${Math.random().toString(36).slice(2, 14)}`;
