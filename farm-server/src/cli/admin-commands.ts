import { existsSync } from "node:fs";
import {
  formatTokenTtl,
  MAX_TOKEN_TTL_MS,
  MIN_TOKEN_TTL_MS,
  parseTokenTtl,
  TokenRole,
  utcMinute,
  type TokenListEntry,
} from "@optimus/shared";
import { journalPathOf } from "../home/farm-home.js";
import { verifyJournalFile } from "../store/sqlite-journal.js";
import { findFarmOrigin, httpClient, type GlobalOptions } from "./context.js";
import { CliError, EXIT } from "./errors.js";
import { progressLine } from "./progress.js";
import { printable } from "./printable.js";
import type { verifyPgJournal } from "../farm-stores.js";

/**
 * `optimus token create --role <role> [--ttl 24h]`: prints the new token on stdout, once. A worker
 * token expires a day after its last use unless `--ttl` says otherwise; an admin or editor token
 * expires only when given a `--ttl`.
 */
export async function createToken(o: GlobalOptions & { role: string; name?: string; approver?: boolean; ttl?: string }): Promise<void> {
  const role = TokenRole.safeParse(o.role);
  if (!role.success) throw new CliError(`--role must be one of ${TokenRole.options.join(", ")}, got '${o.role}'`, 2);
  const ttlMs = o.ttl === undefined ? undefined : parseTokenTtl(o.ttl);
  if (ttlMs === null)
    throw new CliError(
      `--ttl must be a duration such as 90s, 30m, 24h or 7d (from ${formatTokenTtl(MIN_TOKEN_TTL_MS)} to ${formatTokenTtl(MAX_TOKEN_TTL_MS)}), got '${o.ttl}'`,
      EXIT.usage,
    );
  if (o.approver && role.data !== "editor")
    throw new CliError(`--approver is for a person's editor token: use --role editor --name <you> --approver`, 2);
  if (o.approver && !o.name) throw new CliError("an approver token names its person: add --name <you>", 2);
  const { client } = httpClient(o);
  const t = await client.admin.createToken.mutate({
    role: role.data,
    name: o.name ?? `${role.data}-${Date.now().toString(36)}`,
    ...(o.approver ? { approver: true } : {}),
    ...(ttlMs ? { ttlMs } : {}),
  });
  console.log(t.token);
  const expiry = t.ttlMs ? `; it expires when unused for ${formatTokenTtl(t.ttlMs)} (first at ${utcMinute(t.expiresAt!)})` : "";
  console.error(
    `created ${t.role} token '${t.name}'${t.approver ? " with the approver right" : ""} (id ${t.tokenId})${expiry}; it is shown only now (keep it in a 0600 file and use --token-file)`,
  );
}

/** How a token's expiry reads in the list: when it expires (or expired), unless used before. */
const expiryOf = (t: TokenListEntry, now: number) =>
  t.expiresAt === undefined || t.revoked
    ? ""
    : t.expiresAt <= now
      ? `, expired ${utcMinute(t.expiresAt)}`
      : `, expires ${utcMinute(t.expiresAt)} unless used (ttl ${formatTokenTtl(t.ttlMs!)})`;

/**
 * `optimus token list`: one line a token (never its secret), with when it was made, last used and
 * expires; `--json` as the farm answers (`TokenListEntry`).
 */
export async function listTokens(o: GlobalOptions & { json?: boolean }): Promise<void> {
  const { client } = httpClient(o);
  const tokens = await client.admin.listTokens.query();
  if (o.json) {
    console.log(JSON.stringify(tokens, null, 2));
    return;
  }
  const now = Date.now();
  for (const t of tokens) {
    const used = t.lastUsedAt ? `last used ${utcMinute(t.lastUsedAt)}` : "not used since the farm started";
    console.log(
      `${t.tokenId}  ${t.role.padEnd(6)}  ${printable(t.name)}${t.approver ? "  approver" : ""}${t.revoked ? "  (revoked)" : ""}  created ${utcMinute(t.createdAt)}, ${used}${expiryOf(t, now)}`,
    );
  }
}

export async function revokeToken(tokenId: string, o: GlobalOptions): Promise<void> {
  const { client } = httpClient(o);
  await client.admin.revokeToken.mutate({ tokenId });
  console.error(`token ${tokenId} revoked`);
}

/** `optimus audit verify`: walks the hash chain of the journal file; names the first broken entry. */
export async function auditVerify(o: GlobalOptions & { journal?: string }): Promise<void> {
  const { origin, config } = findFarmOrigin(o);
  const progress = progressLine(process.stderr);
  let r: Awaited<ReturnType<typeof verifyPgJournal>> | ReturnType<typeof verifyJournalFile>;
  if (!o.journal && config.store.kind === "postgres") {
    // The journal the farm's settings name: PostgreSQL, read without taking the lead.
    const { verifyPgJournal } = await import("../farm-stores.js");
    const { SecretResolver } = await import("../secrets/index.js");
    r = await verifyPgJournal(config.store, new SecretResolver(config.secrets), (n) => progress.update(`verified ${n} entries…`));
  } else {
    const file = o.journal ?? journalPathOf(origin, config);
    if (!existsSync(file)) throw new CliError(`no journal at ${file}; pass --journal <file>`);
    r = verifyJournalFile(file, (n) => progress.update(`verified ${n} entries…`));
  }
  progress.done();
  if (!r.ok)
    throw new CliError(
      `audit chain broken at entry #${r.firstBroken!.seq}: ${r.firstBroken!.reason} (${r.checked} entries before it verified)`,
    );
  console.log(`audit chain intact: ${r.checked} entries verified, head ${r.head ?? "(empty)"}`);
}
