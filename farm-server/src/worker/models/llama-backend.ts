// Which llama.cpp backend a GGUF worker runs on: node-llama-cpp's prebuilt binaries only (build:
// "never": a node never downloads llama.cpp's sources or runs cmake), chosen by `--gpu`.
//
// `auto` is node-llama-cpp's own choice: Metal on Apple Silicon; elsewhere CUDA when an NVIDIA driver
// and the CUDA runtime are found, then Vulkan when a Vulkan loader is, then the CPU — each tried only
// if its prebuilt package is installed and its binary loads, so a machine without a GPU (or without
// the GPU's package) ends on the CPU build (getLlamaForOptions tries the types of
// getGpuTypesToUseForOption("auto") in order with build "never"). An explicit GPU is tried alone and,
// when it cannot be used, refused with one line naming what this machine can use: node-llama-cpp
// would otherwise treat `metal` on Linux as `auto` and quietly run somewhere else.
import type { GpuChoice } from "./gpu-choice.js";
import {
  getLlama,
  getLlamaGpuTypes,
  getModuleVersion,
  type Llama,
  type LlamaGpuType,
  type LlamaLogLevel,
  type LlamaModel,
} from "node-llama-cpp";

/** An explicit --gpu this machine cannot use: the message is the one line to print. */
export class GpuUnavailableError extends Error {
  override name = "GpuUnavailableError";
}

export interface OpenedBackend {
  llama: Llama;
  /** layers the model may offload: 0 when the CPU was asked for on a build that has a GPU backend */
  gpuLayers?: 0;
}

const PRETTY: Record<Exclude<GpuChoice, "auto">, string> = { metal: "Metal", cuda: "CUDA", vulkan: "Vulkan", cpu: "CPU" };
const choiceOf = (t: LlamaGpuType): Exclude<GpuChoice, "auto"> => (t === false ? "cpu" : t);
const platformName = () => (process.platform === "darwin" ? "mac" : process.platform === "win32" ? "win" : process.platform);
const appleSilicon = () => process.platform === "darwin" && process.arch === "arm64";

/** The npm package holding the prebuilt build of a backend on this platform (what to install beside optimus). */
export async function backendPackage(choice: Exclude<GpuChoice, "auto">): Promise<string> {
  const version = await getModuleVersion(); // the builds are published with node-llama-cpp's own version
  if (appleSilicon()) return `@node-llama-cpp/mac-arm64-metal@${version}`; // Apple Silicon's only build
  const suffix = choice === "cpu" ? "" : `-${choice}`;
  return `@node-llama-cpp/${platformName()}-${process.arch}${suffix}@${version}`;
}

/**
 * The backends this machine has a driver for (node-llama-cpp's detection: driver and runtime
 * libraries found, not whether the build is installed), as --gpu values, CPU last.
 */
export async function detectedBackends(): Promise<Exclude<GpuChoice, "auto">[]> {
  const found = (await getLlamaGpuTypes("supported")).map(choiceOf);
  return [...new Set([...found.filter((c) => c !== "cpu"), "cpu" as const])];
}

/** Opens llama.cpp on the chosen backend, or throws GpuUnavailableError for an explicit one it cannot use. */
export async function openBackend(
  choice: GpuChoice,
  log: { logLevel: LlamaLogLevel; logger: (level: LlamaLogLevel, message: string) => void },
  flag = "--gpu",
): Promise<OpenedBackend> {
  const base = { build: "never", progressLogs: false, ...log } as const;
  if (choice === "auto") return { llama: await getLlama({ ...base, gpu: "auto" }) };
  // Apple Silicon has one prebuilt build, Metal's: the CPU there is that build with no layer offloaded.
  if (choice === "cpu" && appleSilicon()) return { llama: await getLlama({ ...base, gpu: "metal" }), gpuLayers: 0 };
  if (choice === "cpu") return { llama: await getLlama({ ...base, gpu: false }) };

  const detected = await detectedBackends();
  const usable = `usable here: ${detected.join(", ")} (--gpu auto takes the best of them)`;
  const valid = (await getLlamaGpuTypes("allValid")).map(choiceOf);
  if (!valid.includes(choice))
    throw new GpuUnavailableError(
      `${flag} ${choice}: ${PRETTY[choice]} is not available on ${process.platform}-${process.arch}; ${usable}`,
    );
  if (!detected.includes(choice))
    throw new GpuUnavailableError(`${flag} ${choice}: no ${PRETTY[choice]} driver or runtime was found on this machine; ${usable}`);
  let llama: Llama;
  try {
    llama = await getLlama({ ...base, gpu: choice });
  } catch (e) {
    const why = (e instanceof Error ? e.message : String(e)).split("\n")[0];
    throw new GpuUnavailableError(
      `${flag} ${choice}: the ${PRETTY[choice]} build of llama.cpp is not installed or does not load here (${why}): install ${await backendPackage(choice)} beside optimus; ${usable}`,
    );
  }
  if (llama.gpu !== choice) {
    const got = choiceOf(llama.gpu);
    await llama.dispose().catch(() => {});
    throw new GpuUnavailableError(
      `${flag} ${choice}: llama.cpp found no ${PRETTY[choice]} device and fell back to ${PRETTY[got]}; ${usable}`,
    );
  }
  return { llama };
}

/** What the worker says it runs on: "CPU", or "CUDA (NVIDIA …), 33/33 layers on the GPU". */
export async function describeBackend(llama: Llama, model: LlamaModel, requested: GpuChoice): Promise<string> {
  const offloaded = model.gpuLayers;
  if (llama.gpu === false || offloaded === 0) {
    const on = llama.gpu === false ? "CPU" : `CPU (${PRETTY[choiceOf(llama.gpu)]} build, no layer offloaded)`;
    if (requested !== "auto") return on;
    // auto ended on the CPU: say so when a GPU driver was there but its build was not
    const missed = (await detectedBackends()).filter((c) => c !== "cpu" && c !== choiceOf(llama.gpu));
    return missed.length
      ? `${on}; a ${PRETTY[missed[0]!]} driver was found but its build did not load: install ${await backendPackage(missed[0]!)}`
      : on;
  }
  const names = await llama.getGpuDeviceNames().catch(() => [] as string[]);
  const total = model.fileInsights.totalLayers;
  return `${PRETTY[choiceOf(llama.gpu)]}${names.length ? ` (${names.join(", ")})` : ""}, ${offloaded}/${total} layers on the GPU`;
}
