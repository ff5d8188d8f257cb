/**
 * The forge layer (issue 10, item 5): a pull request per task, evals as check runs, the review as a
 * pull-request review, merges through the API, and the forge's events by webhook or polling.
 * `createForge` builds it from the farm's configuration and secrets layer.
 */
import type { ForgeConfig } from "@optimus/shared";
import type { SecretResolver } from "../secrets/index.js";
import { GitHubForge, type ForgeLog, type GitHubForgeOptions } from "./github.js";
import { EventGate, ForgePoller, GitHubWebhookReceiver } from "./webhooks.js";
import type { ForgeEvent, IgnoredActivity } from "./forge.js";

export * from "./forge.js";
export {
  GitHubForge,
  toForgeError,
  type ForgeLog,
  type GitHubForgeOptions,
  type GitHubCheckRunLike,
  type GitHubReviewLike,
} from "./github.js";
export {
  EventGate,
  ForgePoller,
  GitHubWebhookReceiver,
  WebhookRejected,
  type ForgePollerOptions,
  type GitHubWebhookReceiverOptions,
  type WebhookDelivery,
} from "./webhooks.js";

export interface ForgeWiring {
  forge: GitHubForge;
  /** present when `webhookSecret` is configured: mount `receiver.handler` on the farm's HTTP server */
  receiver: GitHubWebhookReceiver | undefined;
  poller: ForgePoller;
  gate: EventGate;
}

/**
 * The forge of a configuration: the token and webhook secret resolved through the secrets layer at
 * each use; one event gate shared by the webhook receiver and the poller.
 */
export function createForge(
  config: ForgeConfig,
  secrets: Pick<SecretResolver, "resolve">,
  hooks: {
    onEvent: (e: ForgeEvent) => void | Promise<void>;
    onIgnored?: (i: IgnoredActivity) => void;
    pullRequests: () => number[] | Promise<number[]>;
    log?: ForgeLog;
    seen?: Iterable<string>;
  },
  extra: Partial<GitHubForgeOptions> = {},
): ForgeWiring {
  const forge = new GitHubForge({
    repo: config.repo,
    token: () => secrets.resolve(config.token),
    ...(config.baseUrl ? { baseUrl: config.baseUrl } : {}),
    mergeMethod: config.mergeMethod,
    maxRetryAfterMs: config.maxRetryAfterMs,
    ...(hooks.log ? { log: hooks.log } : {}),
    ...extra,
  });
  const gate = new EventGate(hooks.seen);
  const common = {
    onEvent: hooks.onEvent,
    ...(hooks.onIgnored ? { onIgnored: hooks.onIgnored } : {}),
    gate,
    ...(hooks.log ? { log: hooks.log } : {}),
  };
  const webhookSecret = config.webhookSecret;
  const receiver = webhookSecret
    ? new GitHubWebhookReceiver({ forge, secret: () => secrets.resolve(webhookSecret), ...common })
    : undefined;
  const poller = new ForgePoller({ forge, pullRequests: hooks.pullRequests, intervalMs: config.pollIntervalMs, ...common });
  return { forge, receiver, poller, gate };
}
