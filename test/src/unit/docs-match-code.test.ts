/**
 * The docs say what the code does (issue 15, docs drift): the folder lists of docs/conventions.md and
 * the README's layout are the folders on disk, the lease-id format of the conventions and the
 * glossary is the one the farm makes, and a comment that names a file names one in this repository.
 */
import assert from "node:assert/strict";
import { existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { ServerConfig, type EventBody } from "@optimus/shared";
import type { FarmState } from "@optimus/farm-server/dist/core/farm-state.js";
import { LeaseCommands } from "@optimus/farm-server/dist/core/lease-commands.js";
import type { UnitRecord } from "@optimus/farm-server/dist/store/projection.js";
import { ROOT } from "../helpers/paths.js";

const read = (p: string) => readFileSync(join(ROOT, p), "utf8");
const foldersOf = (dir: string) =>
  readdirSync(join(ROOT, dir))
    .filter((f) => statSync(join(ROOT, dir, f)).isDirectory())
    .sort();
const PACKAGES = ["farm-server/src", "extension/src", "test/src", "shared/src", "webview/src"];

test("the conventions' folder lists are the folders under each package's src/", () => {
  const conventions = read("docs/conventions.md");
  const listed = new Map<string, string[]>();
  for (const m of conventions.matchAll(/In `([\w-]+\/src)\/`:((?:\s*`[\w-]+`[,.])+)/g))
    listed.set(m[1]!, [...m[2]!.matchAll(/`([\w-]+)`/g)].map((x) => x[1]!).sort());
  const none = /`([\w-]+\/src)\/` and `([\w-]+\/src)\/` have no folders/.exec(conventions);
  for (const dir of [none?.[1], none?.[2]]) if (dir) listed.set(dir, []);
  for (const dir of PACKAGES) assert.deepEqual(listed.get(dir), foldersOf(dir), `docs/conventions.md on ${dir}`);
});

test("the README's layout names every folder under each package's src/, and no other", () => {
  const readme = read("README.md");
  const block = readme.slice(readme.indexOf("## Layout"), readme.indexOf("## Benchmarks"));
  const entries = new Map<string, string>();
  let current = "";
  for (const line of block.split("\n")) {
    const head = /^([\w-]+)\/\s/.exec(line);
    if (head) current = head[1]!;
    if (current) entries.set(current, `${entries.get(current) ?? ""} ${line}`);
  }
  for (const dir of PACKAGES) {
    const text = entries.get(dir.split("/")[0]!) ?? "";
    const named = new Set<string>();
    for (const m of text.matchAll(/\bsrc\/\{([\w,-]+)\}/g)) for (const f of m[1]!.split(",")) named.add(f);
    for (const m of text.matchAll(/\bsrc\/([\w-]+)/g)) named.add(m[1]!);
    if (/\bsrc\/ \(no folders\)/.test(text)) assert.deepEqual(foldersOf(dir), [], `${dir} has folders, the README says none`);
    else assert.deepEqual([...named].sort(), foldersOf(dir), `the README's layout of ${dir}`);
  }
});

test("lease ids have the documented form <task>/<unit>#<attempt>.<nonce><n>: unique within a farm start and across starts", () => {
  const FORM = "`<task>/<unit>#<attempt>.<nonce><n>`";
  assert.ok(read("docs/conventions.md").includes(FORM), "the conventions give the form");
  assert.ok(read("docs/glossary.md").includes(FORM), "the glossary gives the form");
  const made: string[] = [];
  const state = {
    commit: (events: EventBody[]) => {
      for (const e of events) if (e.type === "unit_leased") made.push(e.data.leaseId);
      return Promise.resolve();
    },
  } as unknown as FarmState;
  const unit = { taskId: "fix-login", unitId: "u1", attempt: 1, spec: {} } as unknown as UnitRecord;
  const farmStart = new LeaseCommands(state, ServerConfig.parse({}));
  farmStart.lease(unit, "w1");
  farmStart.lease(unit, "w1");
  new LeaseCommands(state, ServerConfig.parse({})).lease(unit, "w1");
  for (const id of made) assert.match(id, /^fix-login\/u1#2\.[0-9a-f]{8}[0-9a-z]+$/);
  assert.equal(new Set(made).size, 3, `three leases of the same attempt, three ids: ${made.join(", ")}`);
  assert.equal(made[0]!.slice(0, -1), made[1]!.slice(0, -1), "one nonce per farm start, then a counter");
  assert.notEqual(made[0]!.split(".")[1]!.slice(0, 8), made[2]!.split(".")[1]!.slice(0, 8), "another farm start, another nonce");
});

test("a comment that names a file of the project names one that exists in this repository", () => {
  const files: string[] = [];
  const walk = (d: string) => {
    for (const f of readdirSync(join(ROOT, d))) {
      const p = `${d}/${f}`;
      if (statSync(join(ROOT, p)).isDirectory()) walk(p);
      else if (/\.(ts|mjs|cjs|sh)$/.test(f)) files.push(p);
    }
  };
  for (const d of [...PACKAGES, "test/bin", "scripts"]) walk(d);
  // A path into the project's own folders (not an example such as `docs/notes.md -> ~/.token`), or a bare document name.
  const PATH =
    /(?<![\w./-])((?:docs|scripts|(?:shared|farm-server|extension|webview|test)\/(?:src|dist|bin|schema))\/[\w./-]*\.(?:md|ts|js|cjs|mjs|sh|json))(?!\s*->)/g;
  const BARE_DOC = /(?<![\w./-])([A-Za-z][\w-]*\.md)\b/g;
  const wrong: string[] = [];
  for (const f of files) {
    read(f)
      .split("\n")
      .forEach((line, i) => {
        const comment = /^\s*(?:\/\/|\/?\*|#)(.*)$/.exec(line)?.[1] ?? /\s\/\/(.*)$/.exec(line)?.[1];
        if (comment === undefined) return;
        if (comment.includes("../shared")) wrong.push(`${f}:${i + 1}: ../shared is not part of this repository`);
        for (const m of comment.matchAll(PATH)) {
          const p = m[1]!.replace(/[.,;:)]+$/, "");
          if (!existsSync(join(ROOT, p)) && !existsSync(join(ROOT, p.replace("/dist/", "/src/").replace(/\.js$/, ".ts"))))
            wrong.push(`${f}:${i + 1}: ${p}`);
        }
        for (const m of comment.matchAll(BARE_DOC))
          if (m[1] !== "README.md" && !existsSync(join(ROOT, "docs", m[1]!))) wrong.push(`${f}:${i + 1}: ${m[1]}`);
      });
  }
  assert.deepEqual(wrong, []);
});
