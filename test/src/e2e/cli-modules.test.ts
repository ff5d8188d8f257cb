import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { CLI } from "../helpers/paths.js";

/** The files a run of the CLI loads through the module loader (every ES module; a CommonJS package's entry). */
function modulesLoaded(t: { after(fn: () => void): void }, args: string[]): string[] {
  const dir = mkdtempSync(join(tmpdir(), "optimus-modules-"));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const hook = join(dir, "register.mjs");
  writeFileSync(
    hook,
    `import { register } from "node:module";\nregister("data:text/javascript," + encodeURIComponent(\`export async function load(url, context, next) { if (url.startsWith("file:")) process.stderr.write("MODULE " + url + "\\\\n"); return next(url, context); }\`));\n`,
  );
  const r = spawnSync(process.execPath, ["--import", hook, CLI, ...args], {
    encoding: "utf8",
    timeout: 60_000,
    env: { ...process.env, OPTIMUS_LOG_LEVEL: "silent" },
  });
  const loaded = r.stderr
    .split("\n")
    .filter((l) => l.startsWith("MODULE "))
    .map((l) => l.slice("MODULE ".length));
  assert.ok(loaded.length > 10, `the hook saw the modules (${r.stderr.slice(0, 300)})`);
  return loaded;
}

/**
 * What only the farm server needs: its state, API, PR loop, delivery, gateway, and their libraries.
 * (pino is not among them: a worker logs through it too, pretty on a terminal and JSON elsewhere.)
 */
const FARM_ONLY = [
  /farm-server\/dist\/farm\.js$/,
  /farm-server\/dist\/(api|prloop|dispatch|gateway|delivery|forge|planner|files|auth)\//,
  /farm-server\/dist\/store\/(?!state-lock\.js)/,
  /node_modules\/better-sqlite3\//,
  /node_modules\/prom-client\//,
  /node_modules\/@anthropic-ai\//,
  /node_modules\/@octokit\//,
];
const farmModules = (loaded: string[]) => loaded.filter((m) => FARM_ONLY.some((r) => r.test(m)));

test("`optimus worker` loads no farm module: neither for its help nor when it runs", (t) => {
  const help = modulesLoaded(t, ["worker", "--help"]);
  assert.deepEqual(farmModules(help), []);
  assert.ok(
    !help.some((m) => /cli\/(farm-up|task-commands|status|admin-commands)\.js$/.test(m)),
    "no other command's module is loaded for a help text",
  );
  // Running (the farm is unreachable, so it stops at once): still only the worker's side.
  const run = modulesLoaded(t, [
    "worker",
    "--role",
    "codegen",
    "--farm",
    "http://127.0.0.1:9",
    "--token",
    "opt_000000000000_" + "x".repeat(43),
  ]);
  assert.ok(
    run.some((m) => m.endsWith("worker/worker-agent.js")),
    "the worker itself was loaded",
  );
  assert.deepEqual(farmModules(run), []);
});
