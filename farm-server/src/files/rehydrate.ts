import { formatDiagnostic } from "@optimus/shared";
import type { TaskCommands } from "../core/task-commands.js";
import type { FarmState } from "../core/farm-state.js";
import { scanManifests } from "./task-files.js";

export interface ImportReport {
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
  repo: string,
  state: FarmState,
  tasks: TaskCommands,
  onProgress?: (done: number, total: number) => void,
): Promise<ImportReport> {
  const report: ImportReport = { imported: [], restored: [], rejected: [] };
  const scanned = await scanManifests(repo);
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
          id: s.taskId, title: m.title, description: m.description, priority: m.priority, targetBranch: m.targetBranch,
          units: m.units.map(({ status: _s, ...spec }) => spec), source: hasStatus ? "files" : "manifest",
          ...(hasStatus ? { restored } : {}),
        },
        m.createdBy ?? "farm",
      );
      if (m.status?.state === "cancelled") await tasks.cancel(s.taskId, "cancelled before the journal was rebuilt", "farm");
      (hasStatus ? report.restored : report.imported).push(s.taskId);
    } catch (err) {
      report.rejected.push({ file: s.file, problems: [formatDiagnostic({ file: s.file, line: 1, column: 1, field: "(task)", message: (err as Error).message })] });
    }
  }
  return report;
}
