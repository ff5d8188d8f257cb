import { z } from "zod";
import { TaskManifest } from "./manifest.js";

/** JSON Schema of the manifest as an author writes it (defaults are optional). */
export function manifestJsonSchema(): Record<string, unknown> {
  const schema = z.toJSONSchema(TaskManifest, { io: "input", unrepresentable: "any" }) as Record<string, unknown>;
  return {
    ...schema,
    $id: "https://optimus.dev/schemas/manifest.schema.json",
    title: "Optimus task manifest",
    description: "A task and its DAG of bounded units: .optimus/tasks/<id>/manifest.yaml",
  };
}
