// Downloads a GGUF model into the models folder with node-llama-cpp's downloader (`resolveModelFile`:
// hf: URIs resolved through Hugging Face, split/multi-part files, resume, skip when already present).
// Hugging Face credentials, when needed, are node-llama-cpp's usual ones: HF_TOKEN or the
// huggingface-cli token file; HF_ENDPOINT / MODEL_ENDPOINT select a mirror.
//
// Why the extra guards: the downloader underneath (ipull) retries a failed connection 150 times with
// backoff up to 5 s (≈ 12 minutes) and takes no abort signal until the transfer begins, so an
// unreachable host would look like a hang. We check the host answers first (one clear error line if not)
// and give up when no bytes arrive for `stallMs`.
import { mkdirSync } from "node:fs";
import { resolve } from "node:path";
import { resolveModelFile } from "node-llama-cpp";

export interface PullProgress {
  downloadedBytes: number;
  /** 0 until the server has said */
  totalBytes: number;
}

export interface PullOptions {
  signal?: AbortSignal;
  /** give up when no bytes arrive for this long (default 120 s) */
  stallMs?: number;
  /** how long the reachability check may take (default 15 s) */
  connectTimeoutMs?: number;
}

const URI_HELP = "use hf:<user>/<repo>:<quant>, hf:<user>/<repo>/<file>.gguf or an https:// URL of a .gguf file";

/** The one-line message of an error (no stack, no multi-line detail); for fetch's "fetch failed", the cause. */
function firstLine(e: unknown): string {
  const err = e as { message?: unknown; cause?: { code?: unknown; message?: unknown } } | undefined;
  const msg = String(err?.message ?? e)
    .split("\n")[0]!
    .trim();
  const cause = err?.cause?.code ?? err?.cause?.message;
  // ipull's HTTP errors repeat the URL: "Url: …, Status code: 404, status text: Not Found"
  const http = /Status code: (\d+), status text: (.*)$/.exec(msg);
  if (http) return `HTTP ${http[1]} ${http[2]}`.trim();
  if (cause === undefined) return msg;
  return msg === "fetch failed" ? String(cause) : `${msg} (${String(cause)})`;
}

/** The origin a download of `uri` talks to first. */
function originOf(uri: string): string {
  if (/^(hf|huggingface):/i.test(uri)) {
    // the same endpoint choice node-llama-cpp makes for hf: URIs
    const ep = [process.env.MODEL_ENDPOINT, process.env.HF_ENDPOINT].find((u) => u && /^https?:\/\//i.test(u));
    return new URL(ep ?? "https://huggingface.co/").origin;
  }
  return new URL(uri).origin;
}

/** Throws one clear line when nothing answers at the origin (DNS failure, refused, timed out). */
async function checkReachable(origin: string, timeoutMs: number, signal?: AbortSignal): Promise<void> {
  const timeout = AbortSignal.timeout(timeoutMs);
  try {
    // any HTTP answer, even 404 or 405, means the host is up; the downloader handles the rest
    const res = await fetch(origin, { method: "HEAD", redirect: "manual", signal: signal ? AbortSignal.any([signal, timeout]) : timeout });
    await res.body?.cancel();
  } catch (e) {
    if (signal?.aborted) throw new Error("model download cancelled", { cause: e });
    const why = timeout.aborted ? `no answer in ${Math.round(timeoutMs / 1000)} s` : firstLine(e);
    throw new Error(`cannot reach ${new URL(origin).host} (${why}): check the network connection or proxy, then retry`, { cause: e });
  }
}

/**
 * Downloads the GGUF model at `uri` (hf: URI or http(s) URL) into `modelsDir` and returns the local
 * path of the file to load (the first part, for a split model). An already-complete file is not
 * downloaded again. Failures are an Error with a single-line message meant to be shown as is.
 */
export async function pullModel(
  uri: string,
  modelsDir: string,
  onProgress?: (p: PullProgress) => void,
  opts: PullOptions = {},
): Promise<string> {
  const { signal, stallMs = 120_000, connectTimeoutMs = 15_000 } = opts;
  if (!/^(hf:|huggingface:|https?:\/\/)/i.test(uri)) throw new Error(`not a model URI: ${JSON.stringify(uri)}: ${URI_HELP}`);
  let origin: string;
  try {
    origin = originOf(uri);
  } catch {
    throw new Error(`not a valid URL: ${JSON.stringify(uri)}: ${URI_HELP}`);
  }
  const dir = resolve(modelsDir);
  mkdirSync(dir, { recursive: true });
  await checkReachable(origin, connectTimeoutMs, signal);

  // resolveModelFile has no overall timeout, and before the transfer starts it cannot be aborted:
  // racing it against `bail` is what makes this promise settle on a stall or the caller's abort.
  const ctl = new AbortController();
  let fail!: (e: Error) => void;
  const bail = new Promise<never>((_, reject) => (fail = reject));
  const onAbort = () => (fail(new Error("model download cancelled")), ctl.abort());
  signal?.addEventListener("abort", onAbort, { once: true });
  let timer: NodeJS.Timeout | undefined;
  const arm = () => {
    clearTimeout(timer);
    timer = setTimeout(() => {
      fail(
        new Error(
          `download of ${uri} stalled: no data for ${Math.round(stallMs / 1000)} s (network down, or the server keeps failing); retry later, it resumes`,
        ),
      );
      ctl.abort();
    }, stallMs);
  };
  arm();
  let lastBytes = 0;
  try {
    return await Promise.race([
      bail,
      resolveModelFile(uri, {
        directory: dir,
        cli: false, // no progress bars on stdout: the caller renders progress
        signal: ctl.signal,
        deleteTempFileOnCancel: false, // keep partial data so a retry resumes
        onProgress: ({ downloadedSize, totalSize }) => {
          // progress events also come while retrying
          if (downloadedSize > lastBytes) {
            lastBytes = downloadedSize;
            arm();
          }
          onProgress?.({ downloadedBytes: downloadedSize, totalBytes: totalSize });
        },
      }),
    ]);
  } catch (e) {
    if (signal?.aborted) throw new Error("model download cancelled", { cause: e });
    if (e instanceof Error && e.message.startsWith(`download of ${uri} stalled`)) throw e;
    throw new Error(`could not download ${uri}: ${firstLine(e)}`, { cause: e });
  } finally {
    clearTimeout(timer);
    signal?.removeEventListener("abort", onAbort);
  }
}
