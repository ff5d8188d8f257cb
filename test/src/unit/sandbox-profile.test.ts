import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { bwrapArgs, ETC_ALLOWLIST, sandboxExecProfile } from "@optimus/farm-server/dist/sandbox/index.js";

const view = {
  cwd: "/srv/farm/worktrees/t--u-1",
  home: "/tmp/optimus-check-x/home",
  readOnly: ["/opt/caches/npm"],
  readWrite: [],
  hide: ["/opt/farm-home"],
};

test("the bubblewrap view mounts no /, only system folders, the worktree and HOME, and masks the farm's home", () => {
  const exists = (p: string) => p !== "/lib32" && p !== "/libx32";
  // A real folder holding the farm's home, shown read-only as a whole (as /opt might be).
  const tools = mkdtempSync(join(tmpdir(), "optimus-tools-"));
  mkdirSync(join(tools, "farm-home"));
  const args = bwrapArgs({ ...view, readOnly: [...view.readOnly, tools], hide: [join(tools, "farm-home")] }, exists);
  const pairs = (flag: string) => args.flatMap((a, i) => (a === flag ? [args[i + 1]!] : []));
  assert.ok(!pairs("--ro-bind").includes("/") && !pairs("--bind").includes("/"), "the host's root is never mounted");
  assert.ok(
    args.includes("--unshare-all") && args.includes("--cap-drop") && args.includes("--new-session") && args.includes("--die-with-parent"),
  );
  assert.deepEqual(pairs("--bind"), [view.home, view.cwd]);
  assert.ok(pairs("--ro-bind").includes("/opt/caches/npm"));
  assert.ok(pairs("--ro-bind").includes(`${view.cwd}/.git`), "the worktree's .git is read-only");
  assert.ok(
    pairs("--ro-bind").every((p) => !p.startsWith("/etc/") || ETC_ALLOWLIST.includes(p.slice(5))),
    "only allowlisted /etc files",
  );
  assert.ok(!pairs("--ro-bind").includes("/etc/shadow") && !pairs("--ro-bind").includes("/etc"));
  assert.ok(pairs("--tmpfs").includes(join(tools, "farm-home")), "a hidden folder inside a read-only one is masked");
  assert.ok(args.lastIndexOf(join(tools, "farm-home")) > args.lastIndexOf(tools), "masks come after the binds they cover");
  assert.deepEqual(args.slice(-4), ["--remount-ro", "/", "--chdir", view.cwd]);
  assert.throws(() => bwrapArgs({ ...view, cwd: "relative/dir" }, exists), /must be absolute/);
});

test("the sandbox-exec profile denies by default, allows the same folders, denies the hidden ones last, and no network but the egress port", () => {
  const p = sandboxExecProfile({ ...view, tmp: "/private/var/folders/x/T", egressPort: 51234 });
  const lines = p.trim().split("\n");
  assert.equal(lines[0], "(version 1)");
  assert.equal(lines[1], "(deny default)");
  assert.match(
    p,
    /\(allow file-read\* file-write\* \(subpath "\/srv\/farm\/worktrees\/t--u-1"\) \(subpath "\/tmp\/optimus-check-x\/home"\) \(subpath "\/private\/var\/folders\/x\/T"\)\)/,
  );
  assert.match(p, /\(allow file-read\* [^\n]*\(subpath "\/opt\/caches\/npm"\)/);
  assert.match(p, /\(deny file-write\* \(literal "\/srv\/farm\/worktrees\/t--u-1\/\.git"\)\)/);
  assert.ok(p.includes("(deny network*)"));
  assert.ok(p.includes('(allow network-outbound (remote ip "localhost:51234"))'));
  assert.equal(
    lines.at(-1),
    '(deny file-read* file-write* (subpath "/opt/farm-home"))',
    "the hidden folders are denied last (later rules win)",
  );
  assert.doesNotMatch(p, /\(allow file-read\*[^\n]*\(subpath "\/"\)/, "never the whole disk");
  // Paths are quoted as strings: a hostile folder name cannot close the rule.
  const q = sandboxExecProfile({ ...view, cwd: '/srv/a") (allow default) ("', tmp: "/t" });
  assert.ok(q.includes('(subpath "/srv/a\\") (allow default) (\\"")'));
  assert.ok(!sandboxExecProfile({ ...view, tmp: "/t" }).includes("network-outbound"));
});

test("binds: the dependency cache is mounted read-only at <worktree>/node_modules after the worktree (bwrap), readable through its link only (sandbox-exec); a bind outside the worktree is refused", () => {
  const exists = (p: string) => p !== "/lib32" && p !== "/libx32";
  const cache = "/srv/farm/repos/r-1/deps/0123abcd/node_modules";
  const binds = [{ src: cache, dest: `${view.cwd}/node_modules`, readOnly: true }];
  const args = bwrapArgs({ ...view, binds }, exists);
  const at = args.findIndex((a, i) => a === "--ro-bind" && args[i + 1] === cache);
  assert.ok(at > 0, "the cache is bound read-only");
  assert.equal(args[at + 2], `${view.cwd}/node_modules`, "at the worktree's node_modules");
  const worktreeBind = args.findIndex((a, i) => a === "--bind" && args[i + 1] === view.cwd);
  assert.ok(at > worktreeBind, "after the worktree's own bind, so it covers it");
  assert.equal(args.filter((a) => a === cache).length, 1, "never also mounted at its own path");
  // A set-up's own output is the one read-write bind.
  const rw = bwrapArgs({ ...view, binds: [{ ...binds[0]!, readOnly: false }] }, exists);
  assert.equal(rw[rw.indexOf(cache) - 1], "--bind");
  for (const dest of ["/usr/lib/node_modules", view.cwd, `${view.cwd}/../other`, `${view.cwd}/.git/hooks`, "relative/node_modules"]) {
    assert.throws(
      () => bwrapArgs({ ...view, binds: [{ src: cache, dest, readOnly: true }] }, exists),
      /inside the worktree|absolute/,
      dest,
    );
  }

  const p = sandboxExecProfile({ ...view, binds, tmp: "/private/var/folders/x/T" });
  const lines = p.trim().split("\n");
  const hideAt = lines.findIndex((l) => l.startsWith('(deny file-read* file-write* (subpath "/opt/farm-home")'));
  assert.ok(hideAt > 0);
  assert.equal(
    lines[hideAt + 1],
    `(allow file-read* (subpath "${cache}"))`,
    "readable after the masks (the cache may sit in the farm's home)",
  );
  assert.equal(
    lines[hideAt + 2],
    `(deny file-write* (subpath "${cache}") (literal "${view.cwd}/node_modules"))`,
    "never writable, nor the link",
  );
  assert.doesNotMatch(p, new RegExp(`file-write\\* \\(subpath "${cache}"\\)\\)`));
  const setup = sandboxExecProfile({ ...view, binds: [{ ...binds[0]!, readOnly: false }], tmp: "/t" });
  assert.ok(setup.includes(`(allow file-read* file-write* (subpath "${cache}"))`), "a set-up writes its own output");
  assert.throws(
    () => sandboxExecProfile({ ...view, binds: [{ src: cache, dest: "/usr/local/lib/node_modules", readOnly: true }], tmp: "/t" }),
    /inside the worktree/,
  );
});
