import { formatTokenTtl, utcMinute, type TokenRole } from "@optimus/shared";
import type { TokenRefusal } from "./tokens.js";

/** A name as it may go into a suggested command unquoted; anything else is shown as a placeholder. */
const commandSafe = (name: string) => (/^[A-Za-z0-9._@-]{1,100}$/.test(name) ? name : "<name>");

/** The 401's message for a token with no known reason: the role the call needs is named, so the fix is one command (an admin runs it). */
export const unknownTokenLine = (roles: readonly TokenRole[]): string =>
  `missing, revoked or invalid token; an admin makes one with \`optimus token create --role ${roles.includes("editor") ? "editor" : roles[0]} --name <who>\``;

/**
 * The 401's message for a token whose holder presented the right secret: for an expired one, when
 * it expired and the fix (a new token, made on the farm, given to the worker's `--token-file`) in
 * one line the CLI and the worker print as they get it. A revoked one gets the same words as an
 * unknown one: revocation is an admin's decision, and the fix is theirs to give.
 */
export function refusalLine(r: TokenRefusal | null | undefined, roles: readonly TokenRole[]): string {
  if (r?.kind !== "expired") return unknownTokenLine(roles);
  const make = `\`optimus token create --role ${r.role} --name ${commandSafe(r.name)}\``;
  const where = r.role === "worker" ? "the worker's --token-file" : "--token-file";
  return `the ${r.role} token '${commandSafe(r.name)}' expired at ${utcMinute(r.expiredAt)} (unused for ${formatTokenTtl(r.ttlMs)}); make a new one on the farm with ${make} and give it to ${where}`;
}
