import { existsSync } from "node:fs";
import { homedir, hostname } from "node:os";
import { join, resolve } from "node:path";
import { UnitRole } from "@optimus/shared";
import { runPlan, runReview, type AgentLoopOptions } from "../worker/agent-loop.js";
import { runCodegenWithEscalation } from "../worker/escalation.js";
import type { ModelProvider } from "../worker/models/model-provider.js";
import { OpenAiCompatibleProvider } from "../worker/models/openai-provider.js";
import { FarmEndpoints, tlsOnlyError } from "../client/farm-endpoints.js";
import { trustErrorIn } from "../client/farm-trust.js";
import { errorCode } from "../client/farm-client.js";
import { RepoMirror } from "../worker/repo-mirror.js";
import { WorkerAgent } from "../worker/worker-agent.js";
import { connection, type GlobalOptions } from "./context.js";
import { CliError, describeError, EXIT } from "./errors.js";
import type { GpuChoice } from "../worker/models/gpu-choice.js";
import { gpuChoice } from "./gpu-option.js";
import { z } from "zod";
import { resolveSandbox } from "../sandbox/index.js";
import { exitSoon, firstStopSignal, STOP_DEADLINE_MS, within } from "./shutdown.js";
import { cliLogs } from "./logging.js";
import { networkCause } from "../worker/reachability.js";

export interface WorkerOptions extends GlobalOptions {
  role: string;
  model?: string;
  modelName?: string;
  maxConcurrent?: string;
  threads?: string;
  nodeId?: string;
  workDir?: string;
  maxIterations?: string;
  sandbox?: string;
  contextSize?: string;
  gpu?: string;
  logLevel?: string;
  logFile?: string;
}

/** How a model opens: CPU threads, context size and backend for a GGUF file, and the flags that set them (for messages). */
export interface ModelOpenOptions {
  threads?: number;
  contextSize?: number;
  contextHint?: string;
  gpu?: GpuChoice;
  /** the flag --gpu came from: `--gpu` for a worker, `--worker-gpu` for the farm's own workers */
  gpuFlag?: string;
}

const fixModel = (flag: string) =>
  `pass ${flag} <file.gguf> or ${flag} http://host:port/v1 (llama-server, Ollama, vLLM, LM Studio); download a GGUF with \`optimus model pull <uri>\``;

/**
 * Opens the worker's local model, or says in one line why it cannot and what fixes it, naming the
 * flag the model came from (`--model` for a worker, `--worker-model` for the farm's own workers).
 */
export async function openModel(
  model: string | undefined,
  name: string | undefined,
  o: ModelOpenOptions = {},
  flag = "--model",
): Promise<ModelProvider> {
  if (!model) throw new CliError(`no model: ${fixModel(flag)}`);
  if (/^https?:\/\//.test(model)) {
    const base = model.replace(/\/+$/, "");
    let problem: string | null = null;
    try {
      const res = await fetch(`${base}/models`, { signal: AbortSignal.timeout(5_000) });
      await res.body?.cancel();
      if (!res.ok && res.status !== 404) problem = `it answered HTTP ${res.status} at ${base}/models`;
    } catch (err) {
      problem = networkCause(err, 5_000);
    }
    if (problem)
      throw new CliError(
        `cannot reach the model server at ${base}: ${problem}; start it, or check the URL given with ${flag} (an OpenAI-compatible server's /v1 URL, e.g. http://127.0.0.1:11434/v1)`,
      );
    return new OpenAiCompatibleProvider({ baseUrl: base, model: name ?? "local" });
  }
  const path = resolve(model);
  if (!existsSync(path)) throw new CliError(`no model at ${path}: ${fixModel(flag)}`);
  // Loaded lazily: node-llama-cpp is large and only GGUF workers need it.
  const { LlamaProvider } = await import("../worker/models/llama-provider.js");
  try {
    return await LlamaProvider.open({
      modelPath: path,
      ...(o.threads ? { threads: o.threads } : {}),
      ...(o.contextSize ? { contextSize: o.contextSize } : {}),
      contextHint: o.contextHint ?? "--context-size <n>",
      gpu: o.gpu ?? "auto",
      gpuFlag: o.gpuFlag ?? "--gpu",
    });
  } catch (err) {
    // an explicit GPU this machine cannot use is a setting to change, as a bad value is
    const usage = (err as Error).name === "GpuUnavailableError";
    throw new CliError((err as Error).message.split("\n")[0]!, usage ? EXIT.usage : EXIT.failure);
  }
}

const int = (v: string | undefined, name: string, min = 1): number | undefined => {
  if (v === undefined) return undefined;
  if (!/^\d+$/.test(v) || Number(v) < min) throw new CliError(`--${name} must be a whole number ≥ ${min}, got '${v}'`, 2);
  return Number(v);
};

/** Why the farm's first node refuses this worker's connection for good (its certificate, its scheme), or null. */
async function refusedBy(farm: FarmEndpoints): Promise<string | null> {
  try {
    const r = await farm.fetch(`${farm.current}/healthz`, { signal: AbortSignal.timeout(5_000) });
    await r.body?.cancel();
    return tlsOnlyError(r, farm.current)?.message ?? null;
  } catch (err) {
    return trustErrorIn(err)?.message ?? null;
  }
}

