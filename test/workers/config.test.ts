import { describe, expect, it } from "vitest";
import { validateConfig } from "../../src/config/load.js";
import type { Config } from "../../src/config/schema.js";
import { workerConfig, workerCount } from "../../src/workers/config.js";
import { READ_COST } from "../../src/workers/steer.js";

function valid(raw: Record<string, unknown>): Config {
  const v = validateConfig(raw);
  if (!v.ok) throw new Error(v.errors.join("\n"));
  return v.config;
}

describe("sip.workers config", () => {
  it("defaults to 1; accepts N and auto", () => {
    expect(valid({}).sip.workers).toBe(1);
    expect(workerCount(valid({}))).toBe(1);
    expect(workerCount(valid({ sip: { workers: 3 } }))).toBe(3);
    expect(workerCount(valid({ sip: { workers: "auto" } }))).toBeGreaterThanOrEqual(1);
    expect(validateConfig({ sip: { workers: 0 } }).ok).toBe(false);
    expect(validateConfig({ sip: { workers: "all" } }).ok).toBe(false);
  });

  it("refuses more than one worker without Redis when registrar, masking or the API keep state per process", () => {
    for (const extra of [{ api: { listen: "127.0.0.1:8080", tokens: [{ token: "t".repeat(32) }] } }, { masking: { pools: [{ name: "p", tenant: "t", numbers: ["+15125550100"] }] } }]) {
      const v = validateConfig({ sip: { workers: 2 }, ...extra });
      expect(v.ok).toBe(false);
      if (!v.ok) expect(v.errors.join("\n")).toMatch(/sip\.workers.*needs routes\.redis when (api\.listen|masking\.pools)/);
      expect(validateConfig({ sip: { workers: 2 }, routes: { redis: { url: "redis://127.0.0.1:6390" } }, ...extra }).ok).toBe(true);
      expect(validateConfig({ sip: { workers: 1 }, ...extra }).ok).toBe(true);
    }
  });

  it("a worker's share: CPS and per-source pps split by the share of the calls it owns, max_calls split without Redis, shared with it", () => {
    const raw = {
      instance_id: "edge1",
      sip: {
        workers: 4,
        flood: { per_source_pps: 20 },
        trunks: [{ name: "t", sources: ["10.0.0.1"], cps: 100, termination: "sip:10.0.0.1", termination_cps: 40, max_calls: 10 }],
        customers: [{ name: "c", tenant: "x", sources: ["10.0.0.2"], cps: 8, max_calls: 3 }],
      },
    };
    // of 4 workers, worker 3 reads the UDP socket: it owns READ_COST (0.25) of the calls less
    // than each of the others, 0.3125 each and 0.0625
    expect(READ_COST).toBe(0.25);
    const w = workerConfig(valid(raw), 2, 4, "host");
    expect(w.instance_id).toBe("edge1:w2");
    expect(w.sip.trunks[0]).toMatchObject({ cps: 31.25, termination_cps: 12.5, max_calls: 3 });
    expect(w.sip.customers[0]).toMatchObject({ cps: 2.5, max_calls: 1 });
    expect(w.sip.flood.per_source_pps).toBe(6.25);
    const reader = workerConfig(valid(raw), 3, 4, "host");
    expect(reader.sip.trunks[0]).toMatchObject({ cps: 6.25, termination_cps: 2.5, max_calls: 1 });
    expect(reader.sip.flood.per_source_pps).toBe(1.25);
    // the shares sum to the configured limits
    let cps = 0;
    for (let i = 0; i < 4; i++) cps += workerConfig(valid(raw), i, 4, "host").sip.trunks[0]!.cps;
    expect(cps).toBeCloseTo(100, 9);
    const shared = workerConfig(valid({ ...raw, routes: { redis: { url: "redis://127.0.0.1:6390" } } }), 0, 4, "host");
    expect(shared.sip.trunks[0]!.max_calls).toBe(10);
    expect(shared.sip.customers[0]!.max_calls).toBe(3);
    expect(shared.sip.trunks[0]!.cps).toBe(31.25);
    // one worker: the config itself
    const one = valid(raw);
    expect(workerConfig(one, 0, 1, "host")).toBe(one);
  });
});
