#!/usr/bin/env node
// Writes docs/lifecycle.md from the lifecycle table, so the picture can never disagree with the code.
import { writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { lifecycleDoc } from "./lifecycle-doc.js";

const out = join(dirname(fileURLToPath(import.meta.url)), "..", "..", "docs", "lifecycle.md");
writeFileSync(out, lifecycleDoc());
console.log(`wrote ${out}`);
