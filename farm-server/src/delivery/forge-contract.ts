/**
 * What the farm gives the forge delivery and gets back (the forge delivery itself:
 * forge-delivery.ts). Kept apart so farm.ts wires it without knowing its insides.
 */
import type { IncomingMessage, ServerResponse } from "node:http";
import type { Logger } from "pino";
import type { ForgeConfig, ServerConfig } from "@optimus/shared";
import type { FarmState } from "../core/farm-state.js";
import type { TaskCommands } from "../core/task-commands.js";
import type { FarmRepo } from "../git/farm-repo.js";
import type { ForgeChannel } from "./held-changes.js";
import type { SecretResolver } from "../secrets/index.js";
import type { Forge } from "../forge/index.js";

export interface ForgeDeliveryDeps {
  config: ServerConfig & { forge: ForgeConfig };
  secrets: Pick<SecretResolver, "resolve">;
  state: FarmState;
  tasks: TaskCommands;
  /** the PR loop, as delivery needs it: held merges tried again when a forge event may have freed them */
  prloop: { retryHeldMerges(): void; idle(): Promise<void> };
  repo: FarmRepo;
  log: Logger;
  /** the farm's URL, for links back from the pull request (known once the API listens) */
  farmUrl: () => string | undefined;
  /** tests: a forge other than the configured GitHub one (never used by the CLI) */
  forge?: Forge;
}

export interface ForgeDeliveryHandle extends ForgeChannel {
  /** the webhook receiver's node handler (POST /forge/webhook), when a webhook secret is configured */
  webhook?: (req: IncomingMessage, res: ServerResponse) => void;
  /** starts polling the forge (the fallback when webhooks do not arrive) */
  start(): void;
  stop(): Promise<void>;
}
