import { readFileSync } from "node:fs";

/** This build's version, from the farm server's package.json (dist/ sits beside it). */
export const FARM_VERSION: string = (JSON.parse(readFileSync(new URL("../package.json", import.meta.url), "utf8")) as { version: string })
  .version;
