// The `--gpu` values, apart from llama-backend.ts so the CLI can check a flag without loading
// node-llama-cpp (large, and needed only by GGUF workers).

/** auto: the best usable GPU, else the CPU (node-llama-cpp's detection); the others: that backend or a refusal */
export const GPU_CHOICES = ["auto", "metal", "cuda", "vulkan", "cpu"] as const;
export type GpuChoice = (typeof GPU_CHOICES)[number];

export const isGpuChoice = (v: string): v is GpuChoice => (GPU_CHOICES as readonly string[]).includes(v);
