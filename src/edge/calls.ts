/**
 * Concurrent-call accounting for max_calls (customers and carriers). A call takes a slot when its
 * INVITE is sent (so a burst of setups cannot overshoot the limit), keeps it from the 2xx to the
 * BYE, and gives it back on a failed setup, on the BYE, or when its deadline passes: the setup
 * deadline, or sip.max_call_s after the answer, so a lost BYE never holds a slot for good.
 *
 * Slots are kept per key ("c:NAME" customer, "k:NAME" carrier) as call id -> deadline; the number
 * of keys is the number of configured customers and carriers, the number of entries is bounded by
 * their limits (a key without a limit is counted too, for the gauge, and bounded by
 * sip.max_inflight_invites plus the calls in progress, which expire). With Redis the slots are
 * mirrored to the other edges (src/edge/calls-share.ts), which count them against the same limits.
 */
import type { Now } from "./limits.js";

/** Mirrors the slots to other edges and tells how many they hold (src/edge/calls-share.ts). */
export interface CallShareHook {
  othersCount(key: string): number;
  added(key: string, callId: string, until: number): void;
  removed(key: string, callId: string): void;
}

export class CallCounter {
  private readonly slots = new Map<string, Map<string, number>>();
  /** Set when the counts are shared across edges. */
  share: CallShareHook | undefined;

  constructor(private readonly now: Now) {}

  /** Whether a slot under any key is held for callId (on this edge). */
  holds(callId: string): boolean {
    const now = this.now();
    for (const m of this.slots.values()) {
      const until = m.get(callId);
      if (until !== undefined && until > now) return true;
    }
    return false;
  }

  /** Takes a slot for callId under key unless `max` are taken; true when taken (or already held). */
  acquire(key: string, callId: string, max: number | undefined, ttlMs: number): boolean {
    let m = this.slots.get(key);
    if (m === undefined) this.slots.set(key, (m = new Map()));
    if (m.has(callId)) {
      m.set(callId, this.now() + ttlMs);
      return true;
    }
    if (max !== undefined) {
      const others = this.share?.othersCount(key) ?? 0;
      if (m.size + others >= max) {
        this.expire(m);
        if (m.size + others >= max) return false;
      }
    }
    const until = this.now() + ttlMs;
    m.set(callId, until);
    this.share?.added(key, callId, until);
    return true;
  }

  /** Moves the deadline of a held slot (the call was answered: max_call_s from now). */
  extend(key: string, callId: string, ttlMs: number): void {
    const m = this.slots.get(key);
    if (m !== undefined && m.has(callId)) {
      const until = this.now() + ttlMs;
      m.set(callId, until);
      this.share?.added(key, callId, until);
    }
  }

  /** Gives a slot back; false when it was not held. */
  release(key: string, callId: string): boolean {
    const m = this.slots.get(key);
    if (m === undefined || !m.delete(callId)) return false;
    this.share?.removed(key, callId);
    return true;
  }

  count(key: string): number {
    const m = this.slots.get(key);
    if (m === undefined) return 0;
    this.expire(m);
    return m.size;
  }

  /** Drops every slot past its deadline. */
  sweep(): void {
    for (const m of this.slots.values()) this.expire(m);
  }

  private expire(m: Map<string, number>): void {
    const t = this.now();
    for (const [id, until] of m) if (until <= t) m.delete(id);
  }

  keys(): IterableIterator<string> {
    return this.slots.keys();
  }
}
