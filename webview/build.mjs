#!/usr/bin/env node
// Bundles the two webview pages into webview/dist: <page>.js (one IIFE per page, Lit and the
// vscode-elements it uses included) and <page>.css (the page's stylesheet with common.css inlined).
// The extension host loads them with webview.asWebviewUri; see README.md for the HTML contract.
// Usage: node webview/build.mjs [--watch]
import { rmSync, statSync } from "node:fs";
import { join, relative } from "node:path";
import { fileURLToPath } from "node:url";
import * as esbuild from "esbuild";

const here = fileURLToPath(new URL(".", import.meta.url));
const src = join(here, "src");
const outdir = join(here, "dist");
const pages = ["unit-detail", "dashboard"];

/** @type {import("esbuild").BuildOptions} */
const options = {
  entryPoints: pages.flatMap((p) => [join(src, `${p}.ts`), join(src, `${p}.css`)]),
  outdir,
  bundle: true,
  minify: true,
  format: "iife",
  target: "es2022",
  platform: "browser",
  // Lit's dev build (warnings, extra checks) is chosen only under the "development" condition.
  conditions: ["production"],
  legalComments: "eof",
  sourcemap: false,
  logLevel: "warning",
  metafile: true,
};

if (process.argv.includes("--watch")) {
  const ctx = await esbuild.context({ ...options, logLevel: "info" });
  await ctx.watch();
} else {
  rmSync(outdir, { recursive: true, force: true });
  const result = await esbuild.build(options);
  for (const file of Object.keys(result.metafile.outputs).sort()) {
    const abs = join(process.cwd(), file);
    console.log(`${relative(process.cwd(), abs).padEnd(32)} ${String(statSync(abs).size).padStart(8)} bytes`);
  }
}
