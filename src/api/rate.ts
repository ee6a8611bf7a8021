/**
 * Token buckets: one per API token (a closed set from the config) and one per client address for
 * failed authentications (bounded: the least recently seen addresses are forgotten first).
 */
import { LRUCache } from "lru-cache";

export class TokenBucket {
  private tokens: number;
  private last: number;

  constructor(
    private readonly ratePerS: number,
    private readonly burst: number,
    now: number,
  ) {
    this.tokens = burst;
    this.last = now;
  }

  /** Takes one token: 0 when allowed, else the seconds until one is available. */
  take(now: number): number {
    const elapsed = Math.max(0, now - this.last) / 1000;
    this.last = now;
    this.tokens = Math.min(this.burst, this.tokens + elapsed * this.ratePerS);
    if (this.tokens >= 1) {
      this.tokens -= 1;
      return 0;
    }
    return (1 - this.tokens) / this.ratePerS;
  }
}

export class RateLimiter {
  private readonly buckets: LRUCache<string, TokenBucket>;

  constructor(
    private readonly ratePerS: number,
    private readonly burst: number,
    private readonly now: () => number,
    maxKeys = 10_000,
  ) {
    this.buckets = new LRUCache({ max: maxKeys });
  }

  /** 0 when allowed, else the whole seconds to wait (Retry-After). */
  take(key: string): number {
    const t = this.now();
    let b = this.buckets.get(key);
    if (!b) {
      b = new TokenBucket(this.ratePerS, this.burst, t);
      this.buckets.set(key, b);
    }
    const wait = b.take(t);
    return wait === 0 ? 0 : Math.max(1, Math.ceil(wait));
  }
}
