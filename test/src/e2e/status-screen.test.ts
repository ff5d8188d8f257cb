/**
 * Issue 14, a status that tells the truth: a task sent to a farm with no worker says it waits and
 * how to start one (the CLI and the farm's own log); `optimus status` says "waiting: no codegen
 * worker connected", then, with a coder but no reviewer, "waiting: no review worker connected";
 * a held change shows the command that approves it. The live screen runs in a real terminal (tmux)
 * at 80 columns, is resized to 120, fits both, and redraws by difference (one clear per size).
 * A real farm, real git, the real CLI; the workers are scripted in process (no model here).
 */
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { pino } from "pino";
import type { Lease } from "@optimus/farm-server";
import type { ReviewVerdict } from "@optimus/shared";
import { runCli } from "../helpers/cli.js";
import { tokenFor } from "../helpers/clients.js";
import { makeFixtureRepo, patchFor } from "../helpers/fixture.js";
import { CLI } from "../helpers/paths.js";
import { startTestFarm } from "../helpers/test-farm.js";
import { sleep, waitFor } from "../helpers/wait.js";
import { newLedger, startWorkers, stopAll } from "../helpers/workers.js";

const FIX = "export function add(a, b) {\n  return a + b;\n}\n";
const HELD: ReviewVerdict = { verdict: "approve", risk: "medium", summary: "fine, but look", comments: [] };

/** A tmux server of this test's own (its own socket), driving one window. */
function tmux(t: { after(fn: () => unknown): void }) {
  const socket = `optimus-status-${process.pid}-${Date.now()}`;
  const run = (...args: string[]) => execFileSync("tmux", ["-L", socket, "-f", "/dev/null", ...args], { stdio: "pipe" }).toString();
  t.after(() => {
    try {
      run("kill-server");
    } catch {
      // already gone with its last window
    }
  });
  return {
    run,
    /** the window as a person sees it, wrapped lines joined (so a line wider than the window shows as one) */
    screen: () => run("capture-pane", "-p", "-J", "-t", "status").replace(/\n+$/, "").split("\n"),
  };
}

const widest = (lines: string[]) => Math.max(...lines.map((l) => [...l].length));

