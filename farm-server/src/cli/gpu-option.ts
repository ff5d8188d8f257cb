import { GPU_CHOICES, isGpuChoice, type GpuChoice } from "../worker/models/gpu-choice.js";
import { CliError, EXIT } from "./errors.js";

/** `--gpu` (a worker) and `--worker-gpu` (the farm's own workers): their help text. */
export const GPU_HELP =
  "where a GGUF model runs: auto (default: Metal, CUDA or Vulkan when usable and installed, else the CPU), metal, cuda, vulkan or cpu; an explicit GPU this machine cannot use is refused";

/** A `--gpu` value, or a usage error naming the flag and the choices. */
export function gpuChoice(v: string | undefined, flag = "--gpu"): GpuChoice {
  if (v === undefined) return "auto";
  if (!isGpuChoice(v))
    throw new CliError(`${flag} must be ${GPU_CHOICES.slice(0, -1).join(", ")} or ${GPU_CHOICES.at(-1)}, got '${v}'`, EXIT.usage);
  return v;
}
