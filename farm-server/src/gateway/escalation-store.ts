import { mkdirSync } from "node:fs";
import { open, readFile, rm } from "node:fs/promises";
import { join } from "node:path";
import type { EscalationAnswer } from "@optimus/shared";

export interface StoredCall {
  requestId: string;
  system: string;
  messages: Array<{ role: "user" | "assistant"; content: string }>;
  maxTokens: number;
  editTool: boolean;
}

/** Where escalation bodies (the prompt of a queued call) and their answers wait: files, or PostgreSQL for a farm that fails over. */
export interface EscalationStore {
  save(c: StoredCall): Promise<void>;
  load(id: string): Promise<StoredCall | null>;
  remove(id: string): Promise<void>;
  saveAnswer(a: EscalationAnswer): Promise<void>;
  answer(id: string): Promise<EscalationAnswer | null>;
}

/**
 * Escalation bodies and answers beside the journal (`<state>/escalations/`), not in it: they are
 * large, they are prompt text, and they are only needed until the call is made and the worker has its
 * answer. Written with fsync before the journal refers to them. No secret is ever in either.
 */
export class FileEscalationStore implements EscalationStore {
  constructor(private readonly dir: string) {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
  }

  private path(id: string, kind: "call" | "answer"): string {
    if (!/^[A-Za-z0-9_-]{8,80}$/.test(id)) throw new Error(`bad request id ${JSON.stringify(id)}`);
    return join(this.dir, `${id}.${kind}.json`);
  }

  private async write(file: string, value: unknown): Promise<void> {
    const fh = await open(file, "w", 0o600);
    try {
      await fh.writeFile(JSON.stringify(value));
      await fh.sync();
    } finally {
      await fh.close();
    }
  }

  private async read<T>(file: string): Promise<T | null> {
    try {
      return JSON.parse(await readFile(file, "utf8")) as T;
    } catch {
      return null;
    }
  }

  save(c: StoredCall): Promise<void> {
    return this.write(this.path(c.requestId, "call"), c);
  }
  load(id: string): Promise<StoredCall | null> {
    return this.read<StoredCall>(this.path(id, "call"));
  }
  remove(id: string): Promise<void> {
    return rm(this.path(id, "call"), { force: true });
  }
  saveAnswer(a: EscalationAnswer): Promise<void> {
    return this.write(this.path(a.requestId, "answer"), a);
  }
  answer(id: string): Promise<EscalationAnswer | null> {
    return this.read<EscalationAnswer>(this.path(id, "answer"));
  }
}
