import type pg from "pg";
import type { EscalationAnswer } from "@optimus/shared";
import { quoteIdent } from "../store/pg-migrations.js";
import type { EscalationStore, StoredCall } from "./escalation-store.js";

/**
 * Escalation bodies and answers in the farm's PostgreSQL schema, beside its journal: a standby
 * that takes over can make a queued call, or hand a worker the answer the old leader received.
 */
export class PgEscalationStore implements EscalationStore {
  private readonly S: string;

  constructor(
    private readonly pool: pg.Pool,
    schema: string,
  ) {
    this.S = quoteIdent(schema);
  }

  private async write(id: string, kind: "call" | "answer", value: unknown): Promise<void> {
    await this.pool.query(
      `INSERT INTO ${this.S}.escalation_bodies (request_id, kind, body) VALUES ($1, $2, $3)
       ON CONFLICT (request_id, kind) DO UPDATE SET body = excluded.body`,
      [id, kind, JSON.stringify(value)],
    );
  }

  private async read<T>(id: string, kind: "call" | "answer"): Promise<T | null> {
    const r = await this.pool.query(`SELECT body FROM ${this.S}.escalation_bodies WHERE request_id = $1 AND kind = $2`, [id, kind]);
    return r.rows[0] ? (JSON.parse(r.rows[0].body as string) as T) : null;
  }

  save(c: StoredCall): Promise<void> {
    return this.write(c.requestId, "call", c);
  }
  load(id: string): Promise<StoredCall | null> {
    return this.read<StoredCall>(id, "call");
  }
  async remove(id: string): Promise<void> {
    await this.pool.query(`DELETE FROM ${this.S}.escalation_bodies WHERE request_id = $1 AND kind = 'call'`, [id]);
  }
  saveAnswer(a: EscalationAnswer): Promise<void> {
    return this.write(a.requestId, "answer", a);
  }
  answer(id: string): Promise<EscalationAnswer | null> {
    return this.read<EscalationAnswer>(id, "answer");
  }
}
