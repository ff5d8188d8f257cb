/**
 * What a sandboxed command can see: one description, turned into a bubblewrap argv on Linux and a
 * sandbox-exec profile on macOS. The rule: the worktree read-write, a private HOME and /tmp,
 * toolchains and dependency caches read-only, and nothing else — no farm home, no other repository,
 * no user's home, no host sockets, no network but the egress bridge. The farm's secrets are out of
 * reach because they are never mounted, not because output is scrubbed.
 */
import { existsSync, lstatSync, readlinkSync } from "node:fs";
import { dirname, isAbsolute, normalize, sep } from "node:path";

export interface SandboxView {
  /** the worktree: the only place the command may change */
  cwd: string;
  /** a private, empty HOME (read-write) */
  home: string;
  /** toolchains, dependency caches: read-only */
  readOnly: string[];
  /** more read-write folders (the egress bridge's socket folder) */
  readWrite: string[];
  /** folders masked even where a read-only folder contains them (the farm's home, a worker's token) */
  hide: string[];
  /**
   * folders shown at another place inside the worktree (the cached dependencies at
   * `<worktree>/node_modules`), mounted after the worktree; read-only unless said otherwise
   */
  binds?: SandboxBind[];
}

/** A folder `src` of the host seen at `dest` (inside the worktree) in the sandbox. */
export interface SandboxBind {
  src: string;
  dest: string;
  readOnly: boolean;
}

/** Checks a bind: both paths absolute, the destination strictly inside the worktree (never over a system folder). */
export function checkBind(view: Pick<SandboxView, "cwd">, b: SandboxBind): void {
  if (!isAbsolute(b.src) || !isAbsolute(b.dest)) throw new Error(`sandbox paths must be absolute: ${b.src} -> ${b.dest}`);
  const dest = normalize(b.dest);
  if (dest === normalize(view.cwd) || !within(dest, normalize(view.cwd)) || dest.split(sep).includes(".git")) {
    throw new Error(`a sandbox bind must land inside the worktree (and not in .git): ${b.dest}`);
  }
}

/** Top-level system folders with programs and libraries (symlinks on merged-/usr systems are kept as symlinks). */
const SYSTEM_DIRS = ["/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/opt"];

/**
 * The few files of /etc that programs need to run (users, name service, TLS roots, the
 * alternatives symlinks Debian's /usr/bin points through, the dynamic linker's cache). Not /etc as
 * a whole: it holds host keys, shadow passwords and whatever an operator put there.
 */
export const ETC_ALLOWLIST = [
  "passwd",
  "group",
  "hosts",
  "host.conf",
  "nsswitch.conf",
  "resolv.conf",
  "gai.conf",
  "protocols",
  "services",
  "ssl",
  "ca-certificates",
  "ca-certificates.conf",
  "alternatives",
  "localtime",
  "timezone",
  "ld.so.cache",
  "ld.so.conf",
  "ld.so.conf.d",
  "os-release",
  "mime.types",
  "locale.alias",
  "locale.gen",
  "inputrc",
];

/** The folder of the running node's installation when it is not under /usr (nvm, a tarball). */
export function nodeInstallDir(execPath = process.execPath): string | null {
  const prefix = dirname(dirname(execPath));
  return SYSTEM_DIRS.some((d) => prefix === d || prefix.startsWith(d + sep)) ? null : prefix;
}

const within = (p: string, dir: string) => p === dir || p.startsWith(dir.endsWith(sep) ? dir : dir + sep);

