import { chmodSync, existsSync, mkdirSync, writeFileSync } from "node:fs";
import { hostname, networkInterfaces } from "node:os";
import { join, resolve } from "node:path";
import { ensureHome, tlsDir } from "../home/farm-home.js";
import { makeSelfSigned } from "../tls/self-signed.js";
import type { GlobalOptions } from "./context.js";
import { CliError, EXIT } from "./errors.js";
import { printable } from "./printable.js";

export interface CertOptions extends GlobalOptions {
  host?: string[];
  san?: string[];
  out?: string;
  days?: string;
  force?: boolean;
}

/** This machine's addresses on its networks (IPv4, not loopback): the names a LAN reaches it by when it has no DNS name. */
const lanAddresses = (): string[] =>
  Object.values(networkInterfaces())
    .flat()
    .filter((a) => a && a.family === "IPv4" && !a.internal)
    .map((a) => a!.address);

/**
 * `optimus farm cert`: a self-signed certificate and its key for the farm's port, written 0600 into
 * the farm's home (or --out), valid for this node's names and addresses plus --host/--san. Prints the
 * pin on stdout (for scripts) and what to configure and pass on stderr. An existing pair is kept
 * unless --force: clients pin it, and a new one locks every one of them out until they get its pin.
 */
export async function farmCert(o: CertOptions): Promise<void> {
  const days = o.days === undefined ? 397 : Number(o.days);
  if (!Number.isInteger(days) || days < 1 || days > 3650)
    throw new CliError(`--days must be a whole number of days from 1 to 3650, got '${o.days}'`, EXIT.usage);
  const dir = o.out ? resolve(o.out) : tlsDir(ensureHome());
  const certFile = join(dir, "farm.crt");
  const keyFile = join(dir, "farm.key");
  if (!o.force && (existsSync(certFile) || existsSync(keyFile)))
    throw new CliError(
      `${certFile} already exists and clients may pin it; pass --force to replace it (each client then needs the new pin), or --out <dir> for another pair`,
      EXIT.refused,
    );
  const extra = [...(o.host ?? []), ...(o.san ?? [])].flatMap((n) => n.split(",")).map((n) => n.trim());
  for (const n of extra)
    if (!/^[A-Za-z0-9.:*[\]-]{1,253}$/.test(n)) throw new CliError(`--san: '${printable(n)}' is not a host name or an address`, EXIT.usage);
  const node = hostname();
  const names = [node, node.split(".")[0]!, "localhost", "127.0.0.1", "::1", ...lanAddresses(), ...extra];
  const pair = await makeSelfSigned(names, days);
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  // The key first and never readable by others; the certificate too (0600), as the home's files are.
  for (const [file, pem] of [
    [keyFile, pair.key],
    [certFile, pair.cert],
  ] as const) {
    writeFileSync(file, pem, { mode: 0o600 });
    chmodSync(file, 0o600);
  }
  process.stdout.write(`${pair.pin}\n`);
  const until = new Date(pair.expiresAt).toISOString().slice(0, 10);
  process.stderr.write(
    [
      `wrote ${certFile} and ${keyFile} (mode 0600): a self-signed certificate until ${until} for ${pair.names}`,
      `its pin (above, on stdout) is what clients check: pass it to them yourself, not over an unprotected channel`,
      `add to the farm's config (--config <file>, <home>/repos/<repo>/config.yaml or .optimus/config.yaml):`,
      `  tls:`,
      `    cert: ${certFile}`,
      `    key: ${keyFile}`,
      `then start the farm on the network (\`optimus farm up --host 0.0.0.0\`) and join each node with:`,
      `  optimus worker --farm https://${node}:7420 --farm-pin ${pair.pin} --token-file <file> --role codegen --model <model>`,
      `and use the CLI from elsewhere with --farm https://${node}:7420 --farm-pin ${pair.pin} (or OPTIMUS_FARM / OPTIMUS_FARM_PIN)`,
    ].join("\n") + "\n",
  );
}
