import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync, existsSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import {
  applyEdits,
  EditProposalSchema,
  editProposalJsonSchema,
  parseEditProposal,
  type Edit,
  type EditProposal,
} from "@optimus/farm-server/dist/worker/edits.js";

const dirs: string[] = [];
after(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));

/** A temp worktree with src/a.ts, src/b.ts and a .git folder. */
function worktree(): string {
  const dir = mkdtempSync(join(tmpdir(), "optimus-edits-"));
  dirs.push(dir);
  mkdirSync(join(dir, "src"));
  mkdirSync(join(dir, ".git"));
  writeFileSync(join(dir, "src/a.ts"), "export const a = 1;\n");
  writeFileSync(join(dir, "src/b.ts"), "export const b = 2;\nexport const b2 = 2;\n");
  writeFileSync(join(dir, ".git/config"), "[core]\n");
  return dir;
}

const proposal = (...edits: Edit[]): EditProposal => ({ summary: "s", edits, done: true });
const write = (path: string, content = "x\n"): Edit => ({ kind: "write", path, content });
const opts = { scope: [] as string[], maxFileBytes: 10_000 };

test("the JSON schema and the zod schema describe the same shape, without numbers", () => {
  const sample = {
    summary: "add b",
    edits: [
      { kind: "replace", path: "a", search: "x", replace: "y" },
      { kind: "write", path: "b", content: "" },
    ],
    done: false,
  };
  assert.ok(EditProposalSchema.safeParse(sample).success);
  assert.deepEqual(editProposalJsonSchema.required, ["summary", "edits", "done"]);
  assert.ok(!JSON.stringify(editProposalJsonSchema).includes('"number"') && !JSON.stringify(editProposalJsonSchema).includes('"integer"'));
});

test("parseEditProposal accepts a valid answer, also inside a ```json fence", () => {
  const text = JSON.stringify({ summary: "s", edits: [write("src/c.ts")], done: true });
  const r = parseEditProposal(text);
  assert.ok(r.ok && r.proposal.edits[0]!.path === "src/c.ts");
  assert.ok(parseEditProposal("```json\n" + text + "\n```").ok);
});

test("parseEditProposal: malformed, truncated and empty answers", () => {
  const full = JSON.stringify({ summary: "s", edits: [write("src/c.ts", "long content")], done: true });
  const truncated = parseEditProposal(full.slice(0, 40));
  assert.ok(!truncated.ok && /truncated/.test(truncated.error), JSON.stringify(truncated));
  const malformed = parseEditProposal('{"summary": "s",, "edits": []}');
  assert.ok(!malformed.ok && /not valid JSON/.test(malformed.error) && !/truncated/.test(malformed.error), JSON.stringify(malformed));
  const empty = parseEditProposal("  ");
  assert.ok(!empty.ok && /empty/.test(empty.error));
});

test("parseEditProposal names the field of a schema violation", () => {
  const missing = parseEditProposal(JSON.stringify({ summary: "s", edits: [{ kind: "replace", path: "a", replace: "y" }], done: true }));
  assert.ok(!missing.ok && missing.error.includes("edits[0].search"), JSON.stringify(missing));
  const kind = parseEditProposal(JSON.stringify({ summary: "s", edits: [{ kind: "delete", path: "a" }], done: true }));
  assert.ok(!kind.ok && kind.error.includes("edits[0].kind"), JSON.stringify(kind));
  const done = parseEditProposal(JSON.stringify({ summary: "s", edits: [], done: "yes" }));
  assert.ok(!done.ok && done.error.includes("done"), JSON.stringify(done));
  const extra = parseEditProposal(JSON.stringify({ summary: "s", edits: [], done: true, colour: "blue" }));
  assert.ok(!extra.ok && extra.error.includes("colour"), JSON.stringify(extra));
});

