import { z } from "zod";

const secretRef = (what: string) =>
  z
    .string()
    .regex(
      /^secrets-manager:\/\/[^/]+\/[^/]+\/[^/]+$/,
      `${what} must be a secrets-manager://vault/item/field reference, never the secret itself`,
    );

/**
 * The team's forge, where the farm opens a pull request per task, reports evals as check runs,
 * posts the review unit's verdict, and merges through the API (GitHub first; the `kind` leaves room
 * for Gitea/Forgejo and GitLab). Without it the farm delivers to a plain git remote.
 */
export const ForgeConfig = z.strictObject({
  kind: z.literal("github"),
  /** `owner/name` of the repository on the forge */
  repo: z.string().regex(/^[A-Za-z0-9_.-]{1,100}\/[A-Za-z0-9_.-]{1,100}$/, "must be owner/name"),
  /** the API token (a GitHub App installation token or a fine-grained token), resolved at each call */
  token: secretRef("forge.token"),
  /** the REST API root: GitHub Enterprise Server (`https://host/api/v3`) or a test stand-in */
  baseUrl: z.string().url().optional(),
  /** how the forge merges a pull request (the repository's settings must allow it) */
  mergeMethod: z.enum(["merge", "squash", "rebase"]).default("merge"),
  /** the secret that signs webhook deliveries (`x-hub-signature-256`); without it the farm only polls */
  webhookSecret: secretRef("forge.webhookSecret").optional(),
  /** how often the farm polls the forge for reviews, checks and closed pull requests */
  pollIntervalMs: z.number().int().min(1_000).max(3_600_000).default(60_000),
  /** the longest `retry-after` (or rate-limit reset) the farm waits out before giving up on a call */
  maxRetryAfterMs: z.number().int().min(0).max(3_600_000).default(120_000),
});
export type ForgeConfig = z.infer<typeof ForgeConfig>;
export type ForgeConfigInput = z.input<typeof ForgeConfig>;