test(
  "status tells why work waits and what a person must do; the live screen fits 80 and 120 columns and redraws by difference",
  { timeout: 180_000 },
  async (t) => {
    const repo = makeFixtureRepo(t);
    const logged: string[] = [];
    const log = pino({ level: "warn" }, { write: (s: string) => void logged.push(s) });
    const { server: farm, adminToken: admin, client } = await startTestFarm(t, { repo, log, config: { heartbeatIntervalMs: 500 } });
    const env = { OPTIMUS_FARM: farm.url, OPTIMUS_TOKEN: admin };
    const status = async (...args: string[]) => {
      const r = await runCli(["status", "--once", ...args], { cwd: repo, env });
      assert.equal(r.code, 0, r.stderr);
      return r.stdout;
    };

    // No worker at all: `send` says the task will wait and how to start what it needs; so does the farm's log.
    const sent = await runCli(["send", "Make add add", "--files", "src/add.js", "--check", "node test/add.test.js"], { cwd: repo, env });
    assert.equal(sent.code, 0, sent.stderr);
    const first = sent.stdout.trim();
    assert.match(sent.stderr, new RegExp(`^task ${first} created with 2 unit\\(s\\)`, "m"));
    assert.match(
      sent.stderr,
      /^it waits: no codegen worker connected, no review worker connected; start one with `optimus worker --role codegen --model <file\.gguf\|url>` and `optimus worker --role review --model <file\.gguf\|url>`/m,
    );
    const warned = (role: string) =>
      logged.filter((l) =>
        (JSON.parse(l) as { msg: string }).msg.startsWith(
          `task ${first} waits: no ${role} worker connected — start one with \`optimus worker --role ${role} `,
        ),
      );
    assert.equal(warned("codegen").length, 1, logged.join(""));
    let out = await status();
    assert.match(out, /^workers connected: 0 codegen, 0 review · tasks: 0 live, 1 waiting, 0 finished$/m);
    assert.match(out, new RegExp(`^ {2}u1 +ready +0 .*(\\n {4}↳ )?waiting: no codegen worker connected$`, "m"), out);
    for (const l of out.trimEnd().split("\n")) assert.ok(l.length <= 80, `wider than 80 columns when not on a terminal: ${l}`);

    // A coder, no reviewer: the change is evaluated, then stalls in review, and says why.
    const coderToken = await tokenFor(farm.url, admin, "worker", "coders");
    const reviewerToken = await tokenFor(farm.url, admin, "worker", "reviewers");
    const coding = async (lease: Lease) => ({
      outcome: "succeeded" as const,
      summary: "made add add",
      patch: patchFor(repo, (lease.context as { base: { branch: string } }).base.branch, { "src/add.js": FIX }),
    });
    const coder = await startWorkers(
      farm.url,
      coderToken,
      [{ nodeId: "coder-in-the-basement", role: "codegen", max: 1 }],
      newLedger(),
      coding,
    );
    t.after(() => stopAll(coder));
    const stateOf = (taskId: string, unitId: string) => client.units.get.query({ taskId, unitId }).then((u) => u.state);
    await waitFor(async () => (await stateOf(first, "u1")) === "reviewing", "the change to reach review", 60_000);
    out = await status("--width", "120");
    assert.match(out, /^workers connected: 1 codegen, 0 review/m);
    assert.match(out, /^ {2}u1 +in review +1 +coder-in-the-basement +\d+s +waiting: no review worker connected$/m, out);
    assert.match(out, /^ {2}u1-review +ready +0 +\d+s +waiting: no review worker connected$/m, out);
    assert.equal(warned("review").length, 1, logged.join(""));

    // A reviewer that approves at medium risk: the change is held, and the screen names the commands.
    const reviewer = await startWorkers(
      farm.url,
      reviewerToken,
      [{ nodeId: "reviewer", role: "review", max: 1 }],
      newLedger(),
      async () => ({ outcome: "succeeded", summary: "reviewed", review: HELD }),
    );
    await waitFor(async () => (await stateOf(first, "u1")) === "awaiting_approval", "the change to be held", 60_000);
    out = await status();
    assert.match(out, new RegExp(`^ {2}u1 +awaiting approval +1 `, "m"), out);
    for (const cmd of [
      `\`optimus unit diff ${first}/u1\``,
      `\`optimus approve ${first}/u1\``,
      `\`optimus reject ${first}/u1 --reason "…"\``,
    ])
      assert.ok(out.includes(cmd), `${cmd}\n${out}`);
    assert.match(out, /(^|· )1 needs you$/m);

    // The reviewer leaves; a second task stalls in review: the screen has a held change and a waiting one.
    await stopAll(reviewer);
    await waitFor(
      async () => (await client.fleet.workers.query()).every((w) => w.role !== "review" || !w.connected),
      "the reviewer to be gone",
    );
    const second = await client.tasks.create.mutate({
      id: "second-change-that-waits-for-a-reviewer-to-come-back",
      title: "Second change",
      units: [{ id: "again", goal: "make add add again", files: ["src/add.js"] }],
    });
    await waitFor(async () => (await stateOf(second.taskId, "again")) === "reviewing", "the second change to reach review", 60_000);

    // The live screen in a real terminal: 80 columns, then resized to 120.
    const term = tmux(t);
    const raw = mkdtempSync(join(tmpdir(), "optimus-status-raw-"));
    t.after(() => rmSync(raw, { recursive: true, force: true }));
    const sh = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;
    term.run(
      "new-session",
      "-d",
      "-s",
      "status",
      "-x",
      "80",
      "-y",
      "40",
      "-c",
      repo,
      "-e",
      `OPTIMUS_FARM=${farm.url}`,
      "-e",
      `OPTIMUS_TOKEN=${admin}`,
      // A moment for pipe-pane to attach before the first byte.
      `sleep 0.5; exec ${sh(process.execPath)} ${sh(CLI)} status`,
    );
    term.run("pipe-pane", "-t", "status", "-o", `cat >> ${sh(join(raw, "out"))}`);
    const shows = async (width: number) =>
      waitFor(
        () => {
          const s = term.screen();
          const text = s.join("\n");
          return text.includes(`optimus approve ${first}/u1`) && text.includes("waiting: no review worker connected") && widest(s) > 60
            ? s
            : null;
        },
        `the live screen at ${width} columns`,
        30_000,
      ).catch((e: Error) => {
        throw new Error(`${e.message}\n${term.screen().join("\n")}`);
      });
    const fits = (s: string[], width: number) => {
      const text = s.join("\n");
      assert.ok(widest(s) <= width, `a line wider than ${width} columns:\n${text}`);
      assert.match(text, new RegExp(`^${first} +running\\b`, "m"), text);
      assert.match(text, new RegExp(`^${second.taskId} +running\\b`, "m"), text);
      assert.match(text, /waiting: no review worker connected/);
      assert.match(text, /needs you: review/);
      assert.match(text, /q or Ctrl-C to quit/);
      // Live first: the held change's task before the one that waits.
      assert.ok(text.indexOf(`\n${first} `) < text.indexOf(`\n${second.taskId} `), text);
    };
    const at80 = await shows(80);
    fits(at80, 80);
    // Redrawn as the clock moves, without clearing the screen again.
    await sleep(2_500);
    const clears = () => readFileSync(join(raw, "out"), "utf8").split("\x1b[2J").length - 1;
    assert.equal(clears(), 1, "one clear: the first frame");
    const frames = readFileSync(join(raw, "out"), "utf8").split("live · ").length - 1;
    assert.ok(frames >= 3, `the footer's clock was redrawn (${frames} times)`);
    // What the redraws cost next to the first, whole frame: a tick rewrites the footer line only.
    const bytes = readFileSync(join(raw, "out"), "utf8");
    const whole = bytes.indexOf("live · ") + 40;
    t.diagnostic(`80 columns: first frame ${whole} bytes; ${frames - 1} later frame(s) ${bytes.length - whole} bytes in all`);
    t.diagnostic(`the screen at 80 columns:\n${at80.join("\n")}`);

    term.run("resize-window", "-t", "status", "-x", "120", "-y", "40");
    const at120 = await waitFor(
      () => {
        const s = term.screen();
        return widest(s) > 80 ? s : null;
      },
      "the screen to use 120 columns",
      15_000,
    );
    fits(at120, 120);
    t.diagnostic(`the screen at 120 columns:\n${at120.join("\n")}`);
    assert.match(at120.join("\n"), /^ {2}again +in review +1 +coder-in-the-basement +\d+s +waiting: no review worker connected$/m);
    assert.equal(clears(), 2, "a resize redraws the screen whole once");

    // q leaves the screen and ends the command.
    term.run("send-keys", "-t", "status", "q");
    await waitFor(
      () => {
        try {
          term.run("has-session", "-t", "status");
          return false;
        } catch {
          return true;
        }
      },
      "status to quit on q",
      10_000,
    );
  },
);
