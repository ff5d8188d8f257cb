import { PlanProposal, ReviewVerdict, type Lease, type LeaseWorkContext, type UnitResultInput } from "@optimus/shared";
import { applyEdits, editProposalJsonSchema, parseEditProposal } from "./edits.js";
import type { ChatMessage, Generation, ModelProvider } from "./models/model-provider.js";
import type { RepoMirror } from "./repo-mirror.js";
import { runCheck, type EgressOptions, type SandboxBind, type SandboxSetting } from "../sandbox/index.js";
import { resolveSetup } from "../setup/index.js";
import { filesInScope, readWorktreeFile } from "./worktree-files.js";
import type { LeaseContext } from "./worker-agent.js";

export interface AgentLoopOptions {
  model: ModelProvider;
  mirror: RepoMirror;
  /** model turns per attempt before the unit is handed back as needing escalation */
  maxIterations: number;
  checkTimeoutMs: number;
  /** the sandbox checks run in (`auto`: the platform's, or refuse; `none`: unsandboxed, with a warning each run) */
  sandbox?: SandboxSetting;
  maxTokens: number;
  log: (msg: string) => void;
  /** how checks reach the farm's egress proxy when a lease offers one: the farm's URL and this worker's token */
  farm?: { url: string; token: string };
}

/**
 * A review verdict as a JSON Schema the grammar can follow. Line numbers are bounded strings: a
 * grammar lets numbers run wild (so does the edit format's, shared/src/edits.ts).
 */
const reviewJsonSchema = {
  type: "object",
  properties: {
    verdict: { enum: ["approve", "request_changes"] },
    risk: { enum: ["low", "medium", "high"] },
    // Bounded, so even a model that rambles ends its JSON within the token budget.
    summary: { type: "string", maxLength: 400 },
    comments: {
      type: "array",
      maxItems: 5,
      items: {
        type: "object",
        properties: {
          path: { type: "string", maxLength: 100 },
          line: { type: "string", maxLength: 6 },
          body: { type: "string", maxLength: 300 },
        },
        required: ["path", "line", "body"],
      },
    },
  },
  required: ["verdict", "risk", "summary", "comments"],
} as const;

/** The repository's own context every worker gets: conventions, glossary, ADR titles, earlier session notes. */
function repositoryContext(dir: string, notes: string | undefined): string {
  const parts: string[] = [];
  for (const f of ["docs/conventions.md", "docs/glossary.md"]) {
    const r = readWorktreeFile(dir, f);
    if (r.kind === "file") parts.push(`## ${f}\n${r.content.slice(0, 8_000)}`);
  }
  const adr = readWorktreeFile(dir, "docs/adr");
  if (adr.kind === "folder") parts.push(`## Decisions (docs/adr)\n${adr.entries.filter((f) => f.endsWith(".md")).join("\n")}`);
  if (notes) parts.push(`## Session notes of earlier attempts\n${notes}`);
  return parts.join("\n\n");
}

const minConfidence = (gens: Generation[]) => {
  const vals = gens.map((g) => g.confidence?.min).filter((v): v is number => v !== undefined);
  return vals.length ? Math.min(...vals) : undefined;
};

