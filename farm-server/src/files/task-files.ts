import { mkdir, readdir, readFile, rename, writeFile } from "node:fs/promises";
import { join } from "node:path";
import {
  parseManifestYaml,
  stringifyManifest,
  type ManifestDiagnostic,
  type TaskManifest,
  type UnitStatusMirror,
} from "@optimus/shared";
import type { Projection, TaskRecord } from "../store/projection.js";

export const TASKS_DIR = join(".optimus", "tasks");
export const manifestPath = (repo: string, taskId: string) => join(repo, TASKS_DIR, taskId, "manifest.yaml");
export const manifestRelPath = (taskId: string) => `.optimus/tasks/${taskId}/manifest.yaml`;

/** The manifest of a task as the projection knows it, unit status included. */
export function manifestOf(p: Projection, t: TaskRecord): TaskManifest {
  const view = p.taskView(t);
  return {
    apiVersion: "optimus/v1",
    kind: "Task",
    id: t.taskId,
    title: t.title,
    ...(t.description ? { description: t.description } : {}),
    priority: t.priority,
    ...(t.targetBranch ? { targetBranch: t.targetBranch } : {}),
    ...(t.createdBy ? { createdBy: t.createdBy } : {}),
    units: t.units.map((k) => {
      const u = p.units.get(k)!;
      const status: UnitStatusMirror = {
        state: u.state, attempt: u.attempt, updatedAt: new Date(u.updatedAt).toISOString(),
        ...(u.worker ? { worker: u.worker } : {}), ...(u.reason ? { reason: u.reason } : {}),
      };
      return { ...u.spec, status };
    }),
    status: { state: view.state, updatedAt: new Date(t.updatedAt).toISOString(), ...(t.merge ? { merge: t.merge } : {}) },
  };
}

/** Writes a file so that a crash leaves the old or the new content, never half of one. */
export async function writeAtomic(file: string, text: string): Promise<void> {
  const tmp = `${file}.${process.pid}.tmp`;
  await writeFile(tmp, text);
  await rename(tmp, file);
}

export async function writeManifest(repo: string, m: TaskManifest): Promise<string> {
  const file = manifestPath(repo, m.id!);
  await mkdir(join(repo, TASKS_DIR, m.id!), { recursive: true });
  await writeAtomic(file, stringifyManifest(m));
  return file;
}

export interface ScannedManifest {
  taskId: string;
  file: string;
  manifest?: TaskManifest;
  problems?: ManifestDiagnostic[];
}

/** Every `.optimus/tasks/<id>/manifest.yaml` in the repository, parsed; bad files come with their problems. */
export async function scanManifests(repo: string): Promise<ScannedManifest[]> {
  let dirs: string[];
  try {
    dirs = (await readdir(join(repo, TASKS_DIR), { withFileTypes: true })).filter((d) => d.isDirectory()).map((d) => d.name).sort();
  } catch {
    return [];
  }
  const out: ScannedManifest[] = [];
  for (const taskId of dirs) {
    const file = manifestPath(repo, taskId);
    let text: string;
    try {
      text = await readFile(file, "utf8");
    } catch {
      continue; // a folder without a manifest is not a task
    }
    const rel = manifestRelPath(taskId);
    const parsed = parseManifestYaml(text, rel);
    if (!parsed.ok) out.push({ taskId, file: rel, problems: parsed.problems });
    else if (parsed.manifest.id && parsed.manifest.id !== taskId) {
      out.push({ taskId, file: rel, problems: [{ file: rel, line: 1, column: 1, field: "id", message: `id '${parsed.manifest.id}' does not match its folder '${taskId}'` }] });
    } else out.push({ taskId, file: rel, manifest: { ...parsed.manifest, id: taskId } });
  }
  return out;
}
