import { join } from "node:path";
import type { Farm } from "../farm.js";
import { stateDirOf } from "../farm.js";
import { runPlan, runReview, type AgentLoopOptions } from "../worker/agent-loop.js";
import { runCodegenWithEscalation } from "../worker/escalation.js";
import type { ChatMessage, GenerateOptions, Generation, ModelProvider } from "../worker/models/model-provider.js";
import { RepoMirror } from "../worker/repo-mirror.js";
import { WorkerAgent } from "../worker/worker-agent.js";

/** One model shared by several local workers: a GGUF context has one sequence, so turns take turns. */
class SharedModel implements ModelProvider {
  private chain: Promise<unknown> = Promise.resolve();
  constructor(private readonly inner: ModelProvider) {}
  get name() {
    return this.inner.name;
  }
  generate(messages: ChatMessage[], opts?: GenerateOptions): Promise<Generation> {
    const run = this.chain.then(() => this.inner.generate(messages, opts));
    this.chain = run.catch(() => undefined);
    return run;
  }
  close() {
    return this.inner.close();
  }
}

/**
 * `farm up --workers N`: N worker agents in the farm's own process (the first half codegen, the
 * rest review), so one machine runs the whole farm. They talk to the farm like remote workers do:
 * over its API and git endpoint, with worker tokens of their own (one for coders, one for reviewers).
 */
export async function startLocalWorkers(farm: Farm, count: number, model: ModelProvider, log: (msg: string) => void): Promise<() => Promise<void>> {
  const { services } = farm;
  // One token per role: a review counts only from another token than the change's author, so the
  // local reviewers must not share the local coders' token. The tokens stay in this process's memory
  // (no argv, no environment, no file); git gets them through its own environment (RepoMirror).
  // The previous run's tokens lived only in that process's memory: nobody holds them any more.
  const names = new Set(["local-workers", "local-codegen", "local-review"]);
  for (const t of services.tokens.list()) {
    if (t.role !== "worker" || t.revoked || !names.has(t.name) || !services.tokens.revoke(t.tokenId)) continue;
    await services.state.commit([{ type: "token_revoked", data: { tokenId: t.tokenId } }], "farm");
  }
  const tokens = { codegen: services.tokens.create("worker", "local-codegen"), review: services.tokens.create("worker", "local-review") };
  for (const issued of Object.values(tokens)) {
    await services.state.commit([{ type: "token_created", data: { tokenId: issued.tokenId, role: "worker", name: issued.name } }], "farm");
  }
  const shared = new SharedModel(model);
  const agents: WorkerAgent[] = [];
  const codegen = Math.max(1, Math.ceil(count / 2));
  for (let i = 0; i < count; i++) {
    const role = i < codegen ? "codegen" : "review";
    const nodeId = `local-${role}-${i + 1}`;
    const issued = tokens[role];
    const loop: AgentLoopOptions = {
      model: shared, mirror: new RepoMirror(farm.url, issued.token, join(stateDirOf(services.repo, services.config), "workers", nodeId)),
      maxIterations: 4, checkTimeoutMs: 300_000, sandbox: services.config.sandbox, maxTokens: 2_048, log: (m) => log(`${nodeId}: ${m}`), farm: { url: farm.url, token: issued.token },
    };
    const agent = new WorkerAgent({
      farmUrl: farm.url, token: issued.token,
      registration: { nodeId, role, maxConcurrentTasks: 1, model: { primary: model.name }, version: "0.1.0" },
      execute: (lease, ctx) => (lease.spec.kind === "plan" ? runPlan(lease, ctx, loop) : role === "codegen" ? runCodegenWithEscalation(lease, ctx, loop) : runReview(lease, ctx, loop)),
      log: (m) => log(`${nodeId}: ${m}`),
    });
    await agent.start();
    agents.push(agent);
  }
  log(`${count} local worker(s) joined (${codegen} codegen, ${count - codegen} review) with model ${model.name}`);
  return async () => {
    await Promise.all(agents.map((a) => a.stop()));
    await model.close();
  };
}