/** A codegen attempt: propose edits, apply them, run the unit's check (no network), feed failures back. */
export async function runCodegen(lease: Lease, ctx: LeaseContext, o: AgentLoopOptions): Promise<UnitResultInput> {
  const work = lease.context ?? {};
  const started = Date.now();
  const dir = await o.mirror.prepare(`${lease.taskId}--${lease.unitId}-${lease.attempt}`, work.base?.branch ?? "main");
  const gens: Generation[] = [];
  let checksFailed = 0;
  let checkPassed = false;
  let evidence = "";
  try {
    const spec = lease.spec;
    const egress: EgressOptions | undefined =
      work.egress && o.farm
        ? { proxyUrl: `http://${new URL(o.farm.url).hostname}:${work.egress.port}`, proxyAuthorization: `Bearer ${o.farm.token}` }
        : undefined;
    // The repository's dependencies, before the model changes anything: installed once per lockfile
    // content into the work dir's cache (network only through the egress proxy), read-only to checks.
    let binds: SandboxBind[] = [];
    let setupLine = "";
    if (spec.check) {
      const deps = await setUpDependencies(lease, ctx, o, dir, work, egress, started);
      if ("failed" in deps) return { outcome: "failed", summary: deps.failed, evidence: deps.line };
      binds = deps.binds;
      setupLine = deps.line;
    }
    const files = filesInScope(dir, spec.files);
    const messages: ChatMessage[] = [
      {
        role: "system",
        content:
          'You are a careful software engineer working on one small, verifiable unit of a larger task. Answer only with JSON: {"summary": string, "edits": [{"kind": "replace", "path", "search", "replace"} | {"kind": "write", "path", "content"}], "done": boolean}. `search` must match the file exactly once. Change only the files you are given. Use names from the project\'s glossary.',
      },
      {
        role: "user",
        content: [
          `# Goal\n${spec.goal}`,
          spec.check ? `# Check that must pass\n\`${spec.check}\`` : "",
          work.feedback?.length ? `# Feedback on earlier attempts (address all of it)\n${work.feedback.join("\n\n")}` : "",
          `# Files\n${files.map((f) => `## ${f.path}\n\`\`\`\n${f.content}\n\`\`\``).join("\n\n")}`,
          repositoryContext(dir, work.notes),
        ]
          .filter(Boolean)
          .join("\n\n"),
      },
    ];
    for (let i = 1; i <= o.maxIterations; i++) {
      if (ctx.signal.aborted) return { outcome: "failed", summary: "lease lost" };
      ctx.progress({
        phase: "generating",
        step: `iteration ${i}/${o.maxIterations}`,
        tokens: gens.reduce((a, g) => a + g.tokens, 0),
        elapsedMs: Date.now() - started,
      });
      const gen = await o.model.generate(messages, {
        jsonSchema: editProposalJsonSchema as Record<string, unknown>,
        maxTokens: o.maxTokens,
        signal: ctx.signal,
      });
      gens.push(gen);
      messages.push({ role: "assistant", content: gen.text });
      const parsed = parseEditProposal(gen.text);
      if (!parsed.ok) {
        messages.push({ role: "user", content: `That answer was not usable: ${parsed.error}. Answer again with the JSON object only.` });
        continue;
      }
      const applied = await applyEdits(dir, parsed.proposal, { scope: spec.files, maxFileBytes: 1024 * 1024 });
      if (!applied.ok) {
        messages.push({ role: "user", content: `The edits could not be applied: ${applied.error}. Nothing was changed. Try again.` });
        continue;
      }
      if (!spec.check) break;
      ctx.progress({ phase: "checking", step: spec.check, elapsedMs: Date.now() - started });
      // A lease that ends (cancelled, lost, the worker stopping) ends its check too.
      const check = await runCheck(spec.check, {
        cwd: dir,
        timeoutMs: o.checkTimeoutMs,
        sandbox: o.sandbox ?? "auto",
        signal: ctx.signal,
        binds,
        ...(egress ? { egress } : {}),
      });
      if (check.sandboxNote) o.log(check.sandboxNote);
      evidence = `${setupLine}$ ${spec.check}\n(exit ${check.exitCode}${check.timedOut ? ", timed out" : ""}, sandbox: ${check.sandbox})\n${check.output}`;
      if (check.exitCode === 0) {
        checkPassed = true;
        break;
      }
      checksFailed++;
      messages.push({
        role: "user",
        content: `The check failed (exit ${check.exitCode}${check.timedOut ? ", timed out" : ""}):\n${check.output.slice(-4_000)}\nFix the code. The edits so far are kept.`,
      });
      if (i === o.maxIterations) {
        return {
          outcome: "failed",
          summary: `needs escalation: the check still fails after ${i} iterations`,
          evidence,
          signals: signals(o, gens, checksFailed, i),
          transcript: transcriptOf(messages),
        };
      }
    }
    // Out of iterations without a passing check (the last answers did not even apply): not a success.
    if (spec.check && !checkPassed) {
      return {
        outcome: "failed",
        summary: `needs escalation: no change passed the check in ${o.maxIterations} iterations`,
        evidence,
        signals: signals(o, gens, checksFailed, gens.length),
        transcript: transcriptOf(messages),
      };
    }
    const patch = await o.mirror.patchOf(dir);
    if (!patch.trim())
      return {
        outcome: "failed",
        summary: "needs escalation: the model produced no usable change",
        evidence,
        signals: signals(o, gens, checksFailed, gens.length),
      };
    const last = parseEditProposal(gens.at(-1)?.text ?? "");
    return {
      outcome: "succeeded",
      summary: last.ok ? last.proposal.summary : "change made",
      patch,
      evidence,
      signals: signals(o, gens, checksFailed, gens.length),
      transcript: transcriptOf(messages),
    };
  } finally {
    await o.mirror.remove(dir);
  }
}

/**
 * The unit's dependency set-up (see setup/): nothing when the repository has none; otherwise the
 * cache entry for its lockfile, installed on a miss (progress phase "setting up"), and the binds
 * that show it read-only in the worktree. The evidence line says whether it was a cache hit.
 */
