/**
 * Target health: OPTIONS probes through a real SipStack to a UDP peer whose answer we switch,
 * thresholds for down and up, and suspect-on-timeout.
 */
import dgram from "node:dgram";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import pino from "pino";
import { TargetHealth } from "../../src/edge/health.js";
import { targetKey } from "../../src/sip/resolve.js";
import { SipStack, createResponse, parseMessage, SipMessage } from "../../src/sip/index.js";
import { waitFor } from "../helpers/app.js";

describe("TargetHealth (OPTIONS probing)", () => {
  let stack: SipStack;
  let peer: dgram.Socket;
  let status = 503;
  let probes = 0;
  const downCounts: number[] = [];

  beforeAll(async () => {
    peer = dgram.createSocket("udp4");
    await new Promise<void>((r) => peer.bind(0, "127.0.0.1", () => r()));
    peer.on("message", (b, rinfo) => {
      const m = parseMessage(b);
      if (!(m instanceof SipMessage) || m.method !== "OPTIONS") return;
      probes++;
      if (status === 0) return; // silent
      peer.send(createResponse(m, status).toBuffer(), rinfo.port, rinfo.address);
    });
    stack = await SipStack.create({ listen: ["udp://127.0.0.1:0"], t1: 20 }, { onRequest: (tx) => void tx.reply(501) });
  });

  afterAll(async () => {
    await stack?.close();
    await new Promise<void>((r) => peer.close(() => r()));
  });

  it("marks a target down after `failures` bad answers and up after `recoveries` good ones; a call timeout makes it suspect at once", async () => {
    const health = new TargetHealth({
      config: { enabled: true, interval_s: 0.05, failures: 2, recoveries: 2, alive_codes: [200, 404] },
      logger: pino({ level: "silent" }),
      now: Date.now,
      onDownCount: (n) => downCounts.push(n),
    });
    const port = peer.address().port;
    const t = { transport: "udp" as const, address: "127.0.0.1", port, key: targetKey("udp", "127.0.0.1", port) };
    health.track(t, `sip:probe@127.0.0.1:${port}`);
    health.start(stack);
    try {
      expect(health.isDown(t.key)).toBe(false);
      await waitFor(() => health.isDown(t.key), 5000);
      expect(probes).toBeGreaterThanOrEqual(2);
      expect(health.down).toBe(1);
      status = 404; // in alive_codes
      await waitFor(() => !health.isDown(t.key), 5000);
      expect(health.down).toBe(0);
      // a timeout on a real call: down at once, until a probe gets an answer again
      status = 0;
      health.suspect(t, `sip:probe@127.0.0.1:${port}`, "timer B");
      expect(health.isDown(t.key)).toBe(true);
      const p0 = probes;
      await waitFor(() => probes >= p0 + 1, 5000);
      expect(health.isDown(t.key)).toBe(true);
      status = 200;
      await waitFor(() => !health.isDown(t.key), 8000);
      expect(downCounts).toContain(1);
      expect(downCounts[downCounts.length - 1]).toBe(0);
    } finally {
      health.stop();
    }
  });

  it("without probing a suspect target comes back after suspectMs", () => {
    let now = 1000;
    const health = new TargetHealth({
      config: { enabled: false, interval_s: 10, failures: 3, recoveries: 2, alive_codes: [200] },
      logger: pino({ level: "silent" }),
      now: () => now,
      suspectMs: 30_000,
    });
    const t = { transport: "udp" as const, address: "10.0.0.1", port: 5060, key: targetKey("udp", "10.0.0.1", 5060) };
    health.suspect(t, "sip:x@10.0.0.1", "timer B");
    expect(health.isDown(t.key)).toBe(true);
    now += 29_000;
    expect(health.isDown(t.key)).toBe(true);
    now += 2_000;
    expect(health.isDown(t.key)).toBe(false);
    health.suspect(t, "sip:x@10.0.0.1", "timer B");
    health.alive(t.key);
    expect(health.isDown(t.key)).toBe(false);
  });
});
