import { randomBytes } from "node:crypto";
import {
  checkManifestGraph,
  CreateTaskInput,
  formatField,
  slugify,
  UnitSpec,
  type EventBody,
  type ServerConfig,
  type TaskSource,
  type TaskView,
  type UnitSpecInput,
  type UnitStatusMirror,
  type UnitView,
} from "@optimus/shared";
import { z } from "zod";
import { FarmError, notFound } from "../errors/farm-error.js";
import { assertAction } from "./unit-actions.js";
import type { FarmState } from "./farm-state.js";

export interface NewTask {
  id?: string;
  title: string;
  description?: string;
  priority?: number;
  targetBranch?: string;
  files?: string[];
  units?: UnitSpecInput[];
  source: TaskSource;
  restored?: Record<string, UnitStatusMirror>;
}

const TaskFields = CreateTaskInput.pick({ id: true, title: true, description: true, targetBranch: true, files: true });

/** Commands on tasks and their units: create, cancel, retry. */
export class TaskCommands {
  /**
   * The tasks' integration branches (with a git origin): `resolveTarget` checks the target branch
   * before a task is recorded (from memory: no git process), `cut` asks for the task's branch,
   * which is cut off the hot path while the task's units wait for it.
   */
  branches: { resolveTarget(targetBranch: string | undefined): Promise<string>; cut(taskId: string, targetBranch: string): void } | null =
    null;

  constructor(
    private readonly state: FarmState,
    private readonly config: ServerConfig,
  ) {}

  private get p() {
    return this.state.projection;
  }

  async create(input: NewTask, actor: string): Promise<TaskView> {
    // Checked here as well as at the API: tasks also come from files, and ids and the target branch
    // reach git (branch names) and the file system (folders) right after this.
    const fields = TaskFields.safeParse({
      id: input.id,
      title: input.title,
      description: input.description,
      targetBranch: input.targetBranch,
      files: input.files,
    });
    if (!fields.success) {
      const i = fields.error.issues[0]!;
      throw new FarmError("invalid", `${formatField(i.path)}: ${i.message}`);
    }
    const taskId = input.id ?? this.newTaskId(input.title);
    if (this.p.tasks.has(taskId)) throw new FarmError("conflict", `task '${taskId}' already exists`);
    // An archived task keeps its id (its branch, its files and its history answer to it).
    if (input.id && (await this.state.journal.isArchived(taskId)))
      throw new FarmError("conflict", `task '${taskId}' already exists (finished and archived; see 'optimus task show ${taskId}')`);
    // A task given as text is planned by a worker's model (a `plan` unit), or, with the planner off,
    // becomes one codegen unit with the text as its goal.
    const text = [input.title, input.description].filter(Boolean).join("\n\n");
    const rawUnits: UnitSpecInput[] = input.units?.length
      ? input.units
      : this.config.planner.enabled
        ? [{ id: "plan", kind: "plan", goal: text, role: "codegen", files: input.files ?? [] }]
        : [{ id: "u1", goal: text, role: "codegen", files: input.files ?? [] }];
    const parsed = z.array(UnitSpec).min(1).safeParse(rawUnits);
    if (!parsed.success) {
      const i = parsed.error.issues[0]!;
      throw new FarmError("invalid", `units${formatField(i.path).replace(/^(?!\[)/, ".")}: ${i.message}`);
    }
    const units = this.config.prloop.reviewEveryCodegenUnit ? withReviewUnits(parsed.data) : parsed.data;
    const problems = checkManifestGraph({ units });
    if (problems.length > 0) throw new FarmError("invalid", `${formatField(problems[0]!.path)}: ${problems[0]!.message}`);
    const targetBranch = this.branches ? await this.branches.resolveTarget(input.targetBranch) : input.targetBranch;
    if (this.p.tasks.has(taskId)) throw new FarmError("conflict", `task '${taskId}' already exists`);
    // Asked before the task is recorded, so that its units are held back from the first dispatch on.
    if (this.branches && targetBranch) this.branches.cut(taskId, targetBranch);
    await this.state.commit(
      [
        {
          type: "task_created",
          data: {
            taskId,
            title: input.title,
            description: input.description,
            priority: input.priority ?? 0,
            targetBranch,
            createdBy: actor,
            source: input.source,
            units,
            ...(input.restored ? { restored: input.restored } : {}),
          },
        },
      ],
      actor,
    );
    return this.p.taskView(this.p.tasks.get(taskId)!);
  }

