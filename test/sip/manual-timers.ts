/** Deterministic SIP timers for tests (time moves only with advance()). */
import type { TimerHandle, TimerTarget, Timers } from "../../src/sip/timers.js";

interface ManualEntry {
  at: number;
  seq: number;
  target: TimerTarget;
  kind: number;
  cancelled: boolean;
}

/**
 * Deterministic timers for tests: time only moves with advance(). Timers due at the same instant
 * fire in the order they were set.
 */
export class ManualTimers implements Timers {
  private t = 0;
  private seq = 0;
  private pending: ManualEntry[] = [];

  now(): number {
    return this.t;
  }

  set(ms: number, target: TimerTarget, kind: number): TimerHandle {
    const e: ManualEntry = { at: this.t + Math.max(0, ms), seq: this.seq++, target, kind, cancelled: false };
    this.pending.push(e);
    return e;
  }

  clear(handle: TimerHandle): void {
    if (handle) (handle as ManualEntry).cancelled = true;
  }

  /** Number of timers not yet fired or cancelled. */
  get size(): number {
    let n = 0;
    for (const e of this.pending) if (!e.cancelled) n++;
    return n;
  }

  /** Move time forward by `ms`, firing due timers in time order (including ones they set). */
  advance(ms: number): void {
    const end = this.t + ms;
    for (;;) {
      let best: ManualEntry | null = null;
      for (const e of this.pending) {
        if (e.cancelled || e.at > end) continue;
        if (best === null || e.at < best.at || (e.at === best.at && e.seq < best.seq)) best = e;
      }
      if (best === null) break;
      this.pending = this.pending.filter((e) => e !== best && !e.cancelled);
      this.t = best.at;
      best.target.onTimer(best.kind);
    }
    this.t = end;
  }
}
