import { closeSync, fsyncSync, mkdirSync, openSync, readFileSync, rmSync, writeFileSync, writeSync } from "node:fs";
import { join } from "node:path";
import type { Logger } from "pino";
import type { UnitResult } from "@optimus/shared";
import type { UnitRecord } from "../store/projection.js";

/**
 * What the farm keeps of a unit's attempt beside the journal, in its patches folder: the patch (only
 * until its change is merged) and the transcript the worker sent.
 */
export class AttemptFiles {
  constructor(
    private readonly dir: string,
    private readonly log: Logger,
  ) {
    mkdirSync(dir, { recursive: true });
  }

  private path(taskId: string, unitId: string, attempt: number, ending: string): string {
    return join(this.dir, `${taskId}--${unitId}-${attempt}${ending}`);
  }

  patchPath(u: UnitRecord, attempt = u.attempt): string {
    return this.path(u.taskId, u.unitId, attempt, ".patch");
  }

  /** The attempt's patch, on disk and fsynced when this returns. */
  writePatch(u: UnitRecord, patch: string): void {
    const fd = openSync(this.patchPath(u), "w", 0o600);
    writeSync(fd, patch);
    fsyncSync(fd);
    closeSync(fd);
  }

  /** An attempt's patch as its worker submitted it, or null once it is gone (merged) or was never kept. */
  submittedPatch(taskId: string, unitId: string, attempt: number): string | null {
    try {
      return readFileSync(this.path(taskId, unitId, attempt, ".patch"), "utf8");
    } catch {
      return null;
    }
  }

  removePatch(u: UnitRecord, attempt: number): void {
    rmSync(this.patchPath(u, attempt), { force: true });
  }

  /** Kept beside the patch for the editor's unit detail (not journaled: it can be large). */
  saveTranscript(u: UnitRecord, result: UnitResult): void {
    try {
      writeFileSync(this.path(u.taskId, u.unitId, u.attempt, ".transcript.json"), JSON.stringify(result.transcript), { mode: 0o600 });
    } catch (err) {
      this.log.warn({ err }, "could not save a transcript");
    }
  }

  /** The transcript a worker sent with an attempt, or null when none was kept. */
  transcriptOf(taskId: string, unitId: string, attempt: number): UnitResult["transcript"] | null {
    try {
      return JSON.parse(readFileSync(this.path(taskId, unitId, attempt, ".transcript.json"), "utf8"));
    } catch {
      return null;
    }
  }
}
