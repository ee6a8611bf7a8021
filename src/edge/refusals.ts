/**
 * Unknown sources made visible without letting a scan flood the log: the first refusal of each
 * source address is logged at warn (with the nearest trunk, which often names a carrier calling
 * from an address missing in its sources), later ones are not; memory is a bounded LRU of
 * addresses, and a token bucket caps the warn lines per second across all sources.
 */
import { LRUCache } from "lru-cache";
import { TokenBucket, type Now } from "./limits.js";

export interface RefusalLogOptions {
  now: Now;
  /** Addresses remembered (already warned about). Default 10000. */
  maxSources?: number;
  /** Warn lines per second at most (burst the same times 5). Default 5. */
  linesPerSecond?: number;
  /** How long an address stays remembered (ms): after that it is warned about again. Default 1 h. */
  ttlMs?: number;
}

export class RefusalLog {
  private readonly seen: LRUCache<string, true>;
  private readonly lines: TokenBucket;
  /** Warn lines left out by the rate cap since the last line written. */
  suppressed = 0;

  constructor(o: RefusalLogOptions) {
    this.seen = new LRUCache({ max: o.maxSources ?? 10_000, ttl: o.ttlMs ?? 3_600_000, ttlAutopurge: false, perf: { now: o.now } });
    const rate = o.linesPerSecond ?? 5;
    this.lines = new TokenBucket(rate, rate * 5, o.now);
  }

  /** True when a warn line should be written for this refusal (first from this address, within the rate). */
  first(address: string): boolean {
    if (this.seen.has(address)) return false;
    this.seen.set(address, true);
    if (this.lines.take() > 0) {
      this.suppressed++;
      return false;
    }
    return true;
  }

  get size(): number {
    return this.seen.size;
  }
}
