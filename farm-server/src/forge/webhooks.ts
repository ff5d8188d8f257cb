/**
 * How the farm learns what happened on the forge: signed webhook deliveries (fast), and a poller
 * that derives the same events from the REST API (the fallback when deliveries cannot reach the farm,
 * and the truth after a restart). Both give `ForgeEvent`s with the same ids, so an `EventGate` lets
 * each through once whichever way it came first.
 */
import type { IncomingMessage, ServerResponse } from "node:http";
import { Webhooks, type EmitterWebhookEvent } from "@octokit/webhooks";
import type { Forge, ForgeActivity, ForgeEvent, IgnoredActivity } from "./forge.js";
import type { ForgeLog, GitHubCheckRunLike, GitHubForge, GitHubReviewLike } from "./github.js";

const silentLog: ForgeLog = { info() {}, warn() {}, debug() {} };

/** Lets each event id through once (webhook and poller share one). */
export class EventGate {
  private readonly seen = new Set<string>();
  constructor(seen: Iterable<string> = []) {
    for (const id of seen) this.seen.add(id);
  }
  /** true the first time `id` is offered */
  admit(id: string): boolean {
    if (this.seen.has(id)) return false;
    this.seen.add(id);
    return true;
  }
  has(id: string): boolean {
    return this.seen.has(id);
  }
}

/** Why a delivery was refused; `status` is the HTTP answer. */
export class WebhookRejected extends Error {
  override readonly name = "WebhookRejected";
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

export interface WebhookDelivery {
  /** `x-github-delivery` */
  id: string;
  /** `x-github-event` */
  name: string;
  /** `x-hub-signature-256` (`sha256=<hex>`) */
  signature: string | undefined;
  /** the raw body, exactly as received: the signature covers these bytes */
  payload: string;
}

export interface GitHubWebhookReceiverOptions {
  forge: GitHubForge;
  /** the webhook secret, resolved at each delivery (`secrets.resolve(config.forge.webhookSecret)`) */
  secret: () => Promise<string>;
  /** each new event (after the gate) */
  onEvent: (event: ForgeEvent) => void | Promise<void>;
  onIgnored?: (ignored: IgnoredActivity) => void;
  /** shared with the poller so an event seen both ways is acted on once */
  gate?: EventGate;
  log?: ForgeLog;
  /** GitHub caps payloads at 25 MB */
  maxBodyBytes?: number;
}

type ReviewPayload = EmitterWebhookEvent<"pull_request_review">["payload"];
type ReviewCommentPayload = EmitterWebhookEvent<"pull_request_review_comment">["payload"];
type CheckRunPayload = EmitterWebhookEvent<"check_run">["payload"];
type CheckSuitePayload = EmitterWebhookEvent<"check_suite">["payload"];
type PullRequestPayload = EmitterWebhookEvent<"pull_request">["payload"];

/** Verifies GitHub webhook deliveries (HMAC SHA-256) and turns them into forge events. */
export class GitHubWebhookReceiver {
  private readonly log: ForgeLog;
  readonly gate: EventGate;
  private readonly pending = new Set<Promise<unknown>>();

  constructor(private readonly opts: GitHubWebhookReceiverOptions) {
    this.log = opts.log ?? silentLog;
    this.gate = opts.gate ?? new EventGate();
  }

  /**
   * Verifies one delivery and maps it to events (the new ones are also given to `onEvent`).
   * Throws WebhookRejected for a missing or bad signature, or a body that is not JSON.
   */
  async receive(delivery: WebhookDelivery): Promise<ForgeActivity> {
    const verified = await this.verify(delivery);
    return this.process(delivery, verified);
  }

  private async verify(delivery: WebhookDelivery): Promise<{ payload: unknown; webhooks: Webhooks }> {
    if (!delivery.signature) throw new WebhookRejected(401, "the delivery carries no x-hub-signature-256");
    if (!/^sha256=[0-9a-f]{64}$/.test(delivery.signature)) throw new WebhookRejected(401, "x-hub-signature-256 is not a sha256 signature");
    const secret = await this.opts.secret();
    const webhooks = new Webhooks({ secret });
    // A malformed signature makes verify throw: the same refusal as a wrong one.
    const ok = await webhooks.verify(delivery.payload, delivery.signature).catch(() => false);
    if (!ok) throw new WebhookRejected(401, "the signature does not match the payload and the webhook secret");
    try {
      return { payload: JSON.parse(delivery.payload), webhooks };
    } catch {
      throw new WebhookRejected(400, "the payload is not JSON");
    }
  }

