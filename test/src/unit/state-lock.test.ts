import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { hostname, tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { acquireStateLock, lockFileOf } from "@optimus/farm-server/dist/store/state-lock.js";

// A stale lock never needs a manual step (issue 11, item 4): a dead holder's lock is taken over and
// reported; so is one whose pid now belongs to a later process; a running farm's lock is respected.

const dir = () => {
  const d = mkdtempSync(join(tmpdir(), "optimus-lock-"));
  return d;
};
const writeLock = (d: string, holder: object) => writeFileSync(lockFileOf(d), JSON.stringify(holder));

test("a lock whose farm is gone is taken over and reported; none is reported on a clean start", async (t) => {
  const d = dir();
  t.after(() => rmSync(d, { recursive: true, force: true }));
  const clean = acquireStateLock(d);
  assert.equal(clean.takenOver, undefined);
  clean.release();
  assert.equal(existsSync(lockFileOf(d)), false);
  // A pid that exited: nothing runs under it.
  const gone = spawn("true");
  await new Promise((r) => gone.once("exit", r));
  writeLock(d, { pid: gone.pid, host: hostname(), since: new Date(Date.now() - 60_000).toISOString() });
  const lock = acquireStateLock(d);
  assert.equal(lock.takenOver?.pid, gone.pid);
  assert.equal(JSON.parse(readFileSync(lockFileOf(d), "utf8")).pid, process.pid);
  lock.release();
});

test("a lock whose pid was reused by a later process is taken over; a farm that still runs keeps its lock", async (t) => {
  const d = dir();
  t.after(() => rmSync(d, { recursive: true, force: true }));
  const later = spawn("sleep", ["30"]);
  t.after(() => later.kill("SIGKILL"));
  await new Promise((r) => setTimeout(r, 100));
  // The lock is older than the process now holding its pid: a pid reused after the farm died.
  writeLock(d, { pid: later.pid, host: hostname(), since: new Date(Date.now() - 3_600_000).toISOString() });
  const lock = acquireStateLock(d);
  assert.equal(lock.takenOver?.pid, later.pid);
  lock.release();
  // Written after the process started: that process is the farm, and it runs.
  writeLock(d, { pid: later.pid, host: hostname(), since: new Date().toISOString() });
  assert.throws(() => acquireStateLock(d), new RegExp(`another farm server \\(pid ${later.pid}\\) is already running`));
});
