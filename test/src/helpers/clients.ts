import { createFarmClient, type FarmClient } from "@optimus/farm-server";

/** An HTTP client of the farm with a given token (closed automatically: HTTP holds no socket). */
export const httpClientFor = (url: string, token: string): FarmClient => createFarmClient({ url, token, transport: "http" }).client;

/** Creates a token of a role through the admin API. */
export async function tokenFor(url: string, adminToken: string, role: "admin" | "editor" | "worker", name: string): Promise<string> {
  return (await httpClientFor(url, adminToken).admin.createToken.mutate({ role, name })).token;
}
