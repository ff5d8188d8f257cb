import { fileURLToPath } from "node:url";

/** The built CLI, exactly what `npm start` runs. */
export const CLI = fileURLToPath(new URL("../../../farm-server/dist/cli/main.js", import.meta.url));
export const ROOT = fileURLToPath(new URL("../../../", import.meta.url));
