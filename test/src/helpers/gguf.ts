// Writes a tiny but valid GGUF v3 "llama" model with seeded random weights, so tests can exercise the
// real node-llama-cpp loading, context, grammar and confidence paths without downloading anything (no
// model hub is reachable from CI, and no package ships a GGUF). It cannot write sensible text or code.
// Format: https://github.com/ggml-org/ggml/blob/master/docs/gguf.md (little-endian throughout).
import { writeFileSync } from "node:fs";

export interface TinyGgufOptions {
  /** PRNG seed for the weights: same options → same bytes */
  seed?: number;
  /** transformer blocks */
  layers?: number;
  /** embedding width (a multiple of 16: heads are 16 wide) */
  width?: number;
  /** add a ChatML chat template and <|im_start|>/<|im_end|> tokens (default true) */
  chatTemplate?: boolean;
  /** pad the vocabulary with unused tokens up to this size: per-token costs that scale with the
   * vocabulary (sampling, sorting candidates) only show at realistic sizes (32k–150k) */
  vocabSize?: number;
}

const ALIGN = 32; // GGUF's default general.alignment; tensor data offsets must be multiples of it
const enum T {
  U32 = 4,
  I32 = 5,
  F32 = 6,
  BOOL = 7,
  STRING = 8,
  ARRAY = 9,
} // GGUF metadata value types
const GGML_F32 = 0;
// llama.cpp token types: normal, unknown, control (never produced from plain text), byte fallback
const NORMAL = 1,
  UNKNOWN = 2,
  CONTROL = 3,
  BYTE = 6;

const CHATML =
  "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}" +
  "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}";

// A few whole words so tokenization is not purely one-char-per-token. llama.cpp's SentencePiece
// tokenizer builds words by merging adjacent pieces pairwise, so a word is only reachable if every
// prefix of it is in the vocabulary too; vocab() adds them. "▁" (U+2581) is SentencePiece's space.
const WORDS = [
  "▁the",
  "▁function",
  "▁return",
  "▁const",
  "▁export",
  "▁import",
  "▁approve",
  "▁changes",
  "verdict",
  "notes",
  "▁true",
  "▁false",
];

/** Deterministic PRNG (mulberry32): Math.random cannot be seeded. */
function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

interface Vocab {
  tokens: string[];
  scores: number[];
  types: number[];
}

function vocab(chatml: boolean, size: number): Vocab {
  const v: Vocab = { tokens: [], scores: [], types: [] };
  const seen = new Set<string>();
  const add = (t: string, score: number, type: number) => {
    if (seen.has(t)) return;
    seen.add(t);
    v.tokens.push(t);
    v.scores.push(score);
    v.types.push(type);
  };
  // ids 0..2 are fixed by the metadata below (unknown/bos/eos ids)
  add("<unk>", 0, UNKNOWN);
  add("<s>", 0, CONTROL);
  add("</s>", 0, CONTROL);
  if (chatml) {
    add("<|im_start|>", 0, CONTROL);
    add("<|im_end|>", 0, CONTROL); // llama.cpp treats <|im_end|> as end-of-turn
  }
  // byte fallback: any UTF-8 byte not covered by a piece is encoded as <0xNN>
  for (let b = 0; b < 256; b++) add(`<0x${b.toString(16).toUpperCase().padStart(2, "0")}>`, 0, BYTE);
  add("▁", -1, NORMAL);
  for (let c = 0x21; c <= 0x7e; c++) add(String.fromCharCode(c), -1, NORMAL);
  // merged pieces score higher the longer they are: SentencePiece merges the best-scoring pair first
  for (const w of WORDS) for (let n = 2; n <= w.length; n++) add(w.slice(0, n), n, NORMAL);
  for (let i = 0; v.tokens.length < size; i++) add(`<unused${i}>`, -1000, NORMAL); // never produced by tokenizing
  return v;
}

/** Accumulates little-endian GGUF fields into buffers. */
class Out {
  parts: Buffer[] = [];
  size = 0;
  push(b: Buffer) {
    this.parts.push(b);
    this.size += b.length;
  }
  u32(n: number) {
    const b = Buffer.alloc(4);
    b.writeUInt32LE(n);
    this.push(b);
  }
  i32(n: number) {
    const b = Buffer.alloc(4);
    b.writeInt32LE(n);
    this.push(b);
  }
  u64(n: number) {
    const b = Buffer.alloc(8);
    b.writeBigUInt64LE(BigInt(n));
    this.push(b);
  }
  f32(n: number) {
    const b = Buffer.alloc(4);
    b.writeFloatLE(n);
    this.push(b);
  }
  str(s: string) {
    const b = Buffer.from(s, "utf8");
    this.u64(b.length);
    this.push(b);
  }
  pad() {
    const n = (ALIGN - (this.size % ALIGN)) % ALIGN;
    if (n) this.push(Buffer.alloc(n));
  }
}

type Value =
  | { t: T.U32 | T.I32 | T.F32; v: number }
  | { t: T.BOOL; v: boolean }
  | { t: T.STRING; v: string }
  | { t: T.ARRAY; of: T.STRING; v: string[] }
  | { t: T.ARRAY; of: T.F32 | T.I32; v: number[] };

function writeScalar(o: Out, t: T, v: number | boolean | string) {
  if (t === T.U32) o.u32(v as number);
  else if (t === T.I32) o.i32(v as number);
  else if (t === T.F32) o.f32(v as number);
  else if (t === T.BOOL) o.push(Buffer.from([v ? 1 : 0]));
  else o.str(v as string);
}

