// Bundles the extension (and its in-editor test suite) with esbuild, and copies what it loads at run
// time: the webview pages and the manifest JSON Schema. `vscode` is provided by the editor; `mocha`
// is loaded from the repository when the suite runs.
import { build } from "esbuild";
import { cpSync, existsSync, mkdirSync, statSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const production = process.argv.includes("--production") || process.env.CI === "true";
const common = {
  bundle: true,
  platform: "node",
  format: "cjs",
  target: "node20",
  sourcemap: production ? false : "linked",
  logLevel: "warning",
  external: ["vscode", "bufferutil", "utf-8-validate"],
};

await build({ ...common, entryPoints: [join(here, "src/extension.ts")], outfile: join(here, "dist/extension.js"), minify: production });
await build({
  ...common,
  entryPoints: [join(here, "src/test/suite/index.ts")],
  outfile: join(here, "dist/test/suite.js"),
  external: [...common.external, "mocha"],
});
await build({ ...common, entryPoints: [join(here, "src/test/bench-activation.ts")], outfile: join(here, "dist/test/bench-activation.js") });

const webviewDist = join(here, "../webview/dist");
if (!existsSync(webviewDist)) throw new Error("webview/dist is missing: build the webview first (npm run build -w webview)");
mkdirSync(join(here, "dist/webview"), { recursive: true });
cpSync(webviewDist, join(here, "dist/webview"), { recursive: true });
mkdirSync(join(here, "schemas"), { recursive: true });
cpSync(join(here, "../shared/schema/manifest.schema.json"), join(here, "schemas/manifest.schema.json"));
console.log(`extension bundle: ${statSync(join(here, "dist/extension.js")).size} bytes`);
