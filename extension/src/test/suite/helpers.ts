// What the suites inside VS Code share: the harness's settings, polling, and the farm's remote control.
import assert from "node:assert/strict";

/** What the harness (test/src/e2e/vscode-extension.test.ts) tells the suite through the environment. */
export const env = (k: string) => {
  const v = process.env[k];
  if (!v) throw new Error(`${k} is not set: run this suite through the harness`);
  return v;
};

export async function until<T>(
  what: string,
  fn: () => T | undefined | null | false | Promise<T | undefined | null | false>,
  timeoutMs = 60_000,
): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

export const control = async (path: string) => {
  const r = await fetch(`${env("OPTIMUS_TEST_CONTROL_URL")}${path}`, { method: "POST" });
  assert.equal(r.status, 200, `control ${path}: ${await r.text()}`);
};