  private async process(
    delivery: WebhookDelivery,
    { payload, webhooks }: { payload: unknown; webhooks: Webhooks },
  ): Promise<ForgeActivity> {
    const out: ForgeActivity = { events: [], ignored: [] };
    const forge = this.opts.forge;
    const add = (r: { event?: ForgeEvent; ignored?: string }, id: string, pullNumber?: number) => {
      if (r.event) out.events.push(r.event);
      else if (r.ignored) out.ignored.push({ id, ...(pullNumber !== undefined ? { pullNumber } : {}), why: r.ignored });
    };
    const repoOf = (p: { repository?: { full_name?: string } | null }) => p.repository?.full_name;
    const wrongRepo = (p: { repository?: { full_name?: string } | null }) => {
      const name = repoOf(p);
      if (name && name.toLowerCase() !== forge.repo.toLowerCase()) {
        out.ignored.push({ id: `delivery:${delivery.id}`, why: `a delivery for ${name}, not ${forge.repo}` });
        return true;
      }
      return false;
    };
    webhooks.on("pull_request_review.submitted", async ({ payload: p }: { payload: ReviewPayload }) => {
      if (wrongRepo(p)) return;
      add(
        await forge.eventForReview(p.pull_request.number, p.review as unknown as GitHubReviewLike),
        `review:${p.review.id}`,
        p.pull_request.number,
      );
    });
    webhooks.on("pull_request_review_comment.created", async ({ payload: p }: { payload: ReviewCommentPayload }) => {
      if (wrongRepo(p)) return;
      const reviewId = p.comment.pull_request_review_id;
      if (reviewId == null) return;
      // A line comment belongs to a review: the event is the review's (same id as its own delivery).
      const { data: review } = await forge.octokit.rest.pulls.getReview({
        owner: forge.owner,
        repo: forge.name,
        pull_number: p.pull_request.number,
        review_id: reviewId,
      });
      add(await forge.eventForReview(p.pull_request.number, review as GitHubReviewLike), `review:${reviewId}`, p.pull_request.number);
    });
    webhooks.on("check_run.completed", async ({ payload: p }: { payload: CheckRunPayload }) => {
      if (wrongRepo(p)) return;
      const run = p.check_run as unknown as GitHubCheckRunLike;
      add(await forge.eventForCheckRun(run), `check:${run.id}`);
    });
    webhooks.on("check_suite.completed", async ({ payload: p }: { payload: CheckSuitePayload }) => {
      if (wrongRepo(p)) return;
      const suite = p.check_suite;
      if (!suite.conclusion || ["success", "neutral", "skipped"].includes(suite.conclusion)) return;
      for (const pr of suite.pull_requests) {
        const r = await forge.failingChecksOn(suite.head_sha, [pr.number], pr.base.ref, suite.id);
        out.events.push(...r.events);
      }
    });
    webhooks.on("pull_request.closed", async ({ payload: p }: { payload: PullRequestPayload }) => {
      if (wrongRepo(p)) return;
      if (p.pull_request.merged) {
        out.ignored.push({ id: `merged:${p.number}`, pullNumber: p.number, why: "merged" });
        return;
      }
      out.events.push(forge.closedEvent(p.number, p.sender, p.pull_request.closed_at));
    });
    await webhooks.receive({ id: delivery.id, name: delivery.name as never, payload: payload as never });
    await this.deliver(out);
    return out;
  }

  private async deliver(activity: ForgeActivity): Promise<void> {
    for (const i of activity.ignored) {
      this.log.debug({ ...i }, "forge webhook: not acted on");
      this.opts.onIgnored?.(i);
    }
    for (const e of activity.events) if (this.gate.admit(e.id)) await this.opts.onEvent(e);
  }