/** The bubblewrap argv (without the command) for a view. Paths are checked absolute; binds in mount order. */
export function bwrapArgs(view: SandboxView, exists: (p: string) => boolean = existsSync): string[] {
  for (const p of [view.cwd, view.home, ...view.readOnly, ...view.readWrite, ...view.hide]) {
    if (!isAbsolute(p)) throw new Error(`sandbox paths must be absolute: ${p}`);
  }
  const args = [
    // Every namespace of its own: no network (only the loopback inside), no view of host processes
    // (whose command lines and environments may hold tokens), no host IPC; no capabilities, so no
    // mount or mknod tricks even as root; a new session, so it cannot push keystrokes to a terminal.
    "--unshare-all",
    "--die-with-parent",
    "--new-session",
    "--cap-drop",
    "ALL",
    "--dev",
    "/dev",
    "--proc",
    "/proc",
    "--tmpfs",
    "/tmp",
  ];
  for (const d of SYSTEM_DIRS) {
    if (!exists(d)) continue;
    const link = symlinkTarget(d);
    if (link !== null) args.push("--symlink", link, d);
    else args.push("--ro-bind", d, d);
  }
  for (const f of ETC_ALLOWLIST) if (exists(`/etc/${f}`)) args.push("--ro-bind", `/etc/${f}`, `/etc/${f}`);
  const node = nodeInstallDir();
  const readOnly = [...(node ? [node] : []), ...view.readOnly].map((p) => normalize(p));
  for (const d of readOnly) if (exists(d)) args.push("--ro-bind", d, d);
  for (const d of [view.home, ...view.readWrite]) args.push("--bind", d, d);
  args.push("--bind", view.cwd, view.cwd);
  // A worktree's `.git` is a file naming its git folder (which is not mounted): read-only, so the
  // command cannot point it anywhere the farm's git would later read.
  if (exists(`${view.cwd}/.git`)) args.push("--ro-bind", `${view.cwd}/.git`, `${view.cwd}/.git`);
  // Binds whose destination is inside the worktree (cached dependencies): after the worktree, so
  // they cover it; `--ro-bind` for the cache, so no check or eval can change what the next one sees.
  for (const b of view.binds ?? []) {
    checkBind(view, b);
    args.push(b.readOnly ? "--ro-bind" : "--bind", normalize(b.src), normalize(b.dest));
  }
  // Masks last: they cover anything a read-only folder brought along.
  const visible = [...SYSTEM_DIRS, ...readOnly, view.cwd, view.home, ...view.readWrite];
  for (const h of view.hide.map((p) => normalize(p))) {
    // Only what a read-only folder brought along; never a folder holding the worktree or HOME itself.
    if (!exists(h) || !visible.some((v) => within(h, v)) || [view.cwd, view.home, ...view.readWrite].some((w) => within(w, h))) continue;
    if (isDir(h)) args.push("--tmpfs", h);
    else args.push("--ro-bind", "/dev/null", h);
  }
  // The root is bwrap's own tmpfs holding the mount points: read-only too, so nothing written outside
  // the worktree, HOME and /tmp even seems to succeed.
  args.push("--remount-ro", "/", "--chdir", view.cwd);
  return args;
}

function symlinkTarget(p: string): string | null {
  try {
    return lstatSync(p).isSymbolicLink() ? readlinkSync(p) : null;
  } catch {
    return null;
  }
}

function isDir(p: string): boolean {
  try {
    return lstatSync(p).isDirectory();
  } catch {
    return false;
  }
}

const quote = (p: string) => JSON.stringify(p);

/**
 * A sandbox-exec (Seatbelt) profile for macOS with the same view: deny by default, system
 * folders read-only, the worktree, HOME and TMPDIR read-write, hidden folders denied last (later
 * rules win), no network except, when given, the egress relay's loopback port.
 */
export function sandboxExecProfile(view: SandboxView & { tmp: string; egressPort?: number }): string {
  const ro = [
    "/usr",
    "/bin",
    "/sbin",
    "/System",
    "/Library/Developer",
    "/Library/Frameworks",
    "/Applications/Xcode.app",
    "/opt/homebrew",
    "/usr/local",
    "/private/etc",
    "/private/var/db/timezone",
    "/dev",
    ...view.readOnly,
  ];
  const node = nodeInstallDir();
  if (node) ro.push(node);
  // Binds cannot be mounted here: the caller links `dest` to `src` (a symlink in the worktree), and
  // the profile lets the command read (or, for a set-up's own output, write) the real folder.
  const binds = view.binds ?? [];
  for (const b of binds) checkBind(view, b);
  const rw = [view.cwd, view.home, view.tmp, ...view.readWrite];
  const lines = [
    "(version 1)",
    "(deny default)",
    "(allow process-fork)",
    "(allow process-exec)",
    "(allow signal (target same-sandbox))",
    "(allow sysctl-read)",
    "(allow file-read-metadata)",
    `(allow file-read* ${ro.map((p) => `(subpath ${quote(p)})`).join(" ")} (literal "/"))`,
    `(allow file-read* file-write* ${rw.map((p) => `(subpath ${quote(p)})`).join(" ")})`,
    '(allow file-write* (literal "/dev/null") (literal "/dev/zero") (literal "/dev/tty") (regex #"^/dev/fd/"))',
    // The worktree's `.git` names the farm's git folder: readable, never writable.
    `(deny file-write* (literal ${quote(`${view.cwd}/.git`)}))`,
    "(deny network*)",
  ];
  if (view.egressPort !== undefined) lines.push(`(allow network-outbound (remote ip "localhost:${view.egressPort}"))`);
  if (view.hide.length) lines.push(`(deny file-read* file-write* ${view.hide.map((p) => `(subpath ${quote(p)})`).join(" ")})`);
  // After the masks (the cache may sit in the farm's home): exactly the bound folders, read-only
  // unless the bind says otherwise (a set-up writing its output), and the link itself never rewritten.
  for (const b of binds) {
    lines.push(b.readOnly ? `(allow file-read* (subpath ${quote(b.src)}))` : `(allow file-read* file-write* (subpath ${quote(b.src)}))`);
    if (b.readOnly) lines.push(`(deny file-write* (subpath ${quote(b.src)}) (literal ${quote(b.dest)}))`);
  }
  return lines.join("\n") + "\n";
}
