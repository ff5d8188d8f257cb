#!/usr/bin/env node
// Writes the manifest's JSON Schema (for the editor's yamlValidation) from the zod schema, so the
// two can never disagree.
import { mkdirSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { manifestJsonSchema } from "./json-schema.js";

const out = join(dirname(fileURLToPath(import.meta.url)), "..", "schema", "manifest.schema.json");
mkdirSync(dirname(out), { recursive: true });
writeFileSync(out, JSON.stringify(manifestJsonSchema(), null, 2) + "\n");
console.log(`wrote ${out}`);
