import { X509Certificate } from "node:crypto";
import { readFileSync } from "node:fs";
import { resolve } from "node:path";
import { checkServerIdentity, type TLSSocket } from "node:tls";
import { FARM_PIN } from "@optimus/shared";
import { spkiPinOf } from "../tls/pin.js";

/**
 * What a client trusts in an https:// farm's certificate, beyond this machine's CAs
 * (docs/adr/0022-tls-and-pinning.md): pins of the farm's public key, a CA file (a CA, or the farm's
 * self-signed certificate itself), or both (then both must hold). Empty: this machine's CAs only.
 */
export interface FarmTrust {
  /** accepted pins, `sha256/<base64>` of the certificate's SubjectPublicKeyInfo; one match is enough */
  pins?: string[];
  /** where the pins came from, as the person gave them (`--farm-pin`, OPTIMUS_FARM_PIN, a setting) */
  pinFrom?: string;
  /** a CA file's certificates (PEM), its absolute path, and the setting that named it */
  ca?: { pem: string; file: string; from: string };
}

/**
 * A farm's certificate this client does not accept, or trust settings it cannot use: its message is
 * the one line a person reads (which farm, what it presented, what was expected, what to do).
 */
export class FarmTrustError extends Error {
  override name = "FarmTrustError";
}

/** Reads pins as a person writes them: one, or several comma-separated (a farm's nodes, a key roll-over). */
export function parsePins(text: string, from: string): string[] {
  const pins = text
    .split(",")
    .map((p) => p.trim())
    .filter(Boolean);
  if (pins.length === 0)
    throw new FarmTrustError(`${from} is empty; give the farm's pin, sha256/<base64> (\`optimus farm cert\` prints it)`);
  for (const p of pins)
    if (!FARM_PIN.test(p))
      throw new FarmTrustError(
        `${from}: '${p.slice(0, 80)}' is not a pin; expected sha256/ and 44 base64 characters, as \`optimus farm cert\` prints`,
      );
  return pins;
}

/** Reads a CA file (PEM: a CA, or the farm's self-signed certificate); one line when it cannot. */
export function readCaFile(file: string, from: string): NonNullable<FarmTrust["ca"]> {
  const path = resolve(file);
  let pem: string;
  try {
    pem = readFileSync(path, "utf8");
  } catch (err) {
    throw new FarmTrustError(`${from}: cannot read ${path} (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
  }
  try {
    new X509Certificate(pem);
  } catch {
    throw new FarmTrustError(`${from}: ${path} holds no PEM certificate (give the farm's .crt file or its CA's)`);
  }
  return { pem, file: path, from };
}

/** git's form of a pin, for `http.pinnedPubkey`: `sha256//<base64>`. */
export const gitPinOf = (pin: string): string => pin.replace(/^sha256\//, "sha256//");

export const hasTrust = (t: FarmTrust | undefined): boolean => !!(t?.pins?.length || t?.ca);

const day = (ms: number) => new Date(ms).toISOString().slice(0, 10);

/**
 * Checks the certificate `cert` a farm presented on `socket` (a handshake made without node's own verdict
 * enforced, so that this check decides): with pins, one must match; with a CA file (or no pin), the
 * chain must verify; always, the certificate must name `host` and be within its dates (what git's
 * own TLS checks too, so a worker's git fetches never fail where its connection passed).
 * Returns the one-line reason to refuse, or null to go on.
 */
export function refusal(
  socket: TLSSocket,
  cert: X509Certificate | undefined,
  host: string,
  port: number | string,
  trust: FarmTrust,
): string | null {
  const url = `https://${host.includes(":") ? `[${host}]` : host}:${port}`;
  if (!cert) return `the farm at ${url} presented no certificate`;
  const pin = spkiPinOf(cert);
  const pins = trust.pins ?? [];
  if (pins.length > 0 && !pins.includes(pin))
    return `the farm at ${url} presented a certificate whose pin is ${pin} but ${trust.pinFrom ?? "--farm-pin"} expects ${pins.join(" or ")}`;
  // Node checks the name only once the chain verifies, and the name is checked below in every case.
  const chainError =
    socket.authorized || socket.authorizationError?.toString() === "ERR_TLS_CERT_ALTNAME_INVALID"
      ? null
      : String(socket.authorizationError);
  if (trust.ca && chainError)
    return `the farm at ${url} presented a certificate (pin ${pin}) that ${trust.ca.from} ${trust.ca.file} does not vouch for (${chainError})`;
  if (!trust.ca && pins.length === 0 && chainError)
    return `the farm at ${url} presented a certificate this machine does not trust (${chainError}; pin ${pin}); if the farm's operator confirms that pin, pass --farm-pin ${pin} (or --farm-ca <the farm's certificate file>)`;
  const now = Date.now();
  if (Date.parse(cert.validTo) < now || Date.parse(cert.validFrom) > now)
    return `the farm at ${url} presented a certificate valid only from ${day(Date.parse(cert.validFrom))} to ${day(Date.parse(cert.validTo))}; the farm needs a new one (\`optimus farm cert --force\`)`;
  const wrongName = checkServerIdentity(host.replace(/^\[|\]$/g, ""), cert.toLegacyObject());
  if (wrongName)
    return `the farm's certificate at ${url} does not name ${host} (it names ${cert.subjectAltName ?? "nothing"}); connect by one of those names, or make a certificate with \`optimus farm cert --san ${host}\``;
  return null;
}

/** The trust error somewhere in an error's causes (fetch, tRPC and ws each wrap it), if any. */
export function trustErrorIn(err: unknown): FarmTrustError | undefined {
  for (let e: unknown = err, i = 0; e && i < 6; e = (e as { cause?: unknown }).cause, i++) if (e instanceof FarmTrustError) return e;
  return undefined;
}
