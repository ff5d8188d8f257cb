// Measure: local-model generation speed through LlamaProvider against the same generation done with
// bare node-llama-cpp calls (same GGUF file, threads and context size; greedy, no grammar), median of
// 3 runs each. The ratio is the provider's own overhead: chat-template rendering, stop-trigger checks,
// progress callbacks and above all the per-token confidence (node-llama-cpp sorts the whole vocabulary
// per token to report it at temperature 0), which is why the model has a realistic 32k vocabulary and
// why the provider is also measured with confidence off.
// The model is a synthetic GGUF (no real model can be downloaded here) wide enough that a token costs
// real matrix work; its random weights mean the text is noise, which does not matter for speed.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { getLlama, LlamaLogLevel, resolveChatWrapper, type Token } from "node-llama-cpp";
import { LlamaProvider } from "@optimus/farm-server/dist/worker/models/llama-provider.js";
import type { ChatMessage } from "@optimus/farm-server/dist/worker/models/model-provider.js";
import { writeTinyGguf } from "../helpers/gguf.js";
import { median } from "./stats.js";

export interface LlamaBenchOptions {
  /** tokens to generate per run (default 300) */
  tokens?: number;
  /** runs per side; the median is reported (default 3) */
  runs?: number;
  /** default: the provider's own default for this machine */
  threads?: number;
  /** synthetic model shape (default 4 layers × 256 wide, ≈ 9 MB of F32 weights) */
  layers?: number;
  width?: number;
  /** vocabulary size (default 32,000, as Llama 2 / Mistral; Qwen's is 152k) */
  vocabSize?: number;
}

export interface LlamaBenchResult {
  providerTokensPerSec: number;
  rawTokensPerSec: number;
  /** provider ÷ raw: 1.0 means no overhead */
  ratio: number;
  threads: number;
  /** tokens generated per run (the same on both sides: greedy decoding of the same prompt) */
  tokens: number;
  /** the provider opened with `confidence: false`: what the per-token probability costs */
  providerNoConfidenceTokensPerSec: number;
  /** bare node-llama-cpp asked for the same per-token confidence (evaluateWithMetadata): the like-for-like baseline */
  rawConfidenceTokensPerSec: number;
  vocabSize: number;
}

const CONTEXT = 1024;
const MESSAGES: ChatMessage[] = [
  { role: "system", content: "You write TypeScript." },
  { role: "user", content: "Write a token bucket rate limiter." },
];

export async function benchLlamaTokens(opts: LlamaBenchOptions = {}): Promise<LlamaBenchResult> {
  const { tokens: want = 300, runs = 3, layers = 4, width = 256, vocabSize = 32_000 } = opts;
  const dir = mkdtempSync(join(tmpdir(), "optimus-llama-bench-"));
  const modelPath = join(dir, "bench.gguf");
  writeTinyGguf(modelPath, { seed: 3, layers, width, vocabSize });
  try {
    // 1. through the provider: as configured by default (with confidence), then without it
    const viaProvider = async (confidence: boolean) => {
      const provider = await LlamaProvider.open({
        modelPath,
        contextSize: CONTEXT,
        confidence,
        ...(opts.threads ? { threads: opts.threads } : {}),
      });
      const rates: number[] = [];
      let tokens = 0;
      try {
        await provider.generate(MESSAGES, { maxTokens: 8 }); // warm-up
        for (let i = 0; i < runs; i++) {
          let seen = 0;
          const t0 = performance.now();
          const g = await provider.generate(MESSAGES, { maxTokens: want, onTokens: (n) => (seen = n) });
          const ms = performance.now() - t0;
          if (seen !== g.tokens) throw new Error("progress callback count mismatch");
          tokens = g.tokens;
          rates.push((g.tokens / ms) * 1000);
        }
      } finally {
        await provider.close();
      }
      return { rate: median(rates), tokens, threads: provider.threads };
    };
    const withConf = await viaProvider(true);
    const noConf = await viaProvider(false);
    const { threads, tokens: providerTokens } = withConf;

    // 2. bare node-llama-cpp: render the same prompt, evaluate greedily, stop on EOG or the count
    const llama = await getLlama({ gpu: false, build: "never", logLevel: LlamaLogLevel.error, maxThreads: threads });
    const rawRates: number[] = [];
    const rawConfRates: number[] = [];
    let rawTokens = 0;
    try {
      const model = await llama.loadModel({ modelPath });
      const context = await model.createContext({ contextSize: CONTEXT, threads, sequences: 1 });
      const sequence = context.getSequence();
      const history = [
        { type: "system" as const, text: MESSAGES[0]!.content },
        { type: "user" as const, text: MESSAGES[1]!.content },
        { type: "model" as const, response: [] },
      ];
      const chatWrapper = resolveChatWrapper(model); // once, as the provider does at open (it is slow: it inspects the template)
      const once = async (max: number, confidence = false): Promise<number> => {
        await sequence.clearHistory();
        const prompt = chatWrapper.generateContextState({ chatHistory: history }).contextText.tokenize(model.tokenizer);
        const out: Token[] = [];
        if (confidence) {
          for await (const { token } of sequence.evaluateWithMetadata(prompt, { confidence: true }, { temperature: 0 })) {
            out.push(token);
            if (out.length >= max) break;
          }
        } else {
          for await (const token of sequence.evaluate(prompt, { temperature: 0 })) {
            out.push(token);
            if (out.length >= max) break;
          }
        }
        model.detokenize(out);
        return out.length;
      };
      await once(8); // warm-up
      for (let i = 0; i < runs; i++) {
        const t0 = performance.now();
        rawTokens = await once(want);
        rawRates.push((rawTokens / (performance.now() - t0)) * 1000);
        const t1 = performance.now();
        const n = await once(want, true);
        rawConfRates.push((n / (performance.now() - t1)) * 1000);
      }
    } finally {
      await llama.dispose();
    }
    if (rawTokens !== providerTokens || noConf.tokens !== providerTokens)
      throw new Error(`provider generated ${providerTokens}/${noConf.tokens} tokens, raw ${rawTokens}: not the same work`);
    const rawTokensPerSec = median(rawRates);
    return {
      providerTokensPerSec: withConf.rate,
      rawTokensPerSec,
      ratio: withConf.rate / rawTokensPerSec,
      threads,
      tokens: providerTokens,
      providerNoConfidenceTokensPerSec: noConf.rate,
      rawConfidenceTokensPerSec: median(rawConfRates),
      vocabSize,
    };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
