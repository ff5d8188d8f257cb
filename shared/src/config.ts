import { z } from "zod";
import { GatePolicy, GatewayConfig } from "./gateway.js";
import { ForgeConfig } from "./forge.js";

/** Which changes may merge on their own (used by the PR loop). */
export const Policy = z.strictObject({
  protectedPaths: z.array(z.string().min(1)).default([".optimus/**", ".github/**", "**/*.lock"]),
  autoMerge: z
    .strictObject({
      enabled: z.boolean().default(true),
      maxChangedLines: z.number().int().min(0).default(200),
      maxFiles: z.number().int().min(0).default(10),
    })
    .default({ enabled: true, maxChangedLines: 200, maxFiles: 10 }),
});
export type Policy = z.infer<typeof Policy>;

/** One command of the repository's eval suite (tests, type check, lint), run by the farm on each change. */
export const EvalCommand = z.strictObject({
  name: z.string().min(1).max(60),
  command: z.string().min(1).max(4_000),
  timeoutMs: z.number().int().min(100).max(3_600_000).default(300_000),
});
export type EvalCommand = z.infer<typeof EvalCommand>;

export const PrLoopConfig = z.strictObject({
  /** the eval suite; empty means changes are judged by review and risk alone */
  eval: z.array(EvalCommand).max(20).default([]),
  /** add a review unit after every codegen unit */
  reviewEveryCodegenUnit: z.boolean().default(true),
  maxPatchBytes: z
    .number()
    .int()
    .min(1024)
    .max(64 * 1024 * 1024)
    .default(4 * 1024 * 1024),
  maxFileBytes: z
    .number()
    .int()
    .min(1024)
    .max(64 * 1024 * 1024)
    .default(1024 * 1024),
  maxFilesPerPatch: z.number().int().min(1).max(10_000).default(200),
  /** a change may create symbolic links / submodules (gitlinks): off, since either can point outside the tree */
  allowSymlinks: z.boolean().default(false),
  allowSubmodules: z.boolean().default(false),
  /**
   * How many evaluations the farm runs at once (different tasks side by side; one task's steps stay
   * in order). Default: the machine's cores, at least 2. Each slot keeps one reusable worktree.
   */
  evalSlots: z.number().int().min(1).max(64).optional(),
});
export type PrLoopConfig = z.infer<typeof PrLoopConfig>;

/** A path of the repository a set-up reads or writes: relative, plain, never inside `.git`. */
const SetupPath = z
  .string()
  .min(1)
  .max(200)
  .refine(
    (p) =>
      !p.startsWith("/") &&
      !p.split("/").some((s) => s === ".." || s === "." || s === "" || s.toLowerCase() === ".git") &&
      !/[\u0000-\u001f\\]/.test(p),
    "a plain relative path inside the repository (no '..', '.git' or absolute path)",
  );

/**
 * How a repository's dependencies are installed for checks and evals (`setup:`): a command run once
 * per content of its key files, in the sandbox with network only through the egress proxy, its
 * outputs cached and shown read-only in every worktree. `none`: no set-up. Absent: detected from
 * the lockfile at the repository's root (package-lock.json: `npm ci`).
 */
export const SetupConfig = z.union([
  z.literal("none"),
  z.strictObject({
    command: z.string().min(1).max(4_000),
    /** files whose content (with the command) names a cache entry: the lockfile */
    cacheKeyFiles: z.array(SetupPath).min(1).max(20),
    /** folders the command writes that are kept and shown in every worktree */
    outputs: z.array(SetupPath).min(1).max(10).default(["node_modules"]),
    timeoutMs: z.number().int().min(1_000).max(3_600_000).default(900_000),
  }),
]);
export type SetupConfig = z.infer<typeof SetupConfig>;

/**
 * Bounds on what one client can make the farm hold or do at once, so a hostile or broken client
 * (or a worker flood) cannot exhaust its memory, processes or sockets.
 */
export const ApiLimits = z.strictObject({
  /** calls in one tRPC batch (HTTP or WebSocket); a larger batch is refused whole with 400 */
  maxBatchSize: z.number().int().min(1).max(10_000).default(50),
  /** open subscriptions on one WebSocket; the next one gets a clean error */
  maxSubscriptionsPerSocket: z.number().int().min(1).max(10_000).default(20),
  /** a WebSocket that has not presented a valid token by then is closed */
  unauthenticatedSocketMs: z.number().int().min(100).max(600_000).default(10_000),
  /** git processes the /git endpoint runs at once; more requests wait in a short queue, then get 503 */
  maxGitProcesses: z.number().int().min(1).max(256).default(4),
  /** requests that may wait for a git slot, and for how long, before a 503 with Retry-After */
  maxGitQueue: z.number().int().min(0).max(10_000).default(16),
  gitQueueWaitMs: z.number().int().min(0).max(600_000).default(10_000),
  /** a git process serving one request is killed after this long (a client that never finishes its request) */
  gitProcessTimeoutMs: z.number().int().min(1_000).max(3_600_000).default(120_000),
  /** bytes the farm buffers for one WebSocket that is not reading; past it the socket is cut off */
  maxBufferedBytesPerSocket: z
    .number()
    .int()
    .min(64 * 1024)
    .max(1024 * 1024 * 1024)
    .default(8 * 1024 * 1024),
});
export type ApiLimits = z.infer<typeof ApiLimits>;

