// A GGUF model run in-process with node-llama-cpp, on the backend `--gpu` chose (llama-backend.ts).
//
// Generation uses the low-level `LlamaContextSequence.evaluateWithMetadata(tokens, { confidence: true })`
// loop rather than `LlamaChatSession`: the high-level chat APIs give no token probabilities, and the
// confidence signal is the point of running the model locally. What the chat session would otherwise
// do for us is small and done here: render the chat with the model's own template (its chat wrapper),
// stop on the template's end-of-turn triggers, and apply a JSON-schema grammar.
// Not done (LlamaChat's extras): context shifting (a prompt that does not fit is an error, output stops
// at the context's end with "length"), function calling, and separating a reasoning model's
// <think>…</think> segment from the answer (it stays in `text`).
import { availableParallelism } from "node:os";
import { closeSync, openSync, readSync, statSync } from "node:fs";
import { basename, resolve } from "node:path";
import {
  LlamaGrammarEvaluationState,
  LlamaLogLevel,
  LlamaText,
  resolveChatWrapper,
  type ChatHistoryItem,
  type ChatWrapper,
  type GbnfJsonSchema,
  type Llama,
  type LlamaContext,
  type LlamaContextSequence,
  type LlamaGrammar,
  type LlamaModel,
  type Token,
} from "node-llama-cpp";
import type { ChatMessage, Confidence, GenerateOptions, Generation, ModelProvider } from "./model-provider.js";
import { backendPackage, describeBackend, GpuUnavailableError, openBackend } from "./llama-backend.js";
import type { GpuChoice } from "./gpu-choice.js";

export interface LlamaProviderOptions {
  /** path to a .gguf file */
  modelPath: string;
  /** CPU threads for evaluation; default {@link defaultLlamaThreads} */
  threads?: number;
  /** tokens the context holds (prompt + output); default min(the model's training context, 8192) */
  contextSize?: number;
  /** how the operator sets the context size (a flag or a settings key), named where it is too small or too large */
  contextHint?: string;
  /**
   * Read each chosen token's probability (default true). It is not free: at temperature 0 llama.cpp's
   * candidates are unsorted and node-llama-cpp sorts the whole vocabulary per token to report it,
   * ≈ 2 ms/token at a 32k vocabulary and ≈ 10 ms at 152k on a 2.6 GHz core.
   */
  confidence?: boolean;
  /** the llama.cpp backend: auto (default: the best usable GPU, else the CPU), metal, cuda, vulkan or cpu */
  gpu?: GpuChoice;
  /** the flag that sets it, named when it cannot be used (default "--gpu") */
  gpuFlag?: string;
}

const DEFAULT_MAX_TOKENS = 1024;
const DEFAULT_CONTEXT = 8192;

/**
 * The thread count to use when the worker's settings give none: 1 on machines with ≤ 2 logical cores
 * (the prebuilt llama.cpp binary becomes pathologically slow there with more threads: 0.2–4 tok/s
 * instead of 70+), else the physical core count. `mathCores` is node-llama-cpp's `llama.cpuMathCores`
 * (llama.cpp's own count of cores useful for math, i.e. physical cores without hyper-threads on x86);
 * without it, half the logical cores approximates physical cores on SMT machines.
 */
export function defaultLlamaThreads(mathCores?: number, logicalCores = availableParallelism()): number {
  if (logicalCores <= 2) return 1;
  return Math.max(1, Math.min(logicalCores, mathCores ?? Math.floor(logicalCores / 2)));
}

const pullHint = "download one with `optimus model pull <uri>`";

/** A stop trigger in the form it is matched: plain text against the output, else a token suffix. */
type Trigger = { text: string } | { tokens: Token[] };

export class LlamaProvider implements ModelProvider {
  readonly name: string;
  private queue: Promise<unknown> = Promise.resolve();
  private closed = false;
  private readonly grammars = new Map<string, Promise<LlamaGrammar>>();

