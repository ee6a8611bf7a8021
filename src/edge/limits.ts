/**
 * Rate limits for the edge: a token bucket (per-trunk CPS), a bounded per-source flood guard for
 * traffic from addresses that are not known trunks, and an in-flight counter.
 * Time comes from an injectable clock (ms).
 */
import { LRUCache } from "lru-cache";

export type Now = () => number;

export class TokenBucket {
  private tokens: number;
  private last: number;
  /** Tokens taken in the current and the previous whole second (for the status view). */
  private second = 0;
  private takenNow = 0;
  private takenPrev = 0;

  /** rate: tokens per second; burst: bucket size (at least 1). */
  constructor(
    private rate: number,
    private burst: number,
    private readonly now: Now,
  ) {
    this.tokens = burst;
    this.last = now();
  }

  /** Change the rate (config reload) without resetting the bucket. */
  configure(rate: number, burst: number): void {
    this.refill();
    this.rate = rate;
    this.burst = burst;
    if (this.tokens > burst) this.tokens = burst;
  }

  private refill(): void {
    const t = this.now();
    const dt = t - this.last;
    if (dt > 0) {
      this.tokens = Math.min(this.burst, this.tokens + (dt * this.rate) / 1000);
      this.last = t;
    }
  }

  /** Take one token: 0 when allowed, else the seconds until one is available (>= 1, for Retry-After). */
  take(): number {
    this.refill();
    if (this.tokens >= 1) {
      this.tokens -= 1;
      const sec = Math.floor(this.last / 1000);
      if (sec !== this.second) {
        this.takenPrev = sec === this.second + 1 ? this.takenNow : 0;
        this.takenNow = 0;
        this.second = sec;
      }
      this.takenNow++;
      return 0;
    }
    return Math.max(1, Math.ceil((1 - this.tokens) / this.rate));
  }

  /** Tokens taken in the last whole second (calls per second in use). */
  inUse(): number {
    const sec = Math.floor(this.now() / 1000);
    if (sec === this.second) return this.takenPrev;
    if (sec === this.second + 1) return this.takenNow;
    return 0;
  }

  get limit(): number {
    return this.rate;
  }
}

/**
 * Per-source token buckets in an LRU of bounded size: a flood from many addresses evicts the
 * oldest entries rather than growing memory.
 */
export class FloodGuard {
  private readonly buckets: LRUCache<string, TokenBucket>;

  constructor(
    private readonly perSourcePps: number,
    maxSources: number,
    private readonly now: Now,
  ) {
    this.buckets = new LRUCache({ max: maxSources });
  }

  /** True when a packet from this source may be processed. */
  allow(source: string): boolean {
    let b = this.buckets.get(source);
    if (b === undefined) {
      b = new TokenBucket(this.perSourcePps, Math.max(1, this.perSourcePps), this.now);
      this.buckets.set(source, b);
    }
    return b.take() === 0;
  }

  get size(): number {
    return this.buckets.size;
  }
}