  /**
   * More units for a task that is not done (merged or cancelled): e.g. a unit that addresses the
   * review comments or the failing check of its pull request, with those as its first feedback.
   * Unit ids must be new; dependencies may name the task's existing units.
   */
  async addUnits(taskId: string, input: UnitSpecInput[], reason: string, feedback: string[] | undefined, actor: string): Promise<TaskView> {
    const t = this.p.tasks.get(taskId);
    if (!t) throw notFound(`task '${taskId}'`);
    if (t.cancelled || t.merge?.commit)
      throw new FarmError("conflict", `task '${taskId}' is ${t.cancelled ? "cancelled" : "merged"}; send a new task instead`);
    const parsed = z.array(UnitSpec).min(1).safeParse(input);
    if (!parsed.success) {
      const i = parsed.error.issues[0]!;
      throw new FarmError("invalid", `units${formatField(i.path).replace(/^(?!\[)/, ".")}: ${i.message}`);
    }
    const existing = t.units.map((k) => this.p.units.get(k)!.spec);
    const taken = new Set(existing.map((u) => u.id));
    const clash = parsed.data.find((u) => taken.has(u.id));
    if (clash) throw new FarmError("conflict", `task '${taskId}' already has a unit '${clash.id}'`);
    const units = this.config.prloop.reviewEveryCodegenUnit ? withReviewUnits(parsed.data) : parsed.data;
    const problems = checkManifestGraph({ units: [...existing, ...units] });
    if (problems.length > 0) throw new FarmError("invalid", `${formatField(problems[0]!.path)}: ${problems[0]!.message}`);
    await this.state.commit([{ type: "units_added", data: { taskId, units, reason, ...(feedback?.length ? { feedback } : {}) } }], actor);
    return this.p.taskView(this.p.tasks.get(taskId)!);
  }

  async cancel(taskId: string, reason: string | undefined, actor: string): Promise<TaskView> {
    const t = this.p.tasks.get(taskId);
    if (!t) throw notFound(`task '${taskId}'`);
    if (t.cancelled) return this.p.taskView(t);
    const durable = this.state.commit([{ type: "task_cancelled", data: { taskId, reason } }], actor);
    // Its view as of the cancel: once finished it may be archived (out of the projection) before this resumes.
    const view = this.p.taskView(t);
    await durable;
    return view;
  }

  async retryUnit(taskId: string, unitId: string, actor: string): Promise<UnitView> {
    const u = this.unit(taskId, unitId);
    assertAction("retry", this.p, this.config, u);
    await this.state.commit([{ type: "unit_retried", data: { taskId, unitId } }], actor);
    return this.p.unitView(u);
  }

  /**
   * A human asks for the frontier model on this unit. The request is journaled and shown as
   * "escalation queued"; the gateway admits it under the budget. A dead unit is also made ready again,
   * since escalating is how a person gets a stuck unit moving.
   */
  async escalateUnit(taskId: string, unitId: string, reason: string | undefined, actor: string): Promise<UnitView> {
    const u = this.unit(taskId, unitId);
    // The table refuses it without a frontier model: a request nobody can answer would wait for ever.
    assertAction("escalate", this.p, this.config, u);
    const events: EventBody[] = [{ type: "escalation_requested", data: { taskId, unitId, attempt: u.attempt, reason } }];
    if (u.state === "dead") events.push({ type: "unit_retried", data: { taskId, unitId } });
    await this.state.commit(events, actor);
    return this.p.unitView(u);
  }

  async cancelUnit(taskId: string, unitId: string, reason: string | undefined, actor: string): Promise<UnitView> {
    const u = this.unit(taskId, unitId);
    assertAction("cancel", this.p, this.config, u);
    await this.state.commit([{ type: "unit_cancelled", data: { taskId, unitId, reason } }], actor);
    return this.p.unitView(u);
  }

  unit(taskId: string, unitId: string) {
    const t = this.p.tasks.get(taskId);
    if (!t) throw notFound(`task '${taskId}'`);
    const u = this.p.units.get(`${taskId}/${unitId}`);
    if (!u) throw notFound(`unit '${unitId}' of task '${taskId}'`);
    return u;
  }

  private newTaskId(title: string): string {
    for (;;) {
      const id = `${slugify(title, 40)}-${randomBytes(3).toString("hex")}`;
      if (!this.p.tasks.has(id)) return id;
    }
  }

  get maxAttempts(): number {
    return this.config.maxAttempts;
  }
}

/** Every codegen unit gets a review unit after it, unless the task already has one for it. */
export function withReviewUnits(units: UnitSpec[]): UnitSpec[] {
  const reviewed = new Set(units.filter((u) => u.reviews).map((u) => u.reviews));
  const ids = new Set(units.map((u) => u.id));
  const out: UnitSpec[] = [];
  for (const u of units) {
    out.push(u);
    if (u.role !== "codegen" || u.kind === "plan" || reviewed.has(u.id)) continue;
    let id = `${u.id}-review`.slice(0, 64);
    for (let i = 2; ids.has(id); i++) id = `${u.id.slice(0, 55)}-review${i}`;
    ids.add(id);
    out.push({
      id,
      role: "review",
      goal: `Review the change made for unit '${u.id}': ${u.goal}`.slice(0, 20_000),
      files: [...u.files],
      dependsOn: [],
      priority: u.priority,
      complexity: u.complexity,
      reviews: u.id,
      kind: "change",
    });
  }
  return out;
}