  /**
   * A node `http` handler for `POST` deliveries: 202 once the signature is verified (the events are
   * worked out after answering, as GitHub asks for an answer within 10 s), 401 for a missing or bad
   * signature, 400 for a delivery without its headers or JSON, 413 past the size limit.
   */
  readonly handler = (req: IncomingMessage, res: ServerResponse): void => {
    const answer = (status: number, message: string) => {
      if (res.headersSent) return;
      res.writeHead(status, { "content-type": "application/json" });
      res.end(JSON.stringify({ message }));
    };
    if (req.method !== "POST") {
      res.setHeader("allow", "POST");
      answer(405, "POST only");
      req.resume();
      return;
    }
    const max = this.opts.maxBodyBytes ?? 25 * 1024 * 1024;
    const chunks: Buffer[] = [];
    let size = 0;
    let tooBig = false;
    req.on("data", (c: Buffer) => {
      size += c.length;
      if (size > max) {
        tooBig = true;
        answer(413, "payload too large");
        req.destroy();
        return;
      }
      chunks.push(c);
    });
    req.on("end", () => {
      if (tooBig) return;
      const name = req.headers["x-github-event"];
      const id = req.headers["x-github-delivery"];
      const signature = req.headers["x-hub-signature-256"];
      if (typeof name !== "string" || typeof id !== "string") {
        answer(400, "x-github-event and x-github-delivery are required");
        return;
      }
      const delivery: WebhookDelivery = {
        id,
        name,
        signature: typeof signature === "string" ? signature : undefined,
        payload: Buffer.concat(chunks).toString("utf8"),
      };
      this.verify(delivery).then(
        (parsed) => {
          answer(202, "accepted");
          if (name === "ping") return;
          const work = this.process(delivery, parsed)
            .catch((err: unknown) =>
              this.log.warn(
                { delivery: id, event: name, err: (err as Error)?.message ?? String(err) },
                "forge webhook: could not be processed (the poller will find it)",
              ),
            )
            .finally(() => this.pending.delete(work));
          this.pending.add(work);
        },
        (err: unknown) => {
          if (err instanceof WebhookRejected) {
            this.log.warn({ delivery: id, event: name, why: err.message }, "forge webhook refused");
            answer(err.status, err.message);
          } else {
            this.log.warn({ delivery: id, err: (err as Error)?.message ?? String(err) }, "forge webhook: the secret could not be read");
            answer(500, "the webhook secret could not be read");
          }
        },
      );
    });
  };

  /** Resolves when the deliveries accepted so far have been processed (for an orderly stop). */
  async idle(): Promise<void> {
    while (this.pending.size) await Promise.allSettled([...this.pending]);
  }
}

export interface ForgePollerOptions {
  forge: Forge;
  /** the pull requests to watch (the open ones of tasks in flight) */
  pullRequests: () => number[] | Promise<number[]>;
  onEvent: (event: ForgeEvent) => void | Promise<void>;
  onIgnored?: (ignored: IgnoredActivity) => void;
  gate?: EventGate;
  intervalMs: number;
  log?: ForgeLog;
}

/** Derives forge events from the REST API at an interval; the same events as the webhooks. */
export class ForgePoller {
  readonly gate: EventGate;
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<ForgeEvent[]> | undefined;
  private readonly log: ForgeLog;

  constructor(private readonly opts: ForgePollerOptions) {
    this.gate = opts.gate ?? new EventGate();
    this.log = opts.log ?? silentLog;
  }

  /** One round: every watched pull request's activity; returns the new events (also given to onEvent). */
  pollOnce(): Promise<ForgeEvent[]> {
    // One round at a time: a slow forge never stacks rounds.
    this.running ??= this.round().finally(() => (this.running = undefined));
    return this.running;
  }

  private async round(): Promise<ForgeEvent[]> {
    const fresh: ForgeEvent[] = [];
    for (const n of await this.opts.pullRequests()) {
      let activity: ForgeActivity;
      try {
        activity = await this.opts.forge.readActivity(n);
      } catch (err) {
        this.log.warn({ pull: n, err: (err as Error)?.message ?? String(err) }, "forge poll failed for a pull request");
        continue;
      }
      for (const i of activity.ignored) this.opts.onIgnored?.(i);
      for (const e of activity.events) {
        if (!this.gate.admit(e.id)) continue;
        fresh.push(e);
        await this.opts.onEvent(e);
      }
    }
    return fresh;
  }

  start(): void {
    if (this.timer) return;
    const tick = () => {
      this.pollOnce()
        .catch((err: unknown) => this.log.warn({ err: (err as Error)?.message ?? String(err) }, "forge poll failed"))
        .finally(() => {
          if (this.timer) {
            this.timer = setTimeout(tick, this.opts.intervalMs);
            this.timer.unref?.();
          }
        });
    };
    this.timer = setTimeout(tick, this.opts.intervalMs);
    this.timer.unref?.();
  }

  async stop(): Promise<void> {
    const t = this.timer;
    this.timer = undefined;
    if (t) clearTimeout(t);
    await this.running?.catch(() => undefined);
  }
}
