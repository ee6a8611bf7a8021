/**
 * The config a SIP worker runs with (sip.workers > 1). Pure.
 *
 * Limits that each process keeps in memory are split by the share of the calls each worker owns
 * (ownerShares in src/workers/steer.ts: the readers of the UDP socket own fewer): a trunk's or
 * customer's CPS, a carrier's termination_cps and sip.flood.per_source_pps. Calls over UDP are
 * spread over the workers in those shares (hash of the Call-ID), so the sum over the workers is
 * the configured limit; a burst that happens to hash unevenly is refused a little early (a
 * documented approximation). max_calls is shared exactly through Redis when routes.redis is set
 * (src/edge/calls-share.ts counts every edge's calls); without Redis it is split too (floor, at
 * least 1 per worker).
 * Each worker gets its own instance_id suffix (":w<index>"): edges sharing Redis tell their
 * counters apart by it.
 */
import os from "node:os";
import type { Config } from "../config/schema.js";
import { ownerShares } from "./steer.js";

/** sip.workers as a number ("auto": the cores the process may use). */
export function workerCount(c: Config): number {
  const w = c.sip.workers;
  return w === "auto" ? Math.max(1, os.availableParallelism()) : w;
}

function splitInt(v: number | undefined, share: number): number | undefined {
  return v === undefined ? undefined : Math.max(1, Math.floor(v * share));
}

/** The config of worker `index` of `n`. */
export function workerConfig(c: Config, index: number, n: number, hostname: string): Config {
  if (n <= 1) return c;
  const shared = c.routes.redis !== undefined;
  const share = ownerShares(n)[index] ?? 1 / n;
  const sip = c.sip;
  return {
    ...c,
    instance_id: `${c.instance_id ?? hostname}:w${index}`,
    sip: {
      ...sip,
      trunks: sip.trunks.map((t) => ({
        ...t,
        cps: t.cps * share,
        ...(t.termination_cps !== undefined ? { termination_cps: t.termination_cps * share } : {}),
        ...(t.max_calls !== undefined && !shared ? { max_calls: splitInt(t.max_calls, share) } : {}),
      })),
      customers: sip.customers.map((cu) => ({
        ...cu,
        cps: cu.cps * share,
        ...(cu.max_calls !== undefined && !shared ? { max_calls: splitInt(cu.max_calls, share) } : {}),
      })),
      flood: { ...sip.flood, per_source_pps: sip.flood.per_source_pps * share },
    },
  };
}