const SECRET_REF = /^secrets-manager:\/\/[^/]+\/[^/]+\/[^/]+$/;
const pgUrlHasPassword = (u: string): boolean => {
  try {
    return new URL(u).password !== "";
  } catch {
    return false;
  }
};

export const StoreConfig = z.discriminatedUnion("kind", [
  z.strictObject({ kind: z.literal("sqlite") }),
  z.strictObject({
    kind: z.literal("postgres"),
    /**
     * `postgres://user@host:5432/db` (its password from `password`, PGPASSWORD or ~/.pgpass), or a
     * secrets-manager:// reference to the whole URL; never a URL with its password in this file
     */
    url: z
      .string()
      .refine(
        (u) => /^postgres(ql)?:\/\/[^\s]+$/.test(u) || SECRET_REF.test(u),
        "store.url must be a postgres:// URL or a secrets-manager://vault/item/field reference",
      )
      .refine(
        (u) => !pgUrlHasPassword(u),
        "store.url holds a password: put it in the secrets layer (store.password: secrets-manager://…, or the whole url as a reference), PGPASSWORD or ~/.pgpass",
      ),
    /** the password, as a secrets-manager://vault/item/field reference */
    password: z
      .string()
      .regex(SECRET_REF, "store.password must be a secrets-manager://vault/item/field reference, never the secret itself")
      .optional(),
    /** the schema holding this farm's tables: one per farm (repository) sharing a database */
    schema: z
      .string()
      .regex(/^[a-z_][a-z0-9_]{0,62}$/, "store.schema: lower-case letters, digits and _, at most 63")
      .default("optimus"),
    /**
     * The leader's lease (ms): farm nodes sharing this store elect one leader, which renews its
     * lease every third of this; a standby takes over once it has run out (takeover ≈ this + a start).
     */
    leaseMs: z.number().int().min(500).max(60_000).default(3_000),
  }),
]);
export type StoreConfig = z.infer<typeof StoreConfig>;

