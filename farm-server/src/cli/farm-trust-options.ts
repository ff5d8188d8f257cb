import { X509Certificate } from "node:crypto";
import { readFileSync } from "node:fs";
import type { ServerConfig } from "@optimus/shared";
import { FarmTrustError, hasTrust, parsePins, readCaFile, type FarmTrust } from "../client/farm-trust.js";
import { spkiPinOf } from "../tls/pin.js";
import { tlsPath } from "../tls/farm-tls.js";
import { CliError, EXIT } from "./errors.js";

export interface TrustOptions {
  farmPin?: string;
  farmCa?: string;
}

export const FARM_PIN_HELP =
  "trust an https:// farm whose certificate's public key has this pin, sha256/<base64> (as `optimus farm cert` prints; comma-separate several); default $OPTIMUS_FARM_PIN";
export const FARM_CA_HELP =
  "trust an https:// farm whose certificate this PEM file vouches for: its CA, or the farm's self-signed farm.crt itself; default $OPTIMUS_FARM_CA";

/**
 * What the CLI and workers trust in an https:// farm's certificate: --farm-pin and --farm-ca, else
 * OPTIMUS_FARM_PIN and OPTIMUS_FARM_CA (a flag replaces its variable; both kinds may be given, and
 * then both must hold). Malformed values are a usage error naming where they came from.
 */
export function trustFromOptions(o: TrustOptions, env: NodeJS.ProcessEnv = process.env): FarmTrust {
  const pin = fromFlagOrEnv(o.farmPin, "--farm-pin", env, "OPTIMUS_FARM_PIN");
  const ca = fromFlagOrEnv(o.farmCa, "--farm-ca", env, "OPTIMUS_FARM_CA");
  try {
    return {
      ...(pin ? { pins: parsePins(pin.value, pin.from), pinFrom: pin.from } : {}),
      ...(ca ? { ca: readCaFile(ca.value, ca.from) } : {}),
    };
  } catch (err) {
    if (err instanceof FarmTrustError) throw new CliError(err.message, EXIT.usage);
    throw err;
  }
}

/** A flag's value, else its variable's (unless empty), with where it came from for messages. */
function fromFlagOrEnv(flag: string | undefined, flagName: string, env: NodeJS.ProcessEnv, variable: string) {
  if (flag !== undefined) return { value: flag, from: flagName };
  const value = env[variable];
  return value ? { value, from: variable } : null;
}

/**
 * The trust for a farm found on this machine (its lock file or its config, not --farm): with `tls`
 * configured, the pin of the certificate it serves, read from its own file — the same home the admin
 * token comes from, so nothing is taken on faith from the network.
 */
export function localFarmTrust(config: ServerConfig): FarmTrust {
  if (!config.tls) return {};
  try {
    return { pins: [spkiPinOf(new X509Certificate(readFileSync(tlsPath(config.tls.cert))))], pinFrom: "the local farm's tls.cert" };
  } catch {
    return {}; // the farm itself says what is wrong with its certificate; this machine's CAs decide here
  }
}

/** Pins and CA files are for https:// farms: given with only http:// URLs, say so rather than ignore them. */
export function checkTrustFits(trust: FarmTrust, urls: string[]): void {
  if (hasTrust(trust) && urls.every((u) => /^http:\/\//i.test(u)))
    throw new CliError(
      `${trust.pinFrom ?? trust.ca?.from} is for a farm served over TLS, but ${urls.join(",")} is plain http://; use https:// (the farm needs \`tls\` in its config)`,
      EXIT.usage,
    );
}
