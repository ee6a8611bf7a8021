/** Time source for delivery timers and schedules (structurally the same as src/smpp's Clock). */
export interface DeliveryClock {
  /** Wall clock, epoch ms. */
  now(): number;
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

/** The real clock; its timers are unref'd so they never keep the process alive on their own. */
export const realClock: DeliveryClock = Object.freeze({
  now: () => Date.now(),
  setTimeout: (fn: () => void, ms: number) => {
    const t = setTimeout(fn, ms);
    t.unref();
    return t;
  },
  clearTimeout: (h: unknown) => clearTimeout(h as NodeJS.Timeout),
});