/** `optimus worker`: one worker agent on this node, until Ctrl-C. */
export async function workerCommand(o: WorkerOptions): Promise<void> {
  const role = UnitRole.safeParse(o.role);
  if (!role.success) throw new CliError(`--role must be codegen or review, got '${o.role}'`, 2);
  const maxConcurrent = int(o.maxConcurrent, "max-concurrent") ?? 1;
  const threads = int(o.threads, "threads");
  const maxIterations = int(o.maxIterations, "max-iterations") ?? 4;
  const contextSize = int(o.contextSize, "context-size", 256);
  const gpu = gpuChoice(o.gpu);
  const { say, flush } = cliLogs(o);
  // Lines still buffered are written before the command's one-line error (printed by main).
  try {
    const sandboxSetting = z.enum(["auto", "bwrap", "sandbox-exec", "none"]).safeParse(o.sandbox ?? "auto");
    if (!sandboxSetting.success) throw new CliError(`--sandbox must be auto, bwrap, sandbox-exec or none, got '${o.sandbox}'`, 2);
    // Checks run code a model wrote: no sandbox, no worker (unless the operator said `none`).
    const sandbox = await resolveSandbox(sandboxSetting.data, "unit checks").catch((err: Error) => {
      throw new CliError(err.message, 1);
    });
    if (sandbox.note) say.warn(sandbox.note);
    const { url, token, trust } = connection(o);
    // A worker runs for days: its token should not sit in `ps` for every user of the node to read.
    if (o.token)
      say.warn("a token given with --token is visible to other users in `ps`; prefer --token-file <file> (mode 0600) or OPTIMUS_TOKEN");
    // Read once; nothing the worker starts later (git, unit checks) inherits it from here.
    delete process.env.OPTIMUS_TOKEN;
    delete process.env.OPTIMUS_TOKEN_FILE;
    const nodeId = o.nodeId ?? `${hostname().split(".")[0]}-${role.data}`;
    // One view of the farm's nodes for the lease stream, git fetches and the egress proxy: all follow the leader.
    const farm = new FarmEndpoints(url, trust);
    // A refused certificate (or http:// to a TLS farm) stops the worker with its one line now; a farm
    // that does not answer yet is waited for, as before.
    const refused = await refusedBy(farm);
    if (refused) throw new CliError(refused);
    const model = await openModel(o.model, o.modelName, { threads, gpu, ...(contextSize ? { contextSize } : {}) });
    if (model.backend) say.info(`model ${model.name} runs on ${model.backend} (--gpu ${gpu})`);
    const workDir = resolve(o.workDir ?? join(homedir(), ".optimus", "worker", nodeId));
    const log = (msg: string) => say.info(`${nodeId}: ${msg}`);
    // Listening from here on: a signal while connecting still stops the worker cleanly.
    const stopSignal = firstStopSignal(log);
    const mirror = new RepoMirror(farm, token, workDir);
    await mirror.cleanup();
    const loop: AgentLoopOptions = {
      model,
      mirror,
      maxIterations,
      checkTimeoutMs: 300_000,
      sandbox: sandboxSetting.data,
      maxTokens: 2_048,
      log,
      farm: {
        get url() {
          return farm.current;
        },
        token,
      },
    };
    const agent = new WorkerAgent({
      farmUrl: farm,
      token,
      registration: { nodeId, role: role.data, maxConcurrentTasks: maxConcurrent, model: { primary: model.name }, version: "0.1.0" },
      execute: async (lease, ctx) => {
        log(`working on ${lease.taskId}/${lease.unitId} (attempt ${lease.attempt})`);
        if (lease.spec.kind === "plan") return runPlan(lease, ctx, loop);
        return role.data === "codegen" ? runCodegenWithEscalation(lease, ctx, loop) : runReview(lease, ctx, loop);
      },
      onOutcome: (lease, r) =>
        log(
          `${lease.taskId}/${lease.unitId}#${lease.attempt}: ${r.accepted ? `accepted${r.duplicate ? " (again)" : ""}` : `not accepted: ${r.error}`}`,
        ),
      log,
    });
    // The farm refusing the token (revoked, expired) ends the worker with the farm's line: retrying cannot help.
    const tokenRefused = agent.refused.then((err) => new CliError(describeError(err, url), EXIT.refused));
    let early: NodeJS.Signals | CliError | null;
    try {
      // A farm that is not up yet is waited for; a signal meanwhile stops the waiting.
      early = await Promise.race([agent.start().then(() => null), stopSignal, tokenRefused]);
    } catch (err) {
      await model.close();
      flush();
      throw errorCode((err as Error).cause) === "UNAUTHORIZED" ? await tokenRefused : new CliError((err as Error).message);
    }
    if (!early)
      log(
        `${role.data} worker connected to ${url} with model ${model.name}${model.backend ? ` on ${model.backend}` : ""}, ${maxConcurrent} slot(s); waiting for units`,
      );
    const end = early ?? (await Promise.race([stopSignal, tokenRefused]));
    // The running units end now: their checks are killed, model turns cut short; their leases expire
    // on the farm, which hands the units out again.
    log(
      end instanceof CliError
        ? `stopping: the farm refused this worker's token (${agent.activeLeases} running unit(s) end now)`
        : `${end}: stopping (${agent.activeLeases} running unit(s) end now; Ctrl-C again to exit at once)`,
    );
    const clean = await within(STOP_DEADLINE_MS, async () => {
      await agent.stop(STOP_DEADLINE_MS - 2_000);
      // A GGUF model finishes reading the prompt it is on before it can be freed (tokens are cut at
      // once): not waited for long, the process exit frees it anyway.
      await within(1_500, () => model.close());
    });
    log(clean ? "stopped" : `not stopped within ${STOP_DEADLINE_MS / 1000} s; exiting anyway`);
    flush();
    if (end instanceof CliError) throw end;
    exitSoon(clean ? 0 : 1);
  } catch (err) {
    flush();
    throw err;
  }
}