for (const [path, why] of [
  ["../x", /'\.\.'/],
  ["/etc/passwd", /absolute/],
  [".git/config", /\.git/],
  ["src/.git/hooks/pre-commit", /\.git/],
  ["a/../../x", /'\.\.'/],
  ["./src/a.ts", /'\.' parts/],
  ["src//a.ts", /empty or '\.' parts/],
  ["src/", /names a folder/],
  ["src/.GIT./hooks/pre-commit", /\.git/],
  ["src/git~1/config", /\.git/],
  ["src/a\u0000b", /control characters \(found U\+0000/],
  ["src\\a.ts", /'\/'/],
] as const) {
  test(`hostile path ${JSON.stringify(path)} is refused and nothing changes`, async () => {
    const dir = worktree();
    const r = await applyEdits(dir, proposal(write("src/ok.ts"), write(path)), opts);
    assert.ok(!r.ok && why.test(r.error) && r.error.includes("edit 2"), JSON.stringify(r));
    assert.equal(existsSync(join(dir, "src/ok.ts")), false, "the valid first edit was not applied");
    assert.equal(readFileSync(join(dir, ".git/config"), "utf8"), "[core]\n");
  });
}

test("a path outside the scope is refused; folder prefixes and exact files are in scope", async () => {
  const dir = worktree();
  const scope = { scope: ["src/lib/", "README.md"], maxFileBytes: 1000 };
  const out = await applyEdits(dir, proposal(write("src/a.ts")), scope);
  assert.ok(!out.ok && /outside the unit's scope/.test(out.error), JSON.stringify(out));
  const prefixTrick = await applyEdits(dir, proposal(write("src/library.ts")), scope);
  assert.ok(!prefixTrick.ok, "src/lib/ does not cover src/library.ts");
  const ok = await applyEdits(dir, proposal(write("src/lib/new/c.ts", "c"), write("README.md", "r")), scope);
  assert.deepEqual(ok, { ok: true, changed: ["src/lib/new/c.ts", "README.md"] });
  assert.equal(readFileSync(join(dir, "src/lib/new/c.ts"), "utf8"), "c");
});

test("a symlinked folder pointing outside the worktree is refused", async () => {
  const dir = worktree();
  const outside = mkdtempSync(join(tmpdir(), "optimus-outside-"));
  dirs.push(outside);
  writeFileSync(join(outside, "victim.txt"), "untouched");
  symlinkSync(outside, join(dir, "src/escape"));
  symlinkSync(join(outside, "victim.txt"), join(dir, "src/victim-link.txt"));
  for (const edit of [
    write("src/escape/victim.txt"),
    write("src/escape/new/deep.txt"),
    { kind: "replace", path: "src/victim-link.txt", search: "untouched", replace: "owned" } as Edit,
  ]) {
    const r = await applyEdits(dir, proposal(edit), opts);
    assert.ok(!r.ok && /outside the worktree/.test(r.error), `${edit.path}: ${JSON.stringify(r)}`);
  }
  assert.equal(readFileSync(join(outside, "victim.txt"), "utf8"), "untouched");
  assert.equal(existsSync(join(outside, "new")), false);
});

test("a symlink inside the worktree that leads into .git is refused", async () => {
  const dir = worktree();
  symlinkSync(join(dir, ".git"), join(dir, "src/g"));
  const r = await applyEdits(dir, proposal(write("src/g/config")), opts);
  assert.ok(!r.ok && /\.git/.test(r.error), JSON.stringify(r));
});

test("a replace whose search text is found 0 or 2 times names the path and the count", async () => {
  const dir = worktree();
  const none = await applyEdits(dir, proposal({ kind: "replace", path: "src/a.ts", search: "const z", replace: "const y" }), opts);
  assert.ok(!none.ok && none.error.includes("src/a.ts") && /found 0 times/.test(none.error), JSON.stringify(none));
  const twice = await applyEdits(dir, proposal({ kind: "replace", path: "src/b.ts", search: "= 2;", replace: "= 3;" }), opts);
  assert.ok(!twice.ok && twice.error.includes("src/b.ts") && /found 2 times/.test(twice.error), JSON.stringify(twice));
  const missingFile = await applyEdits(dir, proposal({ kind: "replace", path: "src/nope.ts", search: "x", replace: "y" }), opts);
  assert.ok(!missingFile.ok && /does not exist/.test(missingFile.error));
});

test("content over maxFileBytes is refused", async () => {
  const dir = worktree();
  const r = await applyEdits(dir, proposal(write("src/big.ts", "x".repeat(101))), { scope: [], maxFileBytes: 100 });
  assert.ok(!r.ok && /101 bytes, over the limit of 100/.test(r.error), JSON.stringify(r));
  assert.equal(existsSync(join(dir, "src/big.ts")), false);
});

test("a valid multi-edit proposal applies; edits to one file chain; '$&' is literal", async () => {
  const dir = worktree();
  const r = await applyEdits(
    dir,
    proposal(
      { kind: "replace", path: "src/a.ts", search: "a = 1", replace: "a = 10" },
      { kind: "replace", path: "src/a.ts", search: "a = 10;", replace: "a = 10; // $& kept" },
      { kind: "replace", path: "src/b.ts", search: "b2 = 2", replace: "b2 = 4" },
      write("src/new/c.ts", "export const c = 3;\n"),
      write("src/unchanged.ts", "same"),
    ),
    opts,
  );
  assert.ok(r.ok, JSON.stringify(r));
  assert.deepEqual(r.changed, ["src/a.ts", "src/b.ts", "src/new/c.ts", "src/unchanged.ts"]);
  assert.equal(readFileSync(join(dir, "src/a.ts"), "utf8"), "export const a = 10; // $& kept\n");
  assert.equal(readFileSync(join(dir, "src/b.ts"), "utf8"), "export const b = 2;\nexport const b2 = 4;\n");
  assert.equal(readFileSync(join(dir, "src/new/c.ts"), "utf8"), "export const c = 3;\n");
  const again = await applyEdits(dir, proposal(write("src/unchanged.ts", "same")), opts);
  assert.deepEqual(again, { ok: true, changed: [] }, "rewriting identical content changes nothing");
});

test("all-or-nothing: when the 2nd edit is bad, the 1st file is unchanged", async () => {
  const dir = worktree();
  const r = await applyEdits(
    dir,
    proposal(
      { kind: "replace", path: "src/a.ts", search: "a = 1", replace: "a = 99" },
      { kind: "replace", path: "src/b.ts", search: "not there", replace: "x" },
    ),
    opts,
  );
  assert.ok(!r.ok && r.error.startsWith("edit 2"), JSON.stringify(r));
  assert.equal(readFileSync(join(dir, "src/a.ts"), "utf8"), "export const a = 1;\n");
});

test("a path through an existing file, or onto a folder, is refused", async () => {
  const dir = worktree();
  const through = await applyEdits(dir, proposal(write("src/a.ts/x.ts")), opts);
  assert.ok(!through.ok && /is a file, not a folder/.test(through.error), JSON.stringify(through));
  const folder = await applyEdits(dir, proposal(write("src")), opts);
  assert.ok(!folder.ok && /is a folder/.test(folder.error), JSON.stringify(folder));
});
