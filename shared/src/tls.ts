/**
 * TLS on the farm's port (docs/adr/0022-tls-and-pinning.md). A client names the farm's certificate
 * it trusts by a pin: `sha256/<base64>`, the SHA-256 of the certificate's public key (its DER
 * SubjectPublicKeyInfo), the form HPKP and curl use (git's `http.pinnedPubkey` takes it as
 * `sha256//<base64>`). A pin of the key, not of the certificate, survives a renewal with the same key.
 */
export const FARM_PIN = /^sha256\/[A-Za-z0-9+/]{43}=$/;

/**
 * A farm that serves HTTPS answers a plain-HTTP request on its port with 400 and this header (its
 * https:// URL as the request named it), so an `http://` client says "use https://" instead of
 * "connection reset".
 */
export const TLS_ONLY_HEADER = "x-optimus-tls-only";