/** The farm server's settings: `.optimus/config.yaml`, then flags. Every field has an embedded default. */
export const ServerConfig = z.strictObject({
  host: z.string().default("127.0.0.1"),
  port: z.number().int().min(0).max(65535).default(7420),
  /**
   * The URL other machines reach this farm node at (what a standby tells clients to try, and what
   * links name); default: http(s)://<host>:<port> (https with `tls`), with this machine's name for a wildcard host.
   */
  advertiseUrl: z
    .string()
    .regex(/^https?:\/\/[^\s/]+\/?$/, "advertiseUrl must be http(s)://host:port")
    .optional(),
  /**
   * TLS on the farm's one port (tRPC, WebSocket, git, /healthz, /metrics): HTTPS and WSS instead of
   * HTTP, so tokens never cross a network in clear text. `cert` is a PEM file (the farm's certificate,
   * then any intermediates); `key` its PEM private key, as a file or a secrets-manager:// reference.
   * Relative paths are taken from the farm's home (where `optimus farm cert` writes a pair).
   */
  tls: z
    .strictObject({
      cert: z.string().min(1, "tls.cert must name the certificate's PEM file"),
      key: z.string().min(1, "tls.key must name the private key's PEM file or a secrets-manager:// reference"),
    })
    .optional(),
  /**
   * the farm's state folder (journal, tokens, worktrees …); default: `<home>/repos/<repo>/state`,
   * outside the repository (home: --home, OPTIMUS_HOME or ~/.optimus/farm); relative paths are taken
   * from the repository's folder in the home
   */
  stateDir: z.string().optional(),
  /**
   * How evals run: `auto` picks the sandbox this machine has (bubblewrap on Linux, sandbox-exec on
   * macOS) and refuses to evaluate without one; `none` runs them unsandboxed, with a warning each time.
   */
  sandbox: z.enum(["auto", "bwrap", "sandbox-exec", "none"]).default("auto"),
  heartbeatIntervalMs: z.number().int().min(50).max(600_000).default(5_000),
  /** a lease lives this long without a heartbeat; keep it between 1 and 2 heartbeat intervals */
  leaseTtlMs: z.number().int().min(100).max(3_600_000).optional(),
  maxAttempts: z.number().int().min(1).max(50).default(3),
  retryBackoff: z
    .strictObject({ baseMs: z.number().int().min(0).default(2_000), maxMs: z.number().int().min(0).default(60_000) })
    .default({ baseMs: 2_000, maxMs: 60_000 }),
  maxBodyBytes: z
    .number()
    .int()
    .min(1024)
    .max(64 * 1024 * 1024)
    .default(16 * 1024 * 1024),
  snapshotEvery: z.number().int().min(10).default(20_000),
  /**
   * Finished tasks (completed, cancelled, failed) leave the in-memory state this long after their
   * last change; they are archived in the journal and still answered on demand (`task show`, the
   * editor's older tasks). Memory and snapshots then follow live work, not history.
   */
  history: z
    .strictObject({
      retentionMs: z
        .number()
        .int()
        .min(0)
        .default(24 * 3_600_000),
      /** how often finished tasks are looked for */
      sweepEveryMs: z.number().int().min(50).default(60_000),
    })
    .default({ retentionMs: 24 * 3_600_000, sweepEveryMs: 60_000 }),
  files: z
    .strictObject({
      mirror: z.boolean().default(true),
      commit: z.boolean().default(true),
      debounceMs: z.number().int().min(0).default(100),
    })
    .default({ mirror: true, commit: true, debounceMs: 100 }),
  prloop: PrLoopConfig.default({
    eval: [],
    reviewEveryCodegenUnit: true,
    maxPatchBytes: 4 * 1024 * 1024,
    maxFileBytes: 1024 * 1024,
    maxFilesPerPatch: 200,
    allowSymlinks: false,
    allowSubmodules: false,
  }),
  /** a task sent as text is planned into units by a worker's local model (else it is one unit) */
  planner: z.strictObject({ enabled: z.boolean().default(true) }).default({ enabled: true }),
  policy: Policy.default({
    protectedPaths: [".optimus/**", ".github/**", "**/*.lock"],
    autoMerge: { enabled: true, maxChangedLines: 200, maxFiles: 10 },
  }),
  /** when a unit may use the frontier model */
  gate: GatePolicy.prefault({}),
  /** the frontier gateway (off without an apiKey reference) */
  gateway: GatewayConfig.prefault({}),
  /** where `secrets-manager://vault/…` references are read: vault name → provider settings */
  secrets: z
    .strictObject({ vaults: z.record(z.string().regex(/^[A-Za-z0-9._-]{1,100}$/), z.record(z.string(), z.unknown())).default({}) })
    .prefault({}),
  /** per-client bounds of the API, WebSocket and /git endpoints */
  limits: ApiLimits.prefault({}),
  /** the team's forge (GitHub first): pull requests, check runs, reviews, merges through its API */
  forge: ForgeConfig.optional(),
  /**
   * Where the journal, tokens and escalation bodies live: SQLite files in the state folder (one
   * node), or a PostgreSQL schema that several farm nodes share (one leads, the others stand by).
   */
  store: StoreConfig.default({ kind: "sqlite" }),
  /** how the farm reaches the origin (its URL comes from `farm up --origin` or `--repo`) */
  origin: z
    .strictObject({
      /** an HTTP `Authorization` value for the origin (e.g. `Basic …` or `Bearer …`), resolved at each fetch and push */
      auth: z
        .string()
        .regex(
          /^secrets-manager:\/\/[^/]+\/[^/]+\/[^/]+$/,
          "origin.auth must be a secrets-manager://vault/item/field reference, never the secret itself",
        )
        .optional(),
    })
    .prefault({}),
  /** how a finished task reaches its target branch on the origin */
  delivery: z
    .strictObject({
      /** tries when the target branch moves between the farm's fetch and its push */
      movedTargetRetries: z.number().int().min(0).max(20).default(3),
      /** keep a task's branches (locally and on the origin) after its merge */
      keepBranches: z.boolean().default(false),
      /**
       * run the eval suite again on a task's merge when the target branch has commits the task's
       * branch was not evaluated with (without a forge: there the team's required checks decide)
       */
      reevaluateOnMovedTarget: z.boolean().default(true),
    })
    .prefault({}),
  /** how dependencies are installed for checks and evals (see SetupConfig); absent: detected from the lockfile */
  setup: SetupConfig.optional(),
  /** the farm's own workers (`farm up --workers N`); their flags win over these */
  localWorkers: z
    .strictObject({
      /** tokens a GGUF model's context holds (prompt + output); default: the model's training context, at most 8192 */
      contextSize: z.number().int().min(256).max(1_048_576).optional(),
    })
    .prefault({}),
  /** the egress proxy offered to unit checks that need packages; nothing else leaves a sandbox */
  egress: z
    .strictObject({
      enabled: z.boolean().default(false),
      allow: z.array(z.string().min(1).max(253)).max(500).default([]),
      port: z.number().int().min(0).max(65535).default(0),
    })
    .prefault({}),
});
export type ServerConfig = z.infer<typeof ServerConfig>;
export type ServerConfigInput = z.input<typeof ServerConfig>;

export const effectiveLeaseTtl = (c: ServerConfig): number => c.leaseTtlMs ?? Math.round(c.heartbeatIntervalMs * 1.5);

export const TokenRole = z.enum(["admin", "editor", "worker"]);
export type TokenRole = z.infer<typeof TokenRole>;
