import type { ChatMessage, Confidence, GenerateOptions, Generation, ModelProvider } from "./model-provider.js";

export interface OpenAiProviderOptions {
  /** the server's OpenAI base, e.g. http://127.0.0.1:8080/v1 (llama-server), http://127.0.0.1:11434/v1 (Ollama) */
  baseUrl: string;
  model: string;
  apiKey?: string;
  /** whole-request limit; a local model on a slow machine can take minutes, hence the generous default */
  timeoutMs?: number;
  /** ask for per-token logprobs (confidence); turn off for a server that refuses the field */
  logprobs?: boolean;
}

/** One parsed `chat.completion.chunk` (only the fields we read; servers add more). */
interface Chunk {
  choices?: Array<{
    delta?: { content?: string | null };
    message?: { content?: string | null };
    finish_reason?: string | null;
    logprobs?: { content?: Array<{ logprob?: number }> | null } | null;
  }>;
  usage?: { prompt_tokens?: number; completion_tokens?: number } | null;
  error?: unknown;
}

/** What a generation accumulates while the stream arrives. */
interface Acc {
  text: string;
  chunks: number;
  finish: string | null;
  usage?: { prompt_tokens?: number; completion_tokens?: number };
  logprobs: number[];
}

const DEFAULT_TIMEOUT_MS = 10 * 60_000;

/**
 * A model behind any OpenAI-compatible chat server (llama-server, Ollama, vLLM, LM Studio).
 * Always streams: a local model can take minutes, and the worker reports progress as tokens arrive.
 */
export class OpenAiCompatibleProvider implements ModelProvider {
  readonly name: string;
  private readonly baseUrl: string;

  constructor(private readonly options: OpenAiProviderOptions) {
    this.baseUrl = options.baseUrl.replace(/\/+$/, "");
    // The model's own name (what the fleet view shows), not its server's URL, whose last part is "v1".
    this.name = options.model;
  }

  async generate(messages: ChatMessage[], opts: GenerateOptions = {}): Promise<Generation> {
    const started = performance.now();
    const timeoutMs = this.options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    // Our own controller: the caller's abort and our timeout both end the request, but mean different things.
    const controller = new AbortController();
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      controller.abort();
    }, timeoutMs);
    const onAbort = (): void => controller.abort();
    opts.signal?.addEventListener("abort", onAbort, { once: true });
    const acc: Acc = { text: "", chunks: 0, finish: null, logprobs: [] };
    try {
      if (opts.signal?.aborted) return this.result(acc, "abort", started);
      const res = await this.post(messages, opts, controller.signal);
      await this.readBody(res, acc, opts);
      const reason = opts.signal?.aborted ? "abort" : acc.finish === "length" ? "length" : "stop";
      return this.result(acc, reason, started);
    } catch (err) {
      if (timedOut) throw new Error(`the model server at ${this.displayUrl()} did not finish within ${timeoutMs} ms`, { cause: err });
      if (opts.signal?.aborted) return this.result(acc, "abort", started);
      throw this.scrub(err);
    } finally {
      clearTimeout(timer);
      opts.signal?.removeEventListener("abort", onAbort);
    }
  }

  async close(): Promise<void> {
    // Nothing held open: every request's connection ends with its stream.
  }

  private requestBody(messages: ChatMessage[], opts: GenerateOptions): Record<string, unknown> {
    const body: Record<string, unknown> = {
      model: this.options.model,
      messages,
      max_tokens: opts.maxTokens ?? 2048,
      temperature: opts.temperature ?? 0,
      stream: true,
      // Without this the stream carries no token counts; servers that do not know it ignore it.
      stream_options: { include_usage: true },
    };
    if (this.options.logprobs !== false) body.logprobs = true;
    if (opts.jsonSchema) {
      body.response_format = { type: "json_schema", json_schema: { name: "output", strict: true, schema: opts.jsonSchema } };
    }
    return body;
  }

  private async post(messages: ChatMessage[], opts: GenerateOptions, signal: AbortSignal): Promise<Response> {
    const headers: Record<string, string> = { "content-type": "application/json", accept: "text/event-stream" };
    if (this.options.apiKey) headers.authorization = `Bearer ${this.options.apiKey}`;
    let res: Response;
    try {
      res = await fetch(`${this.baseUrl}/chat/completions`, {
        method: "POST",
        headers,
        body: JSON.stringify(this.requestBody(messages, opts)),
        signal,
      });
    } catch (err) {
      if (signal.aborted) throw err;
      throw this.connectionError(err);
    }
    if (!res.ok) throw new Error(`the model server at ${this.displayUrl()} answered HTTP ${res.status}: ${await errorMessage(res)}`);
    return res;
  }

  /** Reads an SSE stream, or a plain JSON completion from a server that ignores `stream: true`. */
  private async readBody(res: Response, acc: Acc, opts: GenerateOptions): Promise<void> {
    if (!res.body) throw new Error(`the model server at ${this.displayUrl()} sent an empty answer`);
    if ((res.headers.get("content-type") ?? "").includes("application/json")) {
      this.take(JSON.parse(await res.text()) as Chunk, acc, opts);
      return;
    }
    for await (const data of sseData(res.body)) {
      // Events already buffered when the caller aborted are dropped: the caller stopped listening.
      if (data === "[DONE]" || opts.signal?.aborted) return;
      let chunk: Chunk;
      try {
        chunk = JSON.parse(data) as Chunk;
      } catch {
        throw new Error(`the model server at ${this.displayUrl()} sent a stream event that is not JSON: ${data.slice(0, 200)}`);
      }
      this.take(chunk, acc, opts);
    }
    // Streams that end without [DONE] are accepted (some servers omit it); the finish reason still counts.
  }

  /** Folds one chunk (or a whole non-stream completion) into the accumulator. */
  private take(chunk: Chunk, acc: Acc, opts: GenerateOptions): void {
    // llama-server reports failures that happen mid-generation as an `error` event inside the stream.
    if (chunk.error !== undefined)
      throw new Error(`the model server at ${this.displayUrl()} failed mid-stream: ${describeError(chunk.error)}`);
    if (chunk.usage) acc.usage = chunk.usage;
    const choice = chunk.choices?.[0];
    if (!choice) return;
    const piece = choice.delta?.content ?? choice.message?.content ?? "";
    if (piece) {
      acc.text += piece;
      acc.chunks += 1;
      opts.onTokens?.(acc.chunks);
    }
    for (const lp of choice.logprobs?.content ?? []) if (typeof lp.logprob === "number") acc.logprobs.push(lp.logprob);
    if (choice.finish_reason) acc.finish = choice.finish_reason;
  }

  private result(acc: Acc, stopReason: Generation["stopReason"], started: number): Generation {
    const gen: Generation = {
      text: acc.text,
      tokens: acc.usage?.completion_tokens ?? acc.chunks,
      stopReason,
      model: this.options.model,
      elapsedMs: Math.round(performance.now() - started),
    };
    if (acc.usage?.prompt_tokens !== undefined) gen.promptTokens = acc.usage.prompt_tokens;
    const confidence = confidenceOf(acc.logprobs);
    if (confidence) gen.confidence = confidence;
    return gen;
  }

  private connectionError(err: unknown): Error {
    const code = causeCode(err);
    if (code === "ECONNREFUSED") {
      return new Error(`cannot reach the model server at ${this.displayUrl()} (connection refused): start it or pass --model <url>`);
    }
    const why = code ?? (err instanceof Error ? (err.cause instanceof Error ? err.cause.message : err.message) : String(err));
    return new Error(`cannot reach the model server at ${this.displayUrl()} (${why})`);
  }

  /** The base URL without any user:password part, for messages. */
  private displayUrl(): string {
    try {
      const u = new URL(this.baseUrl);
      u.username = "";
      u.password = "";
      return u.toString().replace(/\/+$/, "");
    } catch {
      return this.baseUrl;
    }
  }

  /** A server may echo the key back (e.g. "invalid key sk-…"): never let it reach a log. */
  private scrub(err: unknown): Error {
    const e = err instanceof Error ? err : new Error(String(err));
    const key = this.options.apiKey;
    if (key && e.message.includes(key)) e.message = e.message.split(key).join("***");
    return e;
  }
}

