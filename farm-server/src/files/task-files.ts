import { mkdir, readdir, rename, writeFile } from "node:fs/promises";
import { join } from "node:path";
import {
  MAX_MANIFEST_BYTES,
  parseManifestYaml,
  TaskId,
  stringifyManifest,
  type ManifestDiagnostic,
  type TaskManifest,
  type UnitStatusMirror,
} from "@optimus/shared";
import type { Projection, TaskRecord } from "../store/projection.js";
import { outsideRepoProblem, readCommittedText } from "./committed-file.js";

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
        state: u.state,
        attempt: u.attempt,
        updatedAt: new Date(u.updatedAt).toISOString(),
        ...(u.worker ? { worker: u.worker } : {}),
        ...(u.reason ? { reason: u.reason } : {}),
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
  // A committed symbolic link in place of the task folder must not make the farm write elsewhere.
  const outside = await outsideRepoProblem(repo, join(TASKS_DIR, m.id!));
  if (outside) throw new Error(`${TASKS_DIR}/${m.id} ${outside}`);
  await writeAtomic(file, stringifyManifest(m));
  return file;
}

export interface ScannedManifest {
  taskId: string;
  file: string;
  manifest?: TaskManifest;
  problems?: ManifestDiagnostic[];
}

/**
 * Every `.optimus/tasks/<id>/manifest.yaml` in the repository, parsed; bad files come with their
 * problems. Never throws: manifests are committed by anyone with push access, so each file that
 * cannot be read or used (too large, not UTF-8, a folder, unreadable, behind a symbolic link that
 * leads outside the repository, in a folder whose name is no task id) is one problem of its own,
 * and the others are still read.
 */
export async function scanManifests(
  repo: string,
  skip: (taskId: string) => boolean | Promise<boolean> = () => false,
): Promise<ScannedManifest[]> {
  let entries: Array<{ name: string; link: boolean }>;
  try {
    if (await outsideRepoProblem(repo, TASKS_DIR)) return []; // .optimus/tasks itself leads elsewhere: nothing of this repository
    entries = (await readdir(join(repo, TASKS_DIR), { withFileTypes: true }))
      .filter((d) => d.isDirectory() || d.isSymbolicLink())
      .map((d) => ({ name: d.name, link: d.isSymbolicLink() }))
      .sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  } catch {
    return [];
  }
  const out: ScannedManifest[] = [];
  for (const { name: taskId, link } of entries) {
    // A task the farm knows already is not read at all (a restart reads nothing of its history).
    if (await skip(taskId)) continue;
    const rel = manifestRelPath(taskId);
    const problem = (field: string, message: string): ScannedManifest => ({
      taskId,
      file: rel,
      problems: [{ file: rel, line: 1, column: 1, field, message }],
    });
    try {
      const outside = link ? await outsideRepoProblem(repo, join(TASKS_DIR, taskId)) : undefined;
      if (outside) {
        out.push(problem("(file)", `its folder ${outside}`));
        continue;
      }
      const read = await readCommittedText(repo, join(TASKS_DIR, taskId, "manifest.yaml"), MAX_MANIFEST_BYTES, "a task manifest");
      if (!read.ok) {
        if (!read.missing) out.push(problem("(file)", read.problem)); // a folder without a manifest is not a task
        continue;
      }
      const id = TaskId.safeParse(taskId);
      if (!id.success) {
        out.push(problem("id", `the folder name '${taskId}' is not a usable task id (${id.error.issues[0]!.message}); rename the folder`));
        continue;
      }
      const parsed = parseManifestYaml(read.text, rel);
      if (!parsed.ok) out.push({ taskId, file: rel, problems: parsed.problems });
      else if (parsed.manifest.id && parsed.manifest.id !== taskId) {
        out.push({
          taskId,
          file: rel,
          problems: [
            { file: rel, line: 1, column: 1, field: "id", message: `id '${parsed.manifest.id}' does not match its folder '${taskId}'` },
          ],
        });
      } else out.push({ taskId, file: rel, manifest: { ...parsed.manifest, id: taskId } });
    } catch (err) {
      out.push(problem("(file)", `could not be read (${(err as Error).message}); check the file`));
    }
  }
  return out;
}
