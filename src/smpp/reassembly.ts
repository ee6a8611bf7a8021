/**
 * Reassembly of concatenated messages (UDH IEI 0x00 / 0x08, SAR TLVs), in the manner of Kannel:
 * keyed on peer, source, destination, reference and total. Any part order; duplicates discarded.
 * Bounded: an lru-cache with an entry cap, a byte cap and a TTL. When a buffer times out or is
 * evicted to make room, its parts go to `onIncomplete` to be delivered as they are (marked partial).
 */
import { LRUCache } from "lru-cache";
import type { Clock } from "../util/clock.js";

export interface ReassemblyOptions<P> {
  /** How long the first part waits for the others (ms). */
  timeoutMs: number;
  /** Most buffers held at once. */
  maxBuffers: number;
  /** Most payload bytes held at once. */
  maxBytes: number;
  clock: Clock;
  /** Called (synchronously, from inside the cache) with the parts of a buffer that timed out or was evicted. */
  onIncomplete(parts: P[], total: number, reason: "timeout" | "evicted" | "shutdown"): void;
}

export type AddResult<P> =
  | { kind: "stored" }
  | { kind: "duplicate" }
  | { kind: "complete"; parts: P[] };

class Buffered<P> {
  readonly parts: (P | undefined)[];
  count = 0;
  bytes = 0;
  constructor(readonly total: number) {
    this.parts = new Array<P | undefined>(total);
  }
}

const ENTRY_OVERHEAD = 256;

export class Reassembler<P> {
  private readonly cache: LRUCache<string, Buffered<P>>;
  private readonly onIncomplete: ReassemblyOptions<P>["onIncomplete"];
  private bytesHeld = 0;

  constructor(opts: ReassemblyOptions<P>) {
    this.onIncomplete = opts.onIncomplete;
    const clock = opts.clock;
    this.cache = new LRUCache<string, Buffered<P>>({
      max: Math.max(1, opts.maxBuffers),
      maxSize: Math.max(ENTRY_OVERHEAD * 2, opts.maxBytes),
      sizeCalculation: (b) => ENTRY_OVERHEAD + b.bytes,
      ttl: Math.max(1, opts.timeoutMs),
      ttlResolution: 0,
      noUpdateTTL: true,
      noDisposeOnSet: true,
      perf: { now: () => clock.now() },
      dispose: (b, _key, reason) => this.disposed(b, reason),
    });
  }

  private disposed(b: Buffered<P>, reason: LRUCache.DisposeReason): void {
    this.bytesHeld -= b.bytes;
    if (reason === "expire" || reason === "evict") {
      const parts: P[] = [];
      for (let i = 0; i < b.parts.length; i++) if (b.parts[i] !== undefined) parts.push(b.parts[i]!);
      if (parts.length > 0) this.onIncomplete(parts, b.total, reason === "expire" ? "timeout" : "evicted");
    }
  }

  /** Add part `seq` (1-based) of `total`. `size` is its payload size in bytes. */
  add(key: string, total: number, seq: number, part: P, size: number): AddResult<P> {
    let b = this.cache.get(key);
    if (b === undefined) {
      b = new Buffered<P>(total);
      b.parts[seq - 1] = part;
      b.count = 1;
      b.bytes = size;
      this.bytesHeld += size;
      if (total === 1) {
        this.bytesHeld -= size;
        return { kind: "complete", parts: [part] };
      }
      this.cache.set(key, b);
      if (!this.cache.has(key)) {
        // Larger than the whole cache: give it back at once as incomplete.
        this.bytesHeld -= b.bytes;
        this.onIncomplete([part], total, "evicted");
      }
      return { kind: "stored" };
    }
    if (b.parts[seq - 1] !== undefined) return { kind: "duplicate" };
    b.parts[seq - 1] = part;
    b.count++;
    b.bytes += size;
    this.bytesHeld += size;
    if (b.count === b.total) {
      this.cache.delete(key); // reason "delete": not delivered as incomplete
      return { kind: "complete", parts: b.parts as P[] };
    }
    this.cache.set(key, b); // recompute size; TTL keeps counting from the first part
    return { kind: "stored" };
  }

  /**
   * Put parts back after the complete message could not be handed on (temporary failure), so a
   * retry of the missing part completes it again. `sizes` parallels `parts`; `seqs` are 1-based.
   */
  restore(key: string, total: number, seqs: number[], parts: P[], sizes: number[]): void {
    if (parts.length === 0) return;
    const b = new Buffered<P>(total);
    for (let i = 0; i < parts.length; i++) {
      b.parts[seqs[i]! - 1] = parts[i];
      b.count++;
      b.bytes += sizes[i]!;
    }
    this.bytesHeld += b.bytes;
    this.cache.set(key, b);
    if (!this.cache.has(key)) this.bytesHeld -= b.bytes;
  }

  /** Deliver every timed-out buffer now. Call on a timer. */
  sweep(): void {
    this.cache.purgeStale();
  }

  /** Buffers in use. */
  get size(): number {
    return this.cache.size;
  }

  get bytes(): number {
    return this.bytesHeld;
  }

  /** Hand every buffer on as incomplete now (shutdown: parts already acknowledged must not be lost). */
  flush(): void {
    const all: Buffered<P>[] = [...this.cache.values()];
    this.cache.clear(); // reason "delete"
    for (const b of all) {
      const parts: P[] = [];
      for (let i = 0; i < b.parts.length; i++) if (b.parts[i] !== undefined) parts.push(b.parts[i]!);
      if (parts.length > 0) this.onIncomplete(parts, b.total, "shutdown");
    }
    this.bytesHeld = 0;
  }
}
