import { createFarmClient, type FarmClient, type FarmTrust } from "@optimus/farm-server";

/** An HTTP client of the farm with a given token (closed automatically: HTTP holds no socket); `trust` for an https:// farm. */
export const httpClientFor = (url: string, token: string, trust?: FarmTrust): FarmClient =>
  createFarmClient({ url, token, transport: "http", ...(trust ? { trust } : {}) }).client;

/** Creates a token of a role through the admin API. */
export async function tokenFor(url: string, adminToken: string, role: "admin" | "editor" | "worker", name: string): Promise<string> {
  return (await httpClientFor(url, adminToken).admin.createToken.mutate({ role, name })).token;
}
