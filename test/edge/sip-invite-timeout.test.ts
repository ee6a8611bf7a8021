/**
 * voice.invite_timeout_s / sip.invite_timeout_s: a target that sends no provisional response in
 * that time is given up and the next target gets the call, long before Timer B (32 s with the
 * default T1 of 500 ms). A target that sent 100 Trying in time is not cut off by it (the ring
 * timeout applies then).
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Didgate } from "../../src/app.js";
import { startApp, tempDir, waitFor, writeRoutes } from "../helpers/app.js";
import { Peer, request, response, sleep } from "./udp-peer.js";

describe("INVITE timeout (no provisional response: next target)", () => {
  let app: Didgate;
  let port: number;
  let carrier: Peer;
  let silent: Peer;
  let silent2: Peer; // another one: a target that timed out is skipped for a while (health)
  let trying: Peer;
  let next: Peer;
  const seen = new Map<string, number>();

  beforeAll(async () => {
    carrier = await Peer.start("127.0.0.1");
    silent = await Peer.start("127.0.0.5");
    silent2 = await Peer.start("127.0.0.5");
    trying = await Peer.start("127.0.0.5");
    next = await Peer.start("127.0.0.6");
    const dir = tempDir();
    const two = (did: string, first: Peer, extra: Record<string, unknown> = {}) => ({
      voice: { targets: [{ uri: `sip:${did}@127.0.0.5:${first.port}`, priority: 1 }, { uri: `sip:${did}@127.0.0.6:${next.port}`, priority: 2 }], ...extra },
    });
    writeRoutes(dir, {
      "+15125550100": two("+15125550100", silent, { invite_timeout_s: 0.8 }),
      "+15125550101": two("+15125550101", silent2),
      "+15125550102": two("+15125550102", trying, { invite_timeout_s: 0.5 }),
    });
    app = (
      await startApp(
        { sip: { listen: ["udp://127.0.0.1:0"], invite_timeout_s: 1.5, trunks: [{ name: "carrier", sources: ["127.0.0.1"], country_code: "1" }] }, routes: { file: "routes.yaml", watch: false } },
        dir,
      )
    ).app;
    port = (app as unknown as { voice: { listeners: Array<{ port: number }> } }).voice.listeners[0]!.port;
    const stamp = (p: Peer, tag: string) => {
      const orig = p.got.push.bind(p.got);
      p.got.push = (...m) => {
        for (const x of m) if (x.method === "INVITE" && !seen.has(tag + x.callId)) seen.set(tag + x.callId, Date.now());
        return orig(...m);
      };
    };
    stamp(silent, "first:");
    stamp(silent2, "first:");
    stamp(trying, "first:");
    stamp(next, "next:");
  });
  afterAll(async () => {
    await app?.stop(0);
    for (const p of [carrier, silent, silent2, trying, next]) await p?.close();
  });

  async function failoverDelay(did: string, callId: string): Promise<number> {
    carrier.send(port, request("INVITE", `sip:${did}@127.0.0.1:${port}`, carrier, { callId }));
    const inv = await waitFor(() => next.got.find((m) => m.method === "INVITE" && m.callId === callId), 10_000);
    next.send(port, response(inv, "200 OK", { toTag: "n", contact: `sip:n@127.0.0.6:${next.port}` }));
    await waitFor(() => carrier.got.find((m) => m.callId === callId && m.status === 200));
    return seen.get("next:" + callId)! - seen.get("first:" + callId)!;
  }

  it("the route's invite_timeout_s moves the call on without waiting for Timer B", async () => {
    const d = await failoverDelay("+15125550100", "it-route");
    expect(d).toBeGreaterThanOrEqual(700);
    expect(d).toBeLessThan(4000);
    // the silent target got the INVITE and its retransmissions, then nothing more
    expect(silent.got.filter((m) => m.callId === "it-route" && m.method === "INVITE").length).toBeGreaterThanOrEqual(1);
  });

  it("without it on the route, sip.invite_timeout_s applies", async () => {
    const d = await failoverDelay("+15125550101", "it-default");
    expect(d).toBeGreaterThanOrEqual(1400);
    expect(d).toBeLessThan(5000);
  });

  it("a target that answered 100 Trying in time is not given up by the INVITE timeout", async () => {
    carrier.send(port, request("INVITE", `sip:+15125550102@127.0.0.1:${port}`, carrier, { callId: "it-trying" }));
    const inv = await waitFor(() => trying.got.find((m) => m.method === "INVITE" && m.callId === "it-trying"));
    trying.send(port, response(inv, "100 Trying"));
    await sleep(1500);
    expect(next.got.filter((m) => m.callId === "it-trying")).toEqual([]);
    trying.send(port, response(inv, "486 Busy Here", { toTag: "t" }));
    expect((await waitFor(() => carrier.got.find((m) => m.callId === "it-trying" && m.status >= 200))).status).toBe(486);
  });
});
