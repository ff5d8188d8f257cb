import { X509Certificate } from "node:crypto";
import { isIP } from "node:net";
import { generate } from "selfsigned";
import { spkiPinOf } from "./pin.js";

export interface SelfSignedPair {
  /** PEM */
  cert: string;
  /** PEM (PKCS#8); written 0600, never printed */
  key: string;
  pin: string;
  /** the names it is valid for, as DNS:… and IP Address:… */
  names: string;
  expiresAt: number;
}

/** What a name is to a certificate: an address (IP SAN) or a host name (DNS SAN). */
const altName = (n: string) => (isIP(n) ? { type: 7 as const, ip: n } : { type: 2 as const, value: n });

/**
 * A self-signed server certificate for a farm on a LAN: an EC P-256 key, SHA-256 signature, valid
 * for `days` (397 by default: the longest some clients accept for a server certificate) for exactly
 * `names` (host names and addresses; the first is its common name). Not a CA: it can vouch for
 * nothing but itself, so a leaked copy in a client's trust store cannot be used to sign other sites.
 */
export async function makeSelfSigned(names: string[], days = 397): Promise<SelfSignedPair> {
  const unique = [...new Set(names.map((n) => n.trim().replace(/^\[|\]$/g, "")).filter(Boolean))];
  if (unique.length === 0) throw new Error("a certificate needs at least one name");
  const notBeforeDate = new Date(Date.now() - 60_000); // a minute of clock skew between the farm and its nodes
  const r = await generate([{ name: "commonName", value: unique[0]! }], {
    keyType: "ec",
    curve: "P-256",
    algorithm: "sha256",
    notBeforeDate,
    notAfterDate: new Date(notBeforeDate.getTime() + days * 86_400_000),
    extensions: [
      { name: "basicConstraints", cA: false, critical: true },
      { name: "keyUsage", digitalSignature: true, critical: true },
      { name: "extKeyUsage", serverAuth: true },
      { name: "subjectAltName", altNames: unique.map(altName) },
    ],
  });
  const x509 = new X509Certificate(r.cert);
  return { cert: r.cert, key: r.private, pin: spkiPinOf(x509), names: x509.subjectAltName ?? "", expiresAt: Date.parse(x509.validTo) };
}
