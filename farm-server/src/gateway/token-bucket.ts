/**
 * A per-minute allowance that refills continuously (requests, input tokens or output tokens).
 * In memory: it limits rate, not money; at start it is rebuilt from the last minute's admissions.
 */
export class TokenBucket {
  private tokens: number;
  private at: number;

  constructor(
    readonly perMinute: number,
    private readonly now: () => number = Date.now,
  ) {
    this.tokens = perMinute;
    this.at = now();
  }

  private refill(): void {
    const t = this.now();
    this.tokens = Math.min(this.perMinute, this.tokens + ((t - this.at) / 60_000) * this.perMinute);
    this.at = t;
  }

  available(): number {
    this.refill();
    return this.tokens;
  }

  /** ms until `n` are available (0 when they are; Infinity when n exceeds the bucket). */
  waitFor(n: number): number {
    if (n > this.perMinute) return Infinity;
    const have = this.available();
    return have >= n ? 0 : Math.ceil(((n - have) / this.perMinute) * 60_000);
  }

  take(n: number): void {
    this.refill();
    this.tokens -= n;
  }

  /** The provider said fewer remain than we thought (a 429): believe it. */
  clampTo(remaining: number): void {
    this.refill();
    this.tokens = Math.min(this.tokens, remaining);
  }
}

/** requests, input tokens and output tokens for one scope (a worker, or the fleet) */
export class RateLimits {
  readonly requests: TokenBucket;
  readonly input: TokenBucket;
  readonly output: TokenBucket;
  constructor(l: { requestsPerMin: number; inputTokensPerMin: number; outputTokensPerMin: number }, now?: () => number) {
    this.requests = new TokenBucket(l.requestsPerMin, now);
    this.input = new TokenBucket(l.inputTokensPerMin, now);
    this.output = new TokenBucket(l.outputTokensPerMin, now);
  }

  /** ms until one call of this size fits (Infinity: it never can). */
  waitFor(inputTokens: number, outputTokens: number): number {
    return Math.max(this.requests.waitFor(1), this.input.waitFor(inputTokens), this.output.waitFor(outputTokens));
  }

  take(inputTokens: number, outputTokens: number): void {
    this.requests.take(1);
    this.input.take(inputTokens);
    this.output.take(outputTokens);
  }
}