  private constructor(
    private readonly llama: Llama,
    private readonly model: LlamaModel,
    private readonly context: LlamaContext,
    private readonly sequence: LlamaContextSequence,
    private readonly chatWrapper: ChatWrapper,
    readonly threads: number,
    readonly modelPath: string,
    private readonly withConfidence: boolean,
    private readonly contextHint: string,
    /** where it runs, for the worker's start-up line: "CPU", "CUDA (…), 33/33 layers on the GPU" */
    readonly backend: string,
  ) {
    this.name = basename(modelPath)
      .replace(/\.gguf$/i, "")
      .replace(/-\d{5}-of-\d{5}$/, ""); // split models: the name, not the part
  }

  /** Loads the model and creates a one-sequence context; never downloads or builds anything. */
  static async open(opts: LlamaProviderOptions): Promise<LlamaProvider> {
    const modelPath = resolve(opts.modelPath);
    const st = statSync(modelPath, { throwIfNoEntry: false });
    if (!st) throw new Error(`no model at ${modelPath}: ${pullHint}, or set the worker's model path`);
    if (!st.isFile()) throw new Error(`model path ${modelPath} is not a file: point it at a .gguf file, or ${pullHint}`);
    if (!hasGgufMagic(modelPath)) throw new Error(`${modelPath} is not a GGUF model file (it does not start with "GGUF"): ${pullHint}`);
    if (opts.threads !== undefined && !(Number.isInteger(opts.threads) && opts.threads >= 1))
      throw new Error(`threads must be a whole number ≥ 1, got ${opts.threads}`);

    // llama.cpp reports why a load failed only through its log: while opening, error lines are kept
    // for the thrown message instead of being printed; afterwards they go to stderr.
    let captured: string[] | undefined = [];
    const logger = (level: LlamaLogLevel, message: string) => {
      if (level !== LlamaLogLevel.error && level !== LlamaLogLevel.fatal) return;
      if (captured) captured.push(message.trim().replace(/^\w+: /, ""));
      else process.stderr.write(`[llama.cpp] ${message.trim()}\n`);
    };
    let llama: Llama;
    let gpuLayers: 0 | undefined;
    const gpu = opts.gpu ?? "auto";
    try {
      // build:"never": a prebuilt binary from an @node-llama-cpp/<platform> package, never a source
      // download or a cmake build at run time
      ({ llama, gpuLayers } = await openBackend(gpu, { logLevel: LlamaLogLevel.error, logger }, opts.gpuFlag));
    } catch (e) {
      if (e instanceof GpuUnavailableError) throw e;
      throw new Error(
        `node-llama-cpp has no usable prebuilt binary for ${process.platform}-${process.arch} (${errText(e)}): install ${await backendPackage("cpu")} beside optimus (or \`npm ci\` in a clone)`,
        { cause: e },
      );
    }
    const threads = opts.threads ?? defaultLlamaThreads(llama.cpuMathCores);
    llama.maxThreads = threads; // the Llama-wide cap (default max(cores, 4)); the context's count is a hint under it
    let model: LlamaModel | undefined;
    try {
      try {
        // gpuLayers "auto" (the default) offloads what fits in the GPU's memory
        model = await llama.loadModel({ modelPath, ...(gpuLayers === 0 ? { gpuLayers } : {}) });
      } catch (e) {
        throw new Error(
          `could not load the model at ${modelPath} (${captured[0] ?? errText(e)}): is it a complete GGUF file? ${pullHint}`,
          { cause: e },
        );
      }
      const contextSize = opts.contextSize ?? Math.min(model.trainContextSize || DEFAULT_CONTEXT, DEFAULT_CONTEXT);
      const context = await model.createContext({ contextSize, threads, sequences: 1 }).catch((e: unknown) => {
        throw new Error(
          `could not create a ${contextSize}-token context for ${modelPath} (${captured?.[0] ?? errText(e)}): set a smaller one with ${opts.contextHint ?? "contextSize"}`,
        );
      });
      // the chat wrapper follows the model's own template (tokenizer.chat_template), or a built-in
      // wrapper recognised from the model's name/tokens, else a general fallback
      captured = undefined;
      const backend = await describeBackend(llama, model, gpu);
      return new LlamaProvider(
        llama,
        model,
        context,
        context.getSequence(),
        resolveChatWrapper(model),
        threads,
        modelPath,
        opts.confidence ?? true,
        opts.contextHint ?? "contextSize",
        backend,
      );
    } catch (e) {
      await model?.dispose().catch(() => {});
      await llama.dispose().catch(() => {});
      throw e;
    }
  }

