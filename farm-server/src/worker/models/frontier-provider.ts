import type { UnitResultInput } from "@optimus/shared";
import type { LeaseContext } from "../worker-agent.js";
import type { ChatMessage, GenerateOptions, Generation, ModelProvider } from "./model-provider.js";

/**
 * The frontier model as the agent loop sees it: every generation is an escalation through the
 * farm's gateway (the worker never holds a key). Structured answers come through the edit tool, so
 * the loop parses them exactly as it parses a local model's JSON.
 */
export class FrontierProvider implements ModelProvider {
  name = "frontier (via the farm's gateway)";
  /** what the calls cost, as the farm charged them */
  costUsd = 0;

  constructor(
    private readonly ctx: LeaseContext,
    private readonly signals: { confidence?: number; checksFailed?: number },
  ) {}

  async generate(messages: ChatMessage[], opts: GenerateOptions = {}): Promise<Generation> {
    const started = performance.now();
    const system = messages
      .filter((m) => m.role === "system")
      .map((m) => m.content)
      .join("\n\n");
    // The Messages API wants alternating turns: join consecutive ones of the same role.
    const turns: Array<{ role: "user" | "assistant"; content: string }> = [];
    for (const m of messages) {
      if (m.role === "system") continue;
      const last = turns[turns.length - 1];
      if (last && last.role === m.role) last.content += `\n\n${m.content}`;
      else turns.push({ role: m.role, content: m.content });
    }
    const answer = await this.ctx.escalate({
      system,
      messages: turns,
      maxTokens: opts.maxTokens ?? 4_096,
      editTool: opts.jsonSchema !== undefined,
      signals: this.signals,
    });
    this.costUsd += answer.costUsd;
    this.name = answer.model;
    opts.onTokens?.(answer.usage.outputTokens);
    return {
      text: answer.edits !== undefined ? JSON.stringify(answer.edits) : answer.text,
      tokens: answer.usage.outputTokens,
      promptTokens: answer.usage.inputTokens,
      stopReason: answer.stopReason === "max_tokens" ? "length" : "stop",
      model: answer.model,
      elapsedMs: Math.round(performance.now() - started),
    };
  }

  async close(): Promise<void> {}
}

/** A local attempt that ended asking for the frontier (the agent loop's "needs escalation"). */
export const needsEscalation = (r: UnitResultInput): boolean => r.outcome === "failed" && /^needs escalation/.test(r.summary ?? "");
