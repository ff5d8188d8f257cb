import { chmodSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { IssuedToken } from "../auth/tokens.js";
import type { Farm } from "../farm.js";
import { stateDirOf } from "../home/farm-home.js";
import { runPlan, runReview, type AgentLoopOptions } from "../worker/agent-loop.js";
import { runCodegenWithEscalation } from "../worker/escalation.js";
import type { ChatMessage, GenerateOptions, Generation, ModelProvider } from "../worker/models/model-provider.js";
import { RepoMirror } from "../worker/repo-mirror.js";
import { FarmEndpoints } from "../client/farm-endpoints.js";
import { WorkerAgent } from "../worker/worker-agent.js";
import { within } from "./shutdown.js";

/** One model shared by several local workers: a GGUF context has one sequence, so turns take turns. */
class SharedModel implements ModelProvider {
  private chain: Promise<unknown> = Promise.resolve();
  constructor(private readonly inner: ModelProvider) {}
  get name() {
    return this.inner.name;
  }
  get backend() {
    return this.inner.backend;
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
export async function startLocalWorkers(
  farm: Farm,
  count: number,
  model: ModelProvider,
  log: (msg: string) => void,
): Promise<() => Promise<void>> {
  const { services } = farm;
  const tokens = await localWorkerTokens(farm);
  const shared = new SharedModel(model);
  const agents: WorkerAgent[] = [];
  const codegen = Math.max(1, Math.ceil(count / 2));
  // They reach the farm on this machine (a wildcard address by loopback), trusting over TLS exactly the
  // certificate it serves (its pin, as a remote worker is told to).
  const url = farm.url.replace(/^(https?:\/\/)(0\.0\.0\.0|\[::\])(?=:)/, "$1127.0.0.1");
  const trust = farm.tls ? { pins: [farm.tls.pin], pinFrom: "the farm's own tls.cert" } : {};
  for (let i = 0; i < count; i++) {
    const role = i < codegen ? "codegen" : "review";
    const nodeId = `local-${role}-${i + 1}`;
    const issued = tokens[role];
    const endpoints = new FarmEndpoints(url, trust);
    const mirror = new RepoMirror(endpoints, issued.token, join(stateDirOf(services.repo, services.config), "workers", nodeId));
    await mirror.cleanup(); // worktrees a killed run left behind, as a remote worker does at its start
    const loop: AgentLoopOptions = {
      model: shared,
      mirror,
      maxIterations: 4,
      checkTimeoutMs: 300_000,
      sandbox: services.config.sandbox,
      maxTokens: 2_048,
      log: (m) => log(`${nodeId}: ${m}`),
      farm: { url, token: issued.token },
    };
    const agent = new WorkerAgent({
      farmUrl: endpoints,
      token: issued.token,
      registration: { nodeId, role, maxConcurrentTasks: 1, model: { primary: model.name }, version: "0.1.0" },
      execute: (lease, ctx) =>
        lease.spec.kind === "plan"
          ? runPlan(lease, ctx, loop)
          : role === "codegen"
            ? runCodegenWithEscalation(lease, ctx, loop)
            : runReview(lease, ctx, loop),
      log: (m) => log(`${nodeId}: ${m}`),
    });
    await agent.start();
    agents.push(agent);
  }
  log(
    `${count} local worker(s) joined (${codegen} codegen, ${count - codegen} review) with model ${model.name}${model.backend ? ` on ${model.backend}` : ""}`,
  );
  return async () => {
    // Their checks are killed and model turns cut short; leases left behind expire on the farm.
    await Promise.all(agents.map((a) => a.stop(2_000)));
    // A GGUF model finishes the prompt it is reading before it can be freed: not waited for long.
    await within(1_500, () => model.close());
  };
}

type Role = "codegen" | "review";
const TOKEN_NAMES: Record<Role, string> = { codegen: "local-codegen", review: "local-review" };
/** names local workers' tokens had before (one shared token): retired when found */
const RETIRED_NAMES = new Set(["local-workers"]);

/** Where the local workers' tokens are kept between starts: the farm's state folder, in its home (0600). */
export const localWorkerTokensFile = (farm: Farm) =>
  join(stateDirOf(farm.services.repo, farm.services.config), "local-workers.tokens.json");

/**
 * One worker token per role, the same over every start: a review counts only from another token
 * than the change's author, so the local reviewers do not share the local coders' token. The tokens
 * are kept in the farm's state folder (in its home, mode 0600, never mounted in a sandbox) and reused
 * (renewed at each start) while the token store still holds them unrevoked; otherwise a new one is
 * made and kept. Other local-worker
 * tokens left by earlier versions (a token minted per start) are revoked, so `optimus token list`
 * shows one per role. They never reach argv or the environment; git gets them through its own
 * environment (RepoMirror).
 */
async function localWorkerTokens(farm: Farm): Promise<Record<Role, IssuedToken>> {
  const { services } = farm;
  const file = localWorkerTokensFile(farm);
  let kept: Partial<Record<Role, string>> = {};
  try {
    kept = JSON.parse(readFileSync(file, "utf8")) as Partial<Record<Role, string>>;
  } catch {
    // first start, or an unreadable file: new tokens are made below
  }
  const out = {} as Record<Role, IssuedToken>;
  for (const role of ["codegen", "review"] as const) {
    const presented = typeof kept[role] === "string" ? kept[role] : undefined;
    // The farm holds these tokens itself: each start renews them (a worker token expires a day
    // after its last use), so a farm stopped for longer than that keeps its workers' tokens.
    const p = presented ? await services.tokens.renewHeld(presented) : null;
    if (p && p.role === "worker" && p.name === TOKEN_NAMES[role]) {
      out[role] = { ...p, token: presented! };
      continue;
    }
    const issued = await services.tokens.create("worker", TOKEN_NAMES[role]);
    await services.state.commit([{ type: "token_created", data: { tokenId: issued.tokenId, role: "worker", name: issued.name } }], "farm");
    out[role] = issued;
  }
  writeFileSync(file, JSON.stringify({ codegen: out.codegen.token, review: out.review.token }) + "\n", { mode: 0o600 });
  chmodSync(file, 0o600); // also when the file was already there
  const keep = new Set([out.codegen.tokenId, out.review.tokenId]);
  for (const t of await services.tokens.list()) {
    const local = t.name === TOKEN_NAMES.codegen || t.name === TOKEN_NAMES.review || RETIRED_NAMES.has(t.name);
    if (t.role !== "worker" || t.revoked || !local || keep.has(t.tokenId) || !(await services.tokens.revoke(t.tokenId))) continue;
    await services.state.commit([{ type: "token_revoked", data: { tokenId: t.tokenId } }], "farm");
  }
  return out;
}
