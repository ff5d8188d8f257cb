#!/usr/bin/env node
// `npm run pack:node`: packs what a worker (or farm) node installs — @optimus/farm-server, with
// @optimus/shared bundled inside it (it is on no registry) — into pack/optimus-farm-server-<version>.tgz
// (git-ignored), and prints the one install command per platform (README "Installing a worker node",
// ADR 0023). Run after `tsc -b farm-server` (the npm script does): it packs the compiled dist/ as it is.
import { execFileSync } from "node:child_process";
import { cpSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { dirname, join, relative } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const out = join(root, "pack");
const stage = join(out, ".stage");
const npm = process.platform === "win32" ? "npm.cmd" : "npm";
const run = (args, cwd = root) => execFileSync(npm, args, { cwd, encoding: "utf8", stdio: ["ignore", "pipe", "inherit"] });

/** A compiled file whose source is gone would be packed and run: refuse (tsc -b never deletes outputs). */
function checkNoStaleOutput(pkg) {
  const dist = join(root, pkg, "dist");
  if (!existsSync(dist)) throw new Error(`${pkg}/dist is missing: run \`npm run pack:node\` (it builds first)`);
  const walk = (d) => readdirSync(d).flatMap((f) => (statSync(join(d, f)).isDirectory() ? walk(join(d, f)) : [join(d, f)]));
  for (const f of walk(dist).filter((f) => f.endsWith(".js"))) {
    const src = join(root, pkg, "src", relative(dist, f)).replace(/\.js$/, ".ts");
    if (!existsSync(src) && !existsSync(src.replace(/\.ts$/, ".tsx")))
      throw new Error(`${relative(root, f)} has no source (${relative(root, src)}): run \`npm run clean\` and pack again`);
  }
}

/** npm pack <dir> into <dest>; returns the tarball's path and its file list. */
function pack(dir, dest) {
  const [info] = JSON.parse(run(["pack", dir, "--pack-destination", dest, "--json", "--ignore-scripts"]));
  return { file: join(dest, info.filename), files: info.files.map((f) => f.path) };
}

checkNoStaleOutput("shared");
checkNoStaleOutput("farm-server");
rmSync(out, { recursive: true, force: true });
mkdirSync(stage, { recursive: true });
try {
  // shared, packed by its own `files` list, then unpacked where a bundled dependency lives
  const shared = pack(join(root, "shared"), stage);
  const server = join(stage, "farm-server");
  const bundledShared = join(server, "node_modules", "@optimus", "shared");
  mkdirSync(bundledShared, { recursive: true });
  execFileSync("tar", ["-xzf", shared.file, "-C", bundledShared, "--strip-components=1"]);

  // shared's own dependencies are bundled beside it: npm counts a dependency of a bundled package,
  // deduped to the bundling level, as bundled too, and would leave an empty folder for it otherwise
  const sharedDeps = Object.keys(JSON.parse(readFileSync(join(root, "shared", "package.json"), "utf8")).dependencies ?? {});
  for (const dep of sharedDeps) cpSync(join(root, "node_modules", dep), join(server, "node_modules", dep), { recursive: true });

  const pkg = JSON.parse(readFileSync(join(root, "farm-server", "package.json"), "utf8"));
  delete pkg.private; // a tarball for `npm i -g`: never published (the pack/ folder is its only home)
  pkg.bundleDependencies = ["@optimus/shared", ...sharedDeps];
  writeFileSync(join(server, "package.json"), JSON.stringify(pkg, null, 2) + "\n");
  cpSync(join(root, "farm-server", "dist"), join(server, "dist"), { recursive: true });

  const tarball = pack(server, out);
  // what must never reach a node: tests, source maps, sources, state
  const ours = tarball.files.filter((f) => !sharedDeps.some((d) => f.startsWith(`node_modules/${d}/`)));
  const bad = ours.filter((f) => /\.map$|\.test\.|(^|\/)src\/|\.tsbuildinfo$|(^|\/)\.optimus\/|\.(db|sqlite|token)$/.test(f));
  if (bad.length) throw new Error(`the tarball would contain ${bad.slice(0, 5).join(", ")}: fix the package's "files"`);
  if (!tarball.files.some((f) => f.startsWith("node_modules/@optimus/shared/dist/")))
    throw new Error("the tarball lacks the bundled @optimus/shared");
  const rel = relative(process.cwd(), tarball.file) || tarball.file;
  const v = pkg.dependencies["node-llama-cpp"];
  const line = (builds) => `npm i -g --os=none ./${rel} ${builds.map((b) => `@node-llama-cpp/${b}@${v}`).join(" ")}`;
  process.stdout.write(`${tarball.file}
${tarball.files.length} files, ${(statSync(tarball.file).size / 1024).toFixed(0)} kB. Install a node with one command (README "Installing a worker node"):
  Linux x64, CPU:          ${line(["linux-x64"])}
  Linux x64, CUDA:         ${line(["linux-x64", "linux-x64-cuda"])}
  Linux x64, Vulkan:       ${line(["linux-x64", "linux-x64-vulkan"])}
  Linux arm64, CPU:        ${line(["linux-arm64"])}
  macOS, Apple Silicon:    npm i -g ./${rel}
Add --ignore-scripts on a node that only runs workers (nothing is compiled).
`);
} finally {
  rmSync(stage, { recursive: true, force: true });
}
