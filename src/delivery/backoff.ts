/**
 * Retry schedule: exponential backoff with full jitter ("AWS full jitter"), capped, bounded by the
 * message's maximum age. Pure functions; the random source is passed in so tests are exact.
 */

export interface BackoffOptions {
  /** First retry's ceiling (ms). Attempt n waits a random time in [floorMs, min(capMs, baseMs * 2^(n-1))]. */
  baseMs: number;
  /** Largest wait between two attempts (ms). */
  capMs: number;
  /** Smallest wait (ms), so a fast failure never turns into a tight loop. */
  floorMs: number;
  /** Maximum age of a message (ms, from acceptance): after it, no more attempts. */
  maxAgeMs: number;
}

export const DEFAULT_BACKOFF: Readonly<BackoffOptions> = Object.freeze({
  baseMs: 1_000,
  capMs: 300_000,
  floorMs: 100,
  maxAgeMs: 86_400_000,
});

/**
 * Wait before the next attempt, after `attempts` failed attempts (1 = the first attempt failed).
 * `random` returns a number in [0, 1).
 */
export function backoffDelay(attempts: number, opts: BackoffOptions, random: () => number = Math.random): number {
  const n = attempts < 1 ? 0 : attempts - 1;
  // 2^n overflows nothing before the cap for any sane base; clamp the exponent anyway.
  const ceiling = Math.min(opts.capMs, opts.baseMs * 2 ** Math.min(n, 40));
  const floor = Math.min(opts.floorMs, ceiling);
  return Math.floor(floor + random() * (ceiling - floor));
}

export type RetryDecision = { kind: "retry"; dueAt: number; delayMs: number } | { kind: "dead"; reason: "max_age" };

/**
 * When to try again after a failed attempt, or that the message is out of time.
 * - `retryAfterMs` (a 429's Retry-After) replaces the backoff delay (never shorter than the floor).
 * - The next attempt never falls after the deadline (acceptedAt + maxAge): the last one is made at
 *   the deadline, and a failure at or after the deadline dead-letters the message.
 */
export function nextAttempt(
  acceptedAt: number,
  attempts: number,
  now: number,
  opts: BackoffOptions,
  retryAfterMs?: number,
  random: () => number = Math.random,
): RetryDecision {
  const deadline = acceptedAt + opts.maxAgeMs;
  if (now >= deadline) return { kind: "dead", reason: "max_age" };
  let delay = retryAfterMs !== undefined && retryAfterMs >= 0 ? Math.max(retryAfterMs, opts.floorMs) : backoffDelay(attempts, opts, random);
  if (now + delay > deadline) delay = deadline - now;
  return { kind: "retry", dueAt: now + delay, delayMs: delay };
}
