/** Time source for everything that schedules or measures (SMPP sessions, delivery). Inject a fake one in tests. */
export interface Clock {
  now(): number;
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
  setInterval(fn: () => void, ms: number): unknown;
  clearInterval(handle: unknown): void;
}

/** The part of a clock that one-shot schedules need (delivery retries, journals): fakes in tests implement only this. */
export type TimeoutClock = Pick<Clock, "now" | "setTimeout" | "clearTimeout">;

/** The real clock. Timers are unref'd: they never keep the process alive on their own. */
export const systemClock: Clock = Object.freeze({
  now: () => Date.now(),
  setTimeout: (fn: () => void, ms: number) => {
    const t = setTimeout(fn, ms);
    t.unref();
    return t;
  },
  clearTimeout: (h: unknown) => clearTimeout(h as NodeJS.Timeout),
  setInterval: (fn: () => void, ms: number) => {
    const t = setInterval(fn, ms);
    t.unref();
    return t;
  },
  clearInterval: (h: unknown) => clearInterval(h as NodeJS.Timeout),
});
