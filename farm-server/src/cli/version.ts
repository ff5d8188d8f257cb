import { readFileSync } from "node:fs";

/** This package's version (`optimus --version`), read from its package.json beside `dist/`. */
export function packageVersion(): string {
  const pkg = JSON.parse(readFileSync(new URL("../../package.json", import.meta.url), "utf8")) as { version?: string };
  return pkg.version ?? "unknown";
}
