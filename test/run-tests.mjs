#!/usr/bin/env node
// Runs every compiled test file with node's own test runner, one file at a time (the e2e suites
// start real servers and processes; running them side by side on a 2-core machine only adds noise),
// and ends with a plain "N passed, N failed" line.
import { spawn } from "node:child_process";
import { mkdtempSync, readdirSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, relative } from "node:path";
import { fileURLToPath } from "node:url";

const root = fileURLToPath(new URL("./dist", import.meta.url));
// `--soak`: the long fault-injection runs (test/src/soak, *.soak.ts), not part of `npm test`.
const soak = process.argv.includes("--soak");
const only = process.argv.slice(2).filter((a) => a !== "--soak");
const suffix = soak ? ".soak.js" : ".test.js";
const files = [];
const walk = (d) => {
  for (const f of readdirSync(d).sort()) {
    const p = join(d, f);
    if (statSync(p).isDirectory()) walk(p);
    else if (f.endsWith(suffix) && (only.length === 0 || only.some((o) => p.includes(o)))) files.push(p);
  }
};
walk(root);
if (files.length === 0) {
  console.error("no test files found: run `npm run build` first");
  process.exit(1);
}
console.error(`running ${files.length} test file(s): ${files.map((f) => relative(root, f)).join(", ")}`);
// Every farm the tests start keeps its state in a home of this run's own (never the user's
// ~/.optimus/farm), removed at the end.
const ownHome = !process.env.OPTIMUS_HOME;
const home = process.env.OPTIMUS_HOME ?? mkdtempSync(join(tmpdir(), "optimus-test-home-"));
const child = spawn(process.execPath, ["--test", "--test-concurrency=1", "--test-timeout=900000", "--test-reporter=spec", ...files], {
  stdio: ["ignore", "pipe", "inherit"],
  env: { ...process.env, OPTIMUS_HOME: home, OPTIMUS_STRICT_LIFECYCLE: "1" },
});
let tail = "";
child.stdout.on("data", (b) => {
  process.stdout.write(b);
  tail = (tail + b.toString()).slice(-4000);
});
child.on("exit", (code) => {
  if (ownHome) rmSync(home, { recursive: true, force: true });
  const count = (what) => Number(new RegExp(`ℹ ${what} (\\d+)`).exec(tail)?.[1] ?? 0);
  const passed = count("pass");
  const failed = count("fail") + count("cancelled");
  console.log(`\n${passed} passed, ${failed} failed`);
  process.exit(code ?? 1);
});