/** Yields the `data:` payload of each SSE event (multi-line data joined with "\n", per the SSE spec). */
async function* sseData(body: ReadableStream<Uint8Array>): AsyncGenerator<string> {
  const decoder = new TextDecoder();
  let buffer = "";
  let data: string[] = [];
  for await (const bytes of body as unknown as AsyncIterable<Uint8Array>) {
    buffer += decoder.decode(bytes, { stream: true });
    let nl: number;
    while ((nl = buffer.indexOf("\n")) >= 0) {
      const line = buffer.slice(0, nl).replace(/\r$/, "");
      buffer = buffer.slice(nl + 1);
      if (line === "") {
        if (data.length > 0) yield data.join("\n");
        data = [];
      } else if (line.startsWith("data:")) {
        data.push(line.slice(5).replace(/^ /, ""));
      } // comments (":…"), event: and id: lines carry nothing we use
    }
  }
  const last = buffer.replace(/\r$/, "");
  if (last.startsWith("data:")) data.push(last.slice(5).replace(/^ /, ""));
  if (data.length > 0) yield data.join("\n");
}

/** Mean and minimum probability of the chosen tokens. Tokens read at p=1 were forced (grammar) or trivial: left out. */
function confidenceOf(logprobs: number[]): Confidence | undefined {
  if (logprobs.length === 0) return undefined;
  const probs = logprobs.map((lp) => Math.exp(lp)).filter((p) => p < 0.999999);
  if (probs.length === 0) return { mean: 1, min: 1, tokens: 0 };
  const mean = probs.reduce((a, b) => a + b, 0) / probs.length;
  return { mean, min: Math.min(...probs), tokens: probs.length };
}

/** The server's own words for an HTTP error: OpenAI `{error:{message}}`, Ollama `{error:"…"}`, or the text. */
async function errorMessage(res: Response): Promise<string> {
  const text = await res.text().catch(() => "");
  try {
    const parsed = JSON.parse(text) as { error?: unknown; message?: unknown };
    if (parsed.error !== undefined) return describeError(parsed.error);
    if (typeof parsed.message === "string") return parsed.message;
  } catch {
    // not JSON: fall through to the raw text
  }
  return text.trim().slice(0, 500) || res.statusText || "(no message)";
}

function describeError(error: unknown): string {
  if (typeof error === "string") return error;
  if (error && typeof error === "object" && "message" in error && typeof error.message === "string") return error.message;
  return JSON.stringify(error).slice(0, 500);
}

/** undici wraps socket errors: TypeError("fetch failed") → cause (Error | AggregateError with .errors) → code. */
function causeCode(err: unknown): string | undefined {
  const cause = err instanceof Error ? (err.cause as { code?: unknown; errors?: Array<{ code?: unknown }> } | undefined) : undefined;
  if (!cause) return undefined;
  if (typeof cause.code === "string") return cause.code;
  const inner = cause.errors?.find((e) => typeof e.code === "string");
  return typeof inner?.code === "string" ? inner.code : undefined;
}