function writeKv(o: Out, key: string, val: Value) {
  o.str(key);
  o.u32(val.t);
  if (val.t !== T.ARRAY) return writeScalar(o, val.t, val.v);
  o.u32(val.of);
  o.u64(val.v.length);
  for (const x of val.v) writeScalar(o, val.of, x);
}

/** Writes the model to `file`; 2 layers × 64 wide (the default) is about 0.5 MB. */
export function writeTinyGguf(file: string, opts: TinyGgufOptions = {}): void {
  const { seed = 1, layers = 2, width = 64, chatTemplate = true, vocabSize = 0 } = opts;
  if (width % 16 !== 0 || width <= 0 || layers <= 0) throw new Error("width must be a positive multiple of 16, layers ≥ 1");
  const heads = width / 16,
    ff = width * 2;
  const voc = vocab(chatTemplate, vocabSize);
  const nVocab = voc.tokens.length;

  const kv: Array<[string, Value]> = [
    ["general.architecture", { t: T.STRING, v: "llama" }],
    ["general.name", { t: T.STRING, v: `optimus-tiny-${layers}x${width}-s${seed}` }],
    ["general.alignment", { t: T.U32, v: ALIGN }],
    ["llama.context_length", { t: T.U32, v: 4096 }],
    ["llama.embedding_length", { t: T.U32, v: width }],
    ["llama.block_count", { t: T.U32, v: layers }],
    ["llama.feed_forward_length", { t: T.U32, v: ff }],
    ["llama.attention.head_count", { t: T.U32, v: heads }],
    ["llama.attention.head_count_kv", { t: T.U32, v: heads }],
    ["llama.attention.layer_norm_rms_epsilon", { t: T.F32, v: 1e-5 }],
    ["llama.rope.dimension_count", { t: T.U32, v: 16 }],
    ["llama.vocab_size", { t: T.U32, v: nVocab }],
    ["tokenizer.ggml.model", { t: T.STRING, v: "llama" }],
    ["tokenizer.ggml.tokens", { t: T.ARRAY, of: T.STRING, v: voc.tokens }],
    ["tokenizer.ggml.scores", { t: T.ARRAY, of: T.F32, v: voc.scores }],
    ["tokenizer.ggml.token_type", { t: T.ARRAY, of: T.I32, v: voc.types }],
    ["tokenizer.ggml.unknown_token_id", { t: T.U32, v: 0 }],
    ["tokenizer.ggml.bos_token_id", { t: T.U32, v: 1 }],
    ["tokenizer.ggml.eos_token_id", { t: T.U32, v: 2 }],
    ["tokenizer.ggml.add_bos_token", { t: T.BOOL, v: true }],
    ["tokenizer.ggml.add_eos_token", { t: T.BOOL, v: false }],
  ];
  if (chatTemplate) kv.push(["tokenizer.chat_template", { t: T.STRING, v: CHATML }]);

  // ggml lists dimensions innermost first: a weight that maps n_in → n_out is [n_in, n_out]
  const tensors: Array<{ name: string; dims: number[]; norm?: boolean }> = [
    { name: "token_embd.weight", dims: [width, nVocab] },
    { name: "output_norm.weight", dims: [width], norm: true },
    { name: "output.weight", dims: [width, nVocab] },
  ];
  for (let i = 0; i < layers; i++) {
    const b = `blk.${i}.`;
    tensors.push(
      { name: b + "attn_norm.weight", dims: [width], norm: true },
      { name: b + "attn_q.weight", dims: [width, width] },
      { name: b + "attn_k.weight", dims: [width, width] },
      { name: b + "attn_v.weight", dims: [width, width] },
      { name: b + "attn_output.weight", dims: [width, width] },
      { name: b + "ffn_norm.weight", dims: [width], norm: true },
      { name: b + "ffn_gate.weight", dims: [width, ff] },
      { name: b + "ffn_up.weight", dims: [width, ff] },
      { name: b + "ffn_down.weight", dims: [ff, width] },
    );
  }

  const o = new Out();
  o.push(Buffer.from("GGUF", "ascii"));
  o.u32(3);
  o.u64(tensors.length);
  o.u64(kv.length);
  for (const [k, v] of kv) writeKv(o, k, v);

  // tensor infos carry offsets relative to the (aligned) start of the data section
  const rand = mulberry32(seed);
  const data = new Out();
  for (const t of tensors) {
    const n = t.dims.reduce((a, b) => a * b, 1);
    const f = new Float32Array(n);
    // norms start at 1 (identity); weights uniform in ±1.7/√n_in (std ≈ 1/√n_in keeps activations
    // O(1) through the layers, so the output distribution is neither flat nor one-hot)
    const scale = 1.7 / Math.sqrt(t.dims[0]!);
    for (let i = 0; i < n; i++) f[i] = t.norm ? 1 : (rand() * 2 - 1) * scale * (t.name === "output.weight" ? 4 : 1);
    data.pad();
    o.str(t.name);
    o.u32(t.dims.length);
    for (const d of t.dims) o.u64(d);
    o.u32(GGML_F32);
    o.u64(data.size);
    data.push(Buffer.from(f.buffer, f.byteOffset, f.byteLength)); // host order: every platform llama.cpp ships for is LE
  }
  o.pad();
  writeFileSync(file, Buffer.concat([...o.parts, ...data.parts]));
}
