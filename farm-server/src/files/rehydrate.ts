import { formatDiagnostic } from "@optimus/shared";
import type { TaskCommands } from "../core/task-commands.js";
import type { FarmState } from "../core/farm-state.js";
import { scanManifests } from "./task-files.js";

export interface ImportReport {
  /** manifests read and parsed (a start with nothing new reads none) */
  read: number;
  /** the farm's task branches whose files were written out to be read (tasks the journal does not know) */
  branches?: number;
  imported: string[];
  restored: string[];
  /** skipped manifests, each problem as `file:line:col: field: message` */
  rejected: Array<{ file: string; problems: string[] }>;
}

/**
 * Brings every task manifest in the repository that the journal does not know into the farm:
 * manifests the farm wrote itself (they carry unit status: the journal was lost, so state is
 * rebuilt from them) and manifests a person committed (no status: a new task). A bad manifest is
 * skipped (reported in `rejected`), never stops the others: one committed file must not keep the
 * farm from starting.
 */
export async function importManifests(
  sources: string | string[],
  state: FarmState,
  tasks: TaskCommands,
  onProgress?: (done: number, total: number) => void,
  /** a rebuilt task's merge, when its manifest was read where only a merge could have put it */
  delivered?: (taskId: string, dir: string) => Promise<{ into: string; commit: string } | null>,
): Promise<ImportReport> {
  const report: ImportReport = { read: 0, imported: [], restored: [], rejected: [] };
  // Several sources (the farm's files, its branches, the origin's default branch), the first one
  // that has a task wins: the most recent copy of its manifest.
  const scanned: Array<Awaited<ReturnType<typeof scanManifests>>[number] & { dir: string }> = [];
  const seen = new Set<string>();
  for (const dir of Array.isArray(sources) ? sources : [sources]) {
    for (const s of await scanManifests(
      dir,
      (taskId) => seen.has(taskId) || state.projection.tasks.has(taskId) || state.journal.isArchived(taskId),
    )) {
      report.read++;
      if (seen.has(s.taskId)) continue;
      seen.add(s.taskId);
      scanned.push({ ...s, dir });
    }
  }
  let done = 0;
  for (const s of scanned) {
    onProgress?.(++done, scanned.length);
    if (state.projection.tasks.has(s.taskId)) continue;
    if (!s.manifest) {
      report.rejected.push({ file: s.file, problems: (s.problems ?? []).map(formatDiagnostic) });
      continue;
    }
    const m = s.manifest;
    const restored = Object.fromEntries(m.units.filter((u) => u.status).map((u) => [u.id, u.status!]));
    const hasStatus = Object.keys(restored).length > 0;
    try {
      await tasks.create(
        {
          id: s.taskId,
          title: m.title,
          description: m.description,
          priority: m.priority,
          targetBranch: m.targetBranch,
          units: m.units.map(({ status: _s, ...spec }) => spec),
          source: hasStatus ? "files" : "manifest",
          ...(hasStatus ? { restored } : {}),
        },
        m.createdBy ?? "farm",
      );
      if (m.status?.state === "cancelled") await tasks.cancel(s.taskId, "cancelled before the journal was rebuilt", "farm");
      // Delivered before the farm lost its state: recorded as merged, never merged again.
      const merge = m.status?.merge?.commit
        ? { into: m.status.merge.into, commit: m.status.merge.commit }
        : hasStatus
          ? await delivered?.(s.taskId, s.dir)
          : null;
      if (merge) await state.commit([{ type: "task_merged", data: { taskId: s.taskId, into: merge.into, commit: merge.commit } }], "farm");
      (hasStatus ? report.restored : report.imported).push(s.taskId);
    } catch (err) {
      report.rejected.push({
        file: s.file,
        problems: [formatDiagnostic({ file: s.file, line: 1, column: 1, field: "(task)", message: (err as Error).message })],
      });
    }
  }
  return report;
}