  /** tokens the context holds (prompt + output) */
  get contextSize(): number {
    return this.context.contextSize;
  }

  generate(messages: ChatMessage[], opts: GenerateOptions = {}): Promise<Generation> {
    // one sequence: generations run one at a time, in call order
    const run = this.queue.then(() => this.run(messages, opts));
    this.queue = run.catch(() => {});
    return run;
  }

  /** Waits for the running generation (abort it first to be quick), then frees the model. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.queue;
    await this.context.dispose();
    await this.model.dispose();
    await this.llama.dispose();
  }

  private async run(messages: ChatMessage[], opts: GenerateOptions): Promise<Generation> {
    if (this.closed) throw new Error(`model ${this.name} is closed`);
    const t0 = performance.now();
    const { model, sequence } = this;
    const done = (
      text: string,
      tokens: number,
      stopReason: Generation["stopReason"],
      promptTokens?: number,
      confidence?: Confidence,
    ): Generation => ({ text, tokens, promptTokens, stopReason, confidence, model: this.name, elapsedMs: performance.now() - t0 });
    if (opts.signal?.aborted) return done("", 0, "abort");

    // A trailing assistant message is continued (a prefill); otherwise the template opens a new turn.
    const history: ChatHistoryItem[] = messages.map((m) =>
      m.role === "assistant" ? { type: "model", response: [m.content] } : { type: m.role, text: m.content },
    );
    if (messages.at(-1)?.role !== "assistant") history.push({ type: "model", response: [] });
    const state = this.chatWrapper.generateContextState({ chatHistory: history });
    const prompt = state.contextText.tokenize(model.tokenizer);
    const room = this.context.contextSize - prompt.length;
    if (room <= 0)
      throw new Error(
        `the prompt is ${prompt.length} tokens but ${this.name}'s context holds ${this.context.contextSize}: raise it with ${this.contextHint} (the model was trained on ${this.model.trainContextSize || "?"}), or give the unit fewer files`,
      );
    const limit = Math.min(opts.maxTokens ?? DEFAULT_MAX_TOKENS, room);

    const grammar = opts.jsonSchema ? await this.grammarFor(opts.jsonSchema) : undefined;
    const triggers = [...state.stopGenerationTriggers, ...(grammar?.stopGenerationTriggers ?? [])].map((t) => this.trigger(t));
    const window = Math.max(0, ...triggers.map((t) => ("text" in t ? Buffer.byteLength(t.text) + 1 : 0)));

    const input = await this.reusePrefix(prompt);
    const out: Token[] = [];
    const confs: number[] = [];
    let stopReason: Generation["stopReason"] = "stop";
    let cut: { tokens: number } | { text: string } | undefined;
    const it = sequence.evaluateWithMetadata(
      input,
      { confidence: this.withConfidence },
      {
        temperature: opts.temperature ?? 0, // greedy by default: reproducible output, and confidence is then the model's own probability
        grammarEvaluationState: grammar ? new LlamaGrammarEvaluationState({ model, grammar }) : undefined,
      },
    );
    // the iterator ends by itself on an end-of-generation token (EOS, or the template's end of turn)
    for await (const item of it) {
      const { token } = item;
      const { confidence } = item as { confidence?: number }; // absent when confidence is off
      out.push(token);
      if (confidence !== undefined) confs.push(confidence);
      opts.onTokens?.(out.length);
      cut = this.matchTrigger(triggers, out, window);
      if (cut) break;
      if (opts.signal?.aborted) {
        stopReason = "abort";
        break;
      } // checked per token: prompt evaluation runs to its end
      if (out.length >= limit) {
        stopReason = "length";
        break;
      }
    }

    let text: string;
    if (cut && "tokens" in cut) text = model.detokenize(out.slice(0, out.length - cut.tokens));
    else {
      text = model.detokenize(out);
      const at = cut ? text.indexOf(cut.text) : -1;
      if (at >= 0) text = text.slice(0, at);
    }
    if (grammar?.trimWhitespaceSuffix) text = text.trimEnd(); // the JSON grammar allows trailing newlines
    return done(text, out.length, stopReason, prompt.length, this.withConfidence ? summarize(confs) : undefined);
  }

  /**
   * Keeps the longest prefix of the sequence's cached tokens that the new prompt shares (a worker often
   * resends the same system prompt), and returns the rest of the prompt to evaluate. At least one
   * token is always evaluated, since its logits pick the first output token.
   */
  private async reusePrefix(prompt: Token[]): Promise<Token[]> {
    const cached = this.sequence.contextTokens;
    let keep = 0;
    while (keep < cached.length && keep < prompt.length - 1 && cached[keep] === prompt[keep]) keep++;
    try {
      if (keep < this.sequence.nextTokenIndex)
        await this.sequence.eraseContextTokenRanges([{ start: keep, end: this.sequence.nextTokenIndex }]);
      return prompt.slice(keep);
    } catch {
      await this.sequence.clearHistory(); // a model whose cache cannot be cut mid-way: start over
      return prompt;
    }
  }

