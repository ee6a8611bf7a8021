/**
 * Injectable timer interface, the SIP stack's hot-path variant of util/clock.ts: transactions
 * implement TimerTarget and are called back with a numeric kind, so no closure is created per
 * timer (a call sets several). Tests drive it with a manual implementation (test/sip/manual-timers.ts).
 */

export interface TimerTarget {
  onTimer(kind: number): void;
}

export type TimerHandle = unknown;

export interface Timers {
  /** Milliseconds, monotonic. */
  now(): number;
  /** Call target.onTimer(kind) after `ms` milliseconds. */
  set(ms: number, target: TimerTarget, kind: number): TimerHandle;
  clear(handle: TimerHandle): void;
}

function fire(target: TimerTarget, kind: number): void {
  target.onTimer(kind);
}

/** Timers backed by Node's setTimeout. Stateless, so one shared instance is fine. */
export const realTimers: Timers = {
  now: () => performance.now(),
  set: (ms, target, kind) => setTimeout(fire, ms, target, kind),
  clear: (h) => clearTimeout(h as NodeJS.Timeout),
};
