/** A chat turn sent to a model. */
export interface ChatMessage {
  role: "system" | "user" | "assistant";
  content: string;
}

export interface GenerateOptions {
  maxTokens?: number;
  /** constrain the output to this JSON Schema (grammar for GGUF models, response_format for servers) */
  jsonSchema?: Record<string, unknown>;
  temperature?: number;
  signal?: AbortSignal;
  /** called as tokens arrive, with the running count (for live progress) */
  onTokens?: (count: number) => void;
}

/** How sure the model was, from per-token probabilities where the model had a real choice. */
export interface Confidence {
  /** mean probability of the chosen token */
  mean: number;
  /** lowest probability of any chosen token */
  min: number;
  /** tokens counted (forced grammar tokens are left out) */
  tokens: number;
}

export interface Generation {
  text: string;
  /** tokens generated */
  tokens: number;
  /** tokens in the prompt, where the provider says */
  promptTokens?: number;
  stopReason: "stop" | "length" | "abort";
  confidence?: Confidence;
  model: string;
  elapsedMs: number;
}

/**
 * A local model a worker generates with: GGUF in-process (node-llama-cpp) or any OpenAI-compatible
 * chat server (llama-server, Ollama, vLLM, LM Studio). The frontier model is not one of these: it is
 * reached only through the farm's gateway.
 */
export interface ModelProvider {
  /** what the worker registers as its primary model */
  readonly name: string;
  /** where an in-process model runs ("CPU", "CUDA (…), 33/33 layers on the GPU"); absent for a model server */
  readonly backend?: string;
  generate(messages: ChatMessage[], opts?: GenerateOptions): Promise<Generation>;
  close(): Promise<void>;
}