async function setUpDependencies(
  lease: Lease,
  ctx: LeaseContext,
  o: AgentLoopOptions,
  dir: string,
  work: LeaseWorkContext,
  egress: EgressOptions | undefined,
  started: number,
): Promise<{ binds: SandboxBind[]; line: string } | { failed: string; line: string }> {
  const unit = `${lease.taskId}/${lease.unitId}#${lease.attempt}`;
  const decision = resolveSetup(work.setup, dir);
  if (decision.kind === "none") return { binds: [], line: "" };
  if (decision.kind === "unsupported") {
    o.log(`${unit}: no dependency set-up: ${decision.reason}`);
    return { binds: [], line: `set-up: none (${decision.reason})\n` };
  }
  ctx.progress({ phase: "setting up", step: decision.plan.command, elapsedMs: Date.now() - started });
  try {
    const r = await o.mirror.deps.ensure({
      plan: decision.plan,
      worktree: dir,
      sandbox: o.sandbox ?? "auto",
      signal: ctx.signal,
      ...(egress ? { egress } : {}),
    });
    if (r.sandboxNote) o.log(r.sandboxNote);
    o.log(`${unit}: ${r.summary}`);
    if (!r.ok) return { failed: r.summary, line: `${r.summary}\n${r.output.slice(-4_000)}\n` };
    // Install scripts ran in the worktree: back to exactly the unit's base before the model starts.
    if (r.ranInWorktree) await o.mirror.restore(dir);
    return { binds: r.binds, line: `${r.summary}\n` };
  } catch (err) {
    const why = `the dependency set-up could not run: ${(err as Error).message}`;
    o.log(`${unit}: ${why}`);
    return { failed: why, line: `${why}\n` };
  }
}

/**
 * Asks the model for a JSON answer under a schema, feeding back what was wrong (not JSON, cut off,
 * incomplete) until it is usable or the iterations run out.
 */
async function askForJson<T>(
  o: AgentLoopOptions,
  ctx: LeaseContext,
  messages: ChatMessage[],
  phase: string,
  schema: unknown,
  accept: (raw: unknown) => { ok: true; value: T } | { ok: false; error: string },
): Promise<{ value?: T; gens: Generation[] }> {
  const gens: Generation[] = [];
  for (let i = 1; i <= o.maxIterations; i++) {
    ctx.progress({ phase, step: `iteration ${i}` });
    const gen = await o.model.generate(messages, {
      jsonSchema: schema as Record<string, unknown>,
      maxTokens: o.maxTokens,
      signal: ctx.signal,
    });
    gens.push(gen);
    let raw: unknown;
    try {
      raw = JSON.parse(gen.text);
    } catch {
      messages.push(
        { role: "assistant", content: gen.text },
        {
          role: "user",
          content: `That was not valid JSON${gen.stopReason === "length" ? " (it was cut off)" : ""}. Answer with the JSON object only.`,
        },
      );
      continue;
    }
    const r = accept(raw);
    if (r.ok) return { value: r.value, gens };
    messages.push(
      { role: "assistant", content: gen.text },
      { role: "user", content: `${r.error[0]!.toUpperCase()}${r.error.slice(1)}. Answer again.` },
    );
  }
  return { gens };
}

/** The conversation, bounded, as it goes back to the farm. */
function transcriptOf(messages: ChatMessage[]): ChatMessage[] {
  return messages.slice(-200).map((m) => ({ role: m.role, content: m.content.slice(0, 50_000) }));
}

function signals(o: AgentLoopOptions, gens: Generation[], checksFailed: number, iterations: number) {
  const confidence = minConfidence(gens);
  return {
    model: o.model.name,
    tokens: gens.reduce((a, g) => a + g.tokens, 0),
    checksFailed,
    iterations,
    ...(confidence !== undefined ? { confidence } : {}),
  };
}

