import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

/** A key file for the farm's development `file` vault: outside the repository, readable by its owner only. */
export function keyVault(t: { after(fn: () => unknown): void }, key: string): string {
  const dir = mkdtempSync(join(tmpdir(), "optimus-vault-"));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  mkdirSync(join(dir, "anthropic"), { mode: 0o700 });
  writeFileSync(join(dir, "anthropic", "key"), key, { mode: 0o600 });
  chmodSync(dir, 0o700);
  return dir;
}
