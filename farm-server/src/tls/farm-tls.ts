import { X509Certificate } from "node:crypto";
import { readFileSync } from "node:fs";
import { isAbsolute, join } from "node:path";
import { createSecureContext } from "node:tls";
import type { ServerConfig } from "@optimus/shared";
import { FarmError } from "../errors/farm-error.js";
import { farmHome } from "../home/farm-home.js";
import { isSecretRef, type SecretResolver } from "../secrets/index.js";
import { spkiPinOf } from "./pin.js";

/** The farm's certificate and key, read and checked at start; what its port serves HTTPS with. */
export interface FarmTls {
  /** PEM: the certificate, then any intermediates */
  cert: string;
  /** PEM private key (never logged, never sent) */
  key: string;
  /** where the certificate was read, for messages */
  certFile: string;
  /** the certificate's public-key pin, `sha256/<base64>`: what clients pass as --farm-pin */
  pin: string;
  /** when the certificate expires (epoch ms) */
  expiresAt: number;
}

/** Thrown with one line that names the setting, the file and the fix; the farm does not start. */
export class FarmTlsError extends FarmError {
  constructor(message: string) {
    super("invalid", message);
    this.name = "FarmTlsError";
  }
}

/** A path of the configuration: absolute as is, relative from the farm's home (where `farm cert` writes). */
export const tlsPath = (p: string, home = farmHome()): string => (isAbsolute(p) ? p : join(home, p));

const readPem = (setting: string, file: string): string => {
  try {
    return readFileSync(file, "utf8");
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? (err as Error).message;
    throw new FarmTlsError(
      `${setting}: cannot read ${file} (${code}); make a pair with \`optimus farm cert\` or fix the path in the farm's config`,
    );
  }
};

/**
 * Reads `tls.cert` and `tls.key` (a file, or a secrets-manager:// reference for the key) and checks
 * them as the port will use them: each parses, the key belongs to the certificate, the certificate
 * has not expired. Any problem is one `FarmTlsError` line; nothing of the key is ever in it.
 */
export async function loadFarmTls(tls: NonNullable<ServerConfig["tls"]>, secrets: SecretResolver): Promise<FarmTls> {
  const certFile = tlsPath(tls.cert);
  const cert = readPem("tls.cert", certFile);
  let x509: X509Certificate;
  try {
    x509 = new X509Certificate(cert);
  } catch {
    throw new FarmTlsError(`tls.cert: ${certFile} holds no PEM certificate; make a pair with \`optimus farm cert\``);
  }
  let key: string;
  if (isSecretRef(tls.key)) {
    try {
      key = await secrets.resolve(tls.key);
    } catch (err) {
      throw new FarmTlsError(`tls.key: ${(err as Error).message}`);
    }
  } else key = readPem("tls.key", tlsPath(tls.key));
  const keyFrom = isSecretRef(tls.key) ? tls.key : tlsPath(tls.key);
  try {
    createSecureContext({ cert, key });
  } catch (err) {
    // OpenSSL's words: "key values mismatch" for a key of another certificate; a decoder error for no key at all.
    const mismatch = /mismatch/i.test((err as Error).message);
    throw new FarmTlsError(
      mismatch
        ? `tls.key: the key in ${keyFrom} does not belong to the certificate in ${certFile}; give the key made with it (\`optimus farm cert\` writes both)`
        : `tls.key: ${keyFrom} holds no usable PEM private key (${(err as Error).message.split("\n")[0]})`,
    );
  }
  const expiresAt = Date.parse(x509.validTo);
  if (expiresAt < Date.now())
    throw new FarmTlsError(
      `tls.cert: the certificate in ${certFile} expired on ${new Date(expiresAt).toISOString().slice(0, 10)}; make a new pair with \`optimus farm cert --force\` and give clients its pin`,
    );
  return { cert, key, certFile, pin: spkiPinOf(x509), expiresAt };
}