/** A review: read the change and its eval results, return a verdict with line comments. */
export async function runReview(lease: Lease, ctx: LeaseContext, o: AgentLoopOptions): Promise<UnitResultInput> {
  const work = lease.context ?? {};
  if (!work.review) return { outcome: "succeeded", summary: "nothing to review" };
  const messages: ChatMessage[] = [
    {
      role: "system",
      content:
        'You review one change for correctness, clarity and fit with the project\'s conventions and glossary. Answer only with JSON: {"verdict": "approve"|"request_changes", "risk": "low"|"medium"|"high", "summary": string, "comments": [{"path", "line", "body"}]}.',
    },
    {
      role: "user",
      content: `# What the change should do\n${lease.spec.goal}\n\n# The change\n\`\`\`diff\n${work.review.patch.slice(0, 60_000)}\n\`\`\`\n\n# Eval results\n${work.review.evals.map((e) => `- ${e.name}: exit ${e.exitCode}`).join("\n")}`,
    },
  ];
  const asked = await askForJson(o, ctx, messages, "reviewing", reviewJsonSchema, (raw) => {
    const r = raw as { comments?: Array<{ line?: unknown }> };
    // Line numbers come as strings (see the schema); a bad one points at line 1 rather than failing.
    const v = ReviewVerdict.safeParse({
      ...r,
      comments: (r.comments ?? []).map((c) => ({
        ...c,
        line: Math.max(1, Math.min(10_000_000, Number.parseInt(String(c.line), 10) || 1)),
      })),
    });
    return v.success ? { ok: true, value: v.data } : { ok: false, error: `that verdict is incomplete: ${v.error.issues[0]?.message}` };
  });
  const gens = asked.gens;
  if (asked.value)
    return {
      outcome: "succeeded",
      summary: asked.value.summary.slice(0, 2_000),
      review: asked.value,
      signals: signals(o, gens, 0, gens.length),
    };
  return {
    outcome: "failed",
    summary: "needs escalation: the model gave no usable review verdict",
    signals: signals(o, gens, 0, o.maxIterations),
  };
}

/** The plan format as a JSON Schema the grammar can follow (no numbers). */
const planJsonSchema = {
  type: "object",
  properties: {
    units: {
      type: "array",
      items: {
        type: "object",
        properties: {
          id: { type: "string" },
          goal: { type: "string" },
          files: { type: "array", items: { type: "string" } },
          check: { type: "string" },
          dependsOn: { type: "array", items: { type: "string" } },
          complexity: { enum: ["trivial", "small", "medium", "large"] },
        },
        required: ["id", "goal", "files", "check", "dependsOn", "complexity"],
      },
    },
    decision: {
      type: "object",
      properties: {
        needed: { type: "boolean" },
        title: { type: "string" },
        context: { type: "string" },
        decision: { type: "string" },
        consequences: { type: "string" },
      },
      required: ["needed", "title", "context", "decision", "consequences"],
    },
  },
  required: ["units", "decision"],
} as const;

/** The planner: turns a task's text into bounded units (the farm checks the plan, or falls back to one unit). */
export async function runPlan(lease: Lease, ctx: LeaseContext, o: AgentLoopOptions): Promise<UnitResultInput> {
  const work = lease.context ?? {};
  const dir = await o.mirror.prepare(`${lease.taskId}--${lease.unitId}-${lease.attempt}`, work.base?.branch ?? "main");
  try {
    const listing = await o.mirror.listFiles(dir);
    const files = filesInScope(dir, lease.spec.files);
    const messages: ChatMessage[] = [
      {
        role: "system",
        content:
          'You plan software work as a small DAG of bounded units, each verifiable by one shell command (its check). Each unit changes a few named files. Answer only with JSON: {"units": [{"id", "goal", "files", "check", "dependsOn", "complexity"}], "decision": {"needed", "title", "context", "decision", "consequences"}}. Set decision.needed only when the plan makes a design decision worth recording as an ADR.',
      },
      {
        role: "user",
        content: [
          `# Task\n${lease.spec.goal}`,
          files.length ? `# Files named by the task\n${files.map((f) => `## ${f.path}\n\`\`\`\n${f.content}\n\`\`\``).join("\n\n")}` : "",
          `# Files in the repository\n${listing.slice(0, 2_000).join("\n")}`,
          repositoryContext(dir, work.notes),
        ]
          .filter(Boolean)
          .join("\n\n"),
      },
    ];
    const asked = await askForJson(o, ctx, messages, "planning", planJsonSchema, (raw) => {
      const p = PlanProposal.safeParse(raw);
      return p.success
        ? { ok: true, value: p.data }
        : { ok: false, error: `that plan is incomplete: ${p.error.issues[0]?.path.join(".")}: ${p.error.issues[0]?.message}` };
    });
    const gens = asked.gens;
    if (asked.value)
      return {
        outcome: "succeeded",
        summary: `${asked.value.units.length} unit(s) planned`,
        plan: asked.value,
        signals: signals(o, gens, 0, gens.length),
      };
    // No usable plan: the farm falls back to one unit for the whole task.
    return { outcome: "succeeded", summary: "no usable plan from the model", signals: signals(o, gens, 0, o.maxIterations) };
  } finally {
    await o.mirror.remove(dir);
  }
}
