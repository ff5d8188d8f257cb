import { createHash, type X509Certificate } from "node:crypto";

/**
 * `sha256/<base64 of the SHA-256 of the DER SubjectPublicKeyInfo>`: the pin of a certificate's public
 * key (shared/src/tls.ts says why this form). The farm prints it; clients compare it.
 */
export const spkiPinOf = (cert: X509Certificate): string =>
  `sha256/${createHash("sha256")
    .update(cert.publicKey.export({ type: "spki", format: "der" }))
    .digest("base64")}`;