  private grammarFor(schema: Record<string, unknown>): Promise<LlamaGrammar> {
    const key = JSON.stringify(schema);
    let g = this.grammars.get(key);
    if (!g) {
      // the schema is only known at run time; node-llama-cpp's type wants a literal to infer the output type
      // from, and its converter throws on what it cannot express
      g = this.llama.createGrammarForJsonSchema(schema as GbnfJsonSchema as never);
      g.catch(() => this.grammars.delete(key));
      this.grammars.set(key, g);
    }
    return g;
  }

  private trigger(t: LlamaText | string | readonly (string | Token)[]): Trigger {
    if (typeof t === "string") return { text: t };
    if (LlamaText.isLlamaText(t))
      return t.values.every((v) => typeof v === "string") ? { text: t.values.join("") } : { tokens: t.tokenize(this.model.tokenizer) };
    const parts = t as readonly (string | Token)[];
    return parts.every((v) => typeof v === "string")
      ? { text: parts.join("") }
      : { tokens: parts.flatMap((v) => (typeof v === "string" ? this.model.tokenize(v, false, "trimLeadingSpace") : [v])) };
  }

  /** A trigger that the output now ends with (tokens) or contains (text: decoded over a short tail). */
  private matchTrigger(triggers: Trigger[], out: Token[], window: number): { tokens: number } | { text: string } | undefined {
    const tail = window > 0 ? this.model.detokenize(out.slice(-window)) : "";
    for (const t of triggers) {
      if ("text" in t) {
        if (t.text && tail.includes(t.text)) return { text: t.text };
      } else if (
        t.tokens.length > 0 &&
        t.tokens.length <= out.length &&
        t.tokens.every((tok, i) => out[out.length - t.tokens.length + i] === tok)
      ) {
        return { tokens: t.tokens.length };
      }
    }
    return undefined;
  }
}

/**
 * Confidence over the tokens where the model had a real choice. With a grammar, the sampler masks out
 * every token the grammar forbids before the probability is read, so a token the grammar forces reads
 * exactly 1.0 — as does one whose alternatives all underflow float32; neither says anything about
 * doubt, so tokens reading exactly 1 are left out. At temperature 0 (the default) the rest is the
 * model's own probability renormalised over the grammar-allowed tokens; at temperature > 0 it is read
 * after top-k/top-p truncation and temperature scaling, so it runs higher. No choice at all → 1/1/0.
 */
function summarize(confs: number[]): Confidence {
  const real = confs.filter((c) => c < 1);
  if (real.length === 0) return { mean: 1, min: 1, tokens: 0 };
  let sum = 0,
    min = 1;
  for (const c of real) {
    sum += c;
    min = Math.min(min, c);
  }
  return { mean: sum / real.length, min, tokens: real.length };
}

/** A quick check before loading the native library: GGUF files start with the bytes "GGUF". */
function hasGgufMagic(file: string): boolean {
  const fd = openSync(file, "r");
  try {
    const b = Buffer.alloc(4);
    return readSync(fd, b, 0, 4, 0) === 4 && b.toString("latin1") === "GGUF";
  } finally {
    closeSync(fd);
  }
}

function errText(e: unknown): string {
  return (e instanceof Error ? e.message : String(e)).split("\n")[0]!;
}
