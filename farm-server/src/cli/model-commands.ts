import { modelsDir } from "../home/farm-home.js";
import type { GlobalOptions } from "./context.js";
import { CliError } from "./errors.js";
import { progressLine } from "./progress.js";

const mb = (n: number) => `${(n / 1024 / 1024).toFixed(1)} MB`;

/** `optimus model pull <uri>`: downloads a GGUF into the farm's models folder, with progress. */
export async function modelPull(uri: string, o: GlobalOptions & { dir?: string }): Promise<void> {
  const dir = o.dir ?? modelsDir();
  const progress = progressLine(process.stderr);
  const { pullModel } = await import("../worker/models/model-pull.js");
  try {
    const file = await pullModel(uri, dir, (p) =>
      progress.update(
        p.totalBytes
          ? `downloading ${uri}: ${mb(p.downloadedBytes)} / ${mb(p.totalBytes)} (${Math.floor((p.downloadedBytes / p.totalBytes) * 100)}%)`
          : `downloading ${uri}: ${mb(p.downloadedBytes)}`,
      ),
    );
    progress.done();
    console.log(file);
    console.error(`model ready: start a worker with \`optimus worker --role codegen --model ${file}\``);
  } catch (err) {
    progress.done();
    throw new CliError((err as Error).message.split("\n")[0]!);
  } finally {
    // The downloader can keep retrying in the background after a failure: do not wait for it.
    setImmediate(() => process.exit(process.exitCode ?? 0));
  }
}
