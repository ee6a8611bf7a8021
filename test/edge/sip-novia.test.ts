/**
 * RFC 3261 16.7 step 3: a response with no Via left after ours is removed was meant for didgate
 * and is not forwarded (Kamailio as the carrier logged "no via found in reply" for each one). A
 * raw UDP destination answers with only didgate's Via: provisional ones are dropped, a final one
 * is answered by didgate itself (with the carrier's Via), a 2xx fails over to the next target;
 * every one counts in didgate_sip_dropped_total{reason="response_no_via"}.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Didgate } from "../../src/app.js";
import { startApp, tempDir, waitFor, writeRoutes } from "../helpers/app.js";
import { Peer, request, response, sleep } from "./udp-peer.js";

async function dropped(app: Didgate): Promise<number> {
  const m = (await app.registry.getMetricsAsJSON()).find((x) => x.name === "didgate_sip_dropped_total");
  let sum = 0;
  for (const v of (m?.values ?? []) as Array<{ value: number; labels: Record<string, string | number> }>) if (v.labels.reason === "response_no_via") sum += v.value;
  return sum;
}

describe("responses without a Via left are not forwarded", () => {
  let app: Didgate;
  let port: number;
  let carrier: Peer;
  let dest: Peer;
  let next: Peer;

  beforeAll(async () => {
    carrier = await Peer.start();
    dest = await Peer.start("127.0.0.5");
    next = await Peer.start("127.0.0.5");
    const dir = tempDir();
    writeRoutes(dir, {
      "+15125550100": { voice: { targets: [`sip:+15125550100@127.0.0.5:${dest.port}`] } },
      "+15125550101": { voice: { targets: [{ uri: `sip:+15125550101@127.0.0.5:${dest.port}`, priority: 1 }, { uri: `sip:+15125550101@127.0.0.5:${next.port}`, priority: 2 }] } },
    });
    app = (
      await startApp({ sip: { listen: ["udp://127.0.0.1:0"], timers: { t1_ms: 50 }, trunks: [{ name: "carrier", sources: ["127.0.0.1"], country_code: "1" }] }, routes: { file: "routes.yaml", watch: false } }, dir)
    ).app;
    port = (app as unknown as { voice: { listeners: Array<{ port: number }> } }).voice.listeners[0]!.port;
  });
  afterAll(async () => {
    await app?.stop(0);
    for (const p of [carrier, dest, next]) await p?.close();
  });

  it("a 180 and a 486 with only our Via: the 180 is dropped, the carrier gets didgate's own 486", async () => {
    const before = await dropped(app);
    carrier.send(port, request("INVITE", `sip:+15125550100@127.0.0.1:${port}`, carrier, { callId: "novia-1" }));
    const inv = await waitFor(() => dest.got.find((m) => m.method === "INVITE" && m.callId === "novia-1"));
    const ours = [inv.vias[0]!];
    dest.send(port, response(inv, "180 Ringing", { toTag: "d1", vias: ours }));
    await sleep(150);
    dest.send(port, response(inv, "486 Busy Here", { toTag: "d1", vias: ours }));
    const fin = await waitFor(() => carrier.got.find((m) => m.callId === "novia-1" && m.status >= 200));
    expect(fin.status).toBe(486);
    expect(fin.vias.length).toBe(1);
    expect(fin.vias[0]).toContain(`127.0.0.1:${carrier.port}`);
    expect(carrier.got.filter((m) => m.callId === "novia-1" && m.status === 180)).toEqual([]);
    expect(await dropped(app)).toBe(before + 2);
  });

  it("a 200 with only our Via is not forwarded: the call moves on to the next target", async () => {
    const before = await dropped(app);
    carrier.send(port, request("INVITE", `sip:+15125550101@127.0.0.1:${port}`, carrier, { callId: "novia-2" }));
    const inv = await waitFor(() => dest.got.find((m) => m.method === "INVITE" && m.callId === "novia-2"));
    dest.send(port, response(inv, "200 OK", { toTag: "d2", vias: [inv.vias[0]!], contact: `sip:callee@127.0.0.5:${dest.port}` }));
    const inv2 = await waitFor(() => next.got.find((m) => m.method === "INVITE" && m.callId === "novia-2"));
    next.send(port, response(inv2, "200 OK", { toTag: "n2", contact: `sip:callee@127.0.0.5:${next.port}` }));
    const ok = await waitFor(() => carrier.got.find((m) => m.callId === "novia-2" && m.status === 200));
    expect(ok.toTag).toBe("n2");
    expect(carrier.got.filter((m) => m.callId === "novia-2" && m.toTag === "d2")).toEqual([]);
    expect(await dropped(app)).toBeGreaterThanOrEqual(before + 1);
  });

  it("in a dialog: a 200 to a BYE with only our Via reaches the caller as didgate's own 200", async () => {
    carrier.send(port, request("INVITE", `sip:+15125550100@127.0.0.1:${port}`, carrier, { callId: "novia-3", fromTag: "f3" }));
    const inv = await waitFor(() => dest.got.find((m) => m.method === "INVITE" && m.callId === "novia-3"));
    dest.send(port, response(inv, "200 OK", { toTag: "d3", contact: `sip:callee@127.0.0.5:${dest.port}` }));
    const ok = await waitFor(() => carrier.got.find((m) => m.callId === "novia-3" && m.status === 200));
    const before = await dropped(app);
    carrier.send(port, request("BYE", `sip:callee@127.0.0.5:${dest.port}`, carrier, { callId: "novia-3", fromTag: "f3", toTag: "d3", cseq: 2, extra: [`Route: ${ok.recordRoutes[0]}`] }));
    const bye = await waitFor(() => dest.got.find((m) => m.method === "BYE" && m.callId === "novia-3"));
    dest.send(port, response(bye, "200 OK", { vias: [bye.vias[0]!] }));
    const fin = await waitFor(() => carrier.got.find((m) => m.callId === "novia-3" && m.cseq?.method === "BYE"));
    expect(fin.status).toBe(200);
    expect(fin.vias.length).toBe(1);
    expect(await dropped(app)).toBe(before + 1);
  });

  it("a stray response with only our Via (no transaction) is dropped and counted", async () => {
    const before = await dropped(app);
    const l = (app as unknown as { voice: { stack: { listeners: Array<{ sentBy: string }> } } }).voice.stack.listeners[0]!;
    dest.send(port, ["SIP/2.0 200 OK", `Via: SIP/2.0/UDP ${l.sentBy};branch=z9hG4bKnotours1;rport`, "From: <sip:a@x>;tag=1", "To: <sip:b@y>;tag=2", "Call-ID: stray-1", "CSeq: 1 INVITE", "Content-Length: 0", "", ""].join("\r\n"));
    await waitFor(async () => (await dropped(app)) === before + 1);
    expect(carrier.got.filter((m) => m.callId === "stray-1")).toEqual([]);
  });
});
