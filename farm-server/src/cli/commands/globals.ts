import type { Command } from "commander";
import type { GlobalOptions } from "../context.js";

/** A command's options with the global ones (--repo, --farm, --token, …) merged in. */
export const g = (cmd: Command): GlobalOptions => cmd.optsWithGlobals();

/** Printed as is: the one option every command that reads has. */
export const JSON_HELP = "print the farm's objects as JSON (a stable shape, for scripts)";
