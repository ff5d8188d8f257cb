import type { EventBody } from "@optimus/shared";
import type { IssuedToken, TokenStore } from "./tokens.js";

/** The names the farm gives its own admin tokens: `admin` at the first start, `admin-<ISO time>` at a reset. */
const FARM_ADMIN_NAME = /^admin(-\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z)?$/;

/**
 * The farm's own admin token: issued on a fresh farm, or again when asked (`--reset-admin-token`:
 * the old one was lost), in which case the farm's earlier admin tokens are revoked, since whoever
 * holds a lost one should not keep its power. Admin tokens a person made with `token create` are
 * left alone. `keep` gets the new token before anything else can fail (the port may be taken), so
 * a start that fails later never loses it. Nothing is issued when tokens exist and no reset is asked.
 */
export async function issueAdminToken(o: {
  tokens: TokenStore;
  reset?: boolean;
  journal: (events: EventBody[]) => Promise<unknown>;
  keep?: (token: IssuedToken) => void | Promise<void>;
}): Promise<IssuedToken | undefined> {
  const { tokens } = o;
  if (!o.reset && (await tokens.count()) > 0) return undefined;
  const issued = await tokens.create("admin", o.reset ? `admin-${new Date().toISOString()}` : "admin");
  await o.journal([{ type: "token_created", data: { tokenId: issued.tokenId, role: "admin", name: issued.name } }]);
  await o.keep?.(issued);
  if (o.reset) {
    for (const t of await tokens.list()) {
      if (t.role !== "admin" || t.revoked || t.tokenId === issued.tokenId || !FARM_ADMIN_NAME.test(t.name)) continue;
      if (await tokens.revoke(t.tokenId)) await o.journal([{ type: "token_revoked", data: { tokenId: t.tokenId } }]);
    }
  }
  return issued;
}
