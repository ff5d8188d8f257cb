import Anthropic from "@anthropic-ai/sdk";
import { editProposalJsonSchema } from "@optimus/shared";

/** The tool through which the frontier model answers in the workers' edit protocol. */
export const EDIT_TOOL = {
  name: "propose_edits",
  description: "Propose the complete set of edits for this unit, in the edit format the worker applies.",
  input_schema: editProposalJsonSchema as unknown as Anthropic.Tool.InputSchema,
};
export const EDIT_TOOL_BYTES = Buffer.byteLength(JSON.stringify(EDIT_TOOL));

export interface FrontierRequest {
  apiKey: string;
  baseUrl?: string;
  model: string;
  system: string;
  messages: Array<{ role: "user" | "assistant"; content: string }>;
  maxTokens: number;
  editTool: boolean;
  timeoutMs: number;
  signal?: AbortSignal;
  /** the gateway's request id, sent as the call's metadata so the provider's logs can be matched */
  requestId?: string;
}

export interface FrontierResult {
  text: string;
  edits?: unknown;
  stopReason: string | null;
  usage: { inputTokens: number; outputTokens: number };
  model: string;
}

/**
 * One streamed Messages API call through the official SDK, with its retries off: the gateway owns
 * retry policy (the SDK would honour any `retry-after`, uncapped). A fresh client per call, so the
 * resolved key lives only as long as the call. `usageSoFar` is kept up to date while streaming, so a
 * call that dies mid-stream can still be charged what it used.
 */
export async function callFrontier(r: FrontierRequest, usageSoFar: { inputTokens: number; outputTokens: number }): Promise<FrontierResult> {
  const client = new Anthropic({ apiKey: r.apiKey, baseURL: r.baseUrl, maxRetries: 0, timeout: r.timeoutMs });
  const stream = client.messages.stream(
    {
      model: r.model,
      max_tokens: r.maxTokens,
      ...(r.system ? { system: r.system } : {}),
      messages: r.messages,
      ...(r.requestId ? { metadata: { user_id: r.requestId } } : {}),
      ...(r.editTool ? { tools: [EDIT_TOOL], tool_choice: { type: "tool" as const, name: EDIT_TOOL.name } } : {}),
    },
    { signal: r.signal },
  );
  stream.on("streamEvent", (ev) => {
    if (ev.type === "message_start") {
      usageSoFar.inputTokens = ev.message.usage.input_tokens;
      usageSoFar.outputTokens = ev.message.usage.output_tokens;
    } else if (ev.type === "message_delta") usageSoFar.outputTokens = ev.usage.output_tokens;
  });
  const msg = await stream.finalMessage();
  let text = "";
  let edits: unknown;
  for (const block of msg.content) {
    if (block.type === "text") text += block.text;
    else if (block.type === "tool_use" && block.name === EDIT_TOOL.name) edits = block.input;
  }
  usageSoFar.inputTokens = msg.usage.input_tokens;
  usageSoFar.outputTokens = msg.usage.output_tokens;
  return {
    text,
    edits,
    stopReason: msg.stop_reason,
    usage: { inputTokens: msg.usage.input_tokens, outputTokens: msg.usage.output_tokens },
    model: msg.model,
  };
}

export type ErrorClass =
  "rate_limited" | "overloaded" | "spend_cap" | "network" | "server" | "refused" | "mid_stream" | "aborted" | "secret";

export interface ClassifiedError {
  errorClass: ErrorClass;
  message: string;
  /** the provider's `retry-after`, in ms */
  retryAfterMs?: number;
  /** `anthropic-ratelimit-*-remaining` headers, when the provider sent them */
  remaining?: { requests?: number; inputTokens?: number; outputTokens?: number };
  /** whether the provider may have generated (and charged) tokens before failing */
  mayHaveCharged: boolean;
}

/** Sorts a failed call into the classes the gateway treats differently. Never includes the key. */
export function classify(err: unknown, streamed: boolean): ClassifiedError {
  if (err instanceof Anthropic.APIUserAbortError)
    return { errorClass: "aborted", message: "the call was cancelled", mayHaveCharged: streamed };
  if (err instanceof Anthropic.APIConnectionError)
    return { errorClass: "network", message: `could not reach the frontier API: ${err.message}`, mayHaveCharged: false };
  if (err instanceof Anthropic.APIError) {
    const body = (err.error ?? {}) as { error?: { type?: string; message?: string; details?: { error_code?: string } } };
    const type = body.error?.type;
    const message = (body.error?.message ?? err.message).slice(0, 500);
    const status = err.status;
    if (status === undefined) return { errorClass: "mid_stream", message: `the stream failed: ${message}`, mayHaveCharged: true };
    const spendCap =
      body.error?.details?.error_code === "enforced_spend_limit_reached" ||
      (status === 400 && /usage limits|credit balance/i.test(message));
    if (spendCap) return { errorClass: "spend_cap", message, mayHaveCharged: false };
    if (status === 429) {
      const h = err.headers;
      const num = (k: string) => {
        const v = h?.get(k);
        return v === null || v === undefined || v === "" ? undefined : Number(v);
      };
      const ra = num("retry-after");
      return {
        errorClass: "rate_limited",
        message,
        mayHaveCharged: false,
        retryAfterMs: ra !== undefined && Number.isFinite(ra) ? ra * 1000 : undefined,
        remaining: {
          requests: num("anthropic-ratelimit-requests-remaining"),
          inputTokens: num("anthropic-ratelimit-input-tokens-remaining"),
          outputTokens: num("anthropic-ratelimit-output-tokens-remaining"),
        },
      };
    }
    if (status === 529 || type === "overloaded_error") return { errorClass: "overloaded", message, mayHaveCharged: false };
    if (status >= 500) return { errorClass: "server", message, mayHaveCharged: false };
    return { errorClass: "refused", message: `${status} ${type ?? ""}: ${message}`.trim(), mayHaveCharged: false };
  }
  return { errorClass: "network", message: (err as Error)?.message ?? String(err), mayHaveCharged: false };
}
