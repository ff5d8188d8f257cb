import type { Logger } from "pino";
import type { FarmRole, ServerConfig } from "@optimus/shared";
import type { TokenStore } from "../auth/tokens.js";
import type { FarmState } from "../core/farm-state.js";
import type { LeaseCommands } from "../core/lease-commands.js";
import type { TaskCommands } from "../core/task-commands.js";
import type { Dispatcher } from "../dispatch/dispatcher.js";
import type { ImportReport } from "../files/rehydrate.js";
import type { PrLoop } from "../prloop/pr-loop.js";
import type { Gateway } from "../gateway/gateway.js";

/**
 * Whether this farm node leads, as its election says. Without one (a single farm) it leads; a
 * standby reports where the leader is and how far behind the leader's journal it is.
 */
export interface Leadership {
  role(): FarmRole;
  /** the leader's URL, when this node stands by and knows it */
  leaderUrl?(): string | undefined;
  /** journal events committed by the leader and not yet applied here */
  journalLag?(): number;
}

/** Everything the API adapter may call: the domain, never the transport. */
export interface FarmServices {
  config: ServerConfig;
  /** the origin (a folder or a git URL) */
  repo: string;
  /** the git repository workers fetch from (`/git`): the farm's clone */
  gitDir: string;
  state: FarmState;
  tasks: TaskCommands;
  leases: LeaseCommands;
  dispatcher: Dispatcher;
  tokens: TokenStore;
  log: Logger;
  importManifests(): Promise<ImportReport>;
  /** null when the repository is not a git repository */
  prloop: PrLoop | null;
  /** the frontier gateway (refuses every call while no apiKey reference is configured) */
  gateway: Gateway;
  /** the forge's webhook receiver (POST /forge/webhook), when a forge with a webhook secret is configured */
  /** the node's leadership (absent: a single farm, which always leads) */
  leadership?: Leadership;
  forgeWebhook?: (req: import("node:http").IncomingMessage, res: import("node:http").ServerResponse) => void;
}
