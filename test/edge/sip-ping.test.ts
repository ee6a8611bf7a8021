/**
 * Keep-alives, pings and unknown sources at the edge:
 * - UDP "\r\n\r\n" keep-alives (RFC 5626 style) are not parse errors and get no answer; TCP ones
 *   get a CRLF pong.
 * - OPTIONS from a configured pinger (sip.pingers) or from a target a call was sent to get 200;
 *   from other unknown sources nothing.
 * - The first refusal of each unknown source is logged at warn with the nearest trunk; every
 *   refusal counts in didgate_sip_refused_total{transport} (UDP requests, TCP requests, TCP
 *   connections over the untrusted limit).
 */
import net from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Didgate } from "../../src/app.js";
import { createLogger } from "../../src/ops/logger.js";
import { startApp, tempDir, waitFor, writeRoutes } from "../helpers/app.js";
import { freePort } from "../helpers/sipp.js";
import { Peer, connectFrom, request, response, sleep } from "./udp-peer.js";

async function metric(app: Didgate, name: string, labels: Record<string, string> = {}): Promise<number> {
  const m = (await app.registry.getMetricsAsJSON()).find((x) => x.name === name);
  let sum = 0;
  for (const v of (m?.values ?? []) as Array<{ value: number; labels: Record<string, string | number> }>) {
    if (Object.entries(labels).every(([k, val]) => String(v.labels[k]) === val)) sum += v.value;
  }
  return sum;
}

describe("keep-alives, pings and unknown sources", () => {
  let app: Didgate;
  let port: number;
  const lines: Array<Record<string, unknown>> = [];
  let carrier: Peer;
  let dest: Peer;
  let pinger: Peer;
  let stranger: Peer;

  beforeAll(async () => {
    carrier = await Peer.start("127.0.0.1");
    dest = await Peer.start("127.0.0.5");
    pinger = await Peer.start("127.0.0.7");
    stranger = await Peer.start("127.0.0.8");
    const dir = tempDir();
    port = await freePort();
    writeRoutes(dir, { "+15125550100": { voice: { targets: [`sip:+15125550100@127.0.0.5:${dest.port}`] } } });
    const logger = createLogger("info", { write: (s: string) => void lines.push(JSON.parse(s) as Record<string, unknown>) });
    app = (
      await startApp(
        {
          sip: {
            listen: [`udp://127.0.0.1:${port}`, `tcp://127.0.0.1:${port}`],
            timers: { t1_ms: 50 },
            trunks: [{ name: "carrier", sources: ["127.0.0.1"], country_code: "1" }],
            pingers: ["127.0.0.7/32"],
            tcp: { max_untrusted_connections: 3 },
          },
          routes: { file: "routes.yaml", watch: false },
        },
        dir,
        { logger },
      )
    ).app;
  });
  afterAll(async () => {
    await app?.stop(0);
    for (const p of [carrier, dest, pinger, stranger]) await p?.close();
  });

  it("UDP CRLF keep-alives are accepted silently: no parse error, no answer", async () => {
    for (let i = 0; i < 3; i++) {
      carrier.send(port, Buffer.from("\r\n\r\n"));
      stranger.send(port, Buffer.from("\r\n\r\n"));
    }
    await waitFor(async () => (await metric(app, "didgate_sip_keepalives_total", { transport: "udp" })) === 6);
    expect(await metric(app, "didgate_sip_parse_errors_total")).toBe(0);
    expect(await metric(app, "didgate_sip_dropped_total", { reason: "unparsable" })).toBe(0);
    await sleep(100);
    expect(carrier.got.length + stranger.got.length).toBe(0);
  });

  it("a TCP CRLF ping gets a CRLF pong", async () => {
    const s = await connectFrom("127.0.0.1", port);
    const pong = new Promise<string>((r) => s.once("data", (d) => r(d.toString("latin1"))));
    s.write("\r\n\r\n");
    expect(await pong).toBe("\r\n");
    s.destroy();
  });

  it("OPTIONS get 200 from a configured pinger and from a target a call was sent to, nothing from others", async () => {
    const opts = (p: Peer, id: string) => p.send(port, request("OPTIONS", `sip:127.0.0.1:${port}`, p, { callId: id }));
    opts(stranger, "ping-stranger");
    opts(pinger, "ping-pinger");
    opts(dest, "ping-dest-before");
    expect((await waitFor(() => pinger.got.find((m) => m.callId === "ping-pinger"))).status).toBe(200);
    await sleep(200);
    expect(stranger.got.filter((m) => m.callId === "ping-stranger")).toEqual([]);
    expect(dest.got.filter((m) => m.callId === "ping-dest-before")).toEqual([]);
    // a call goes to dest: from then on its pings are answered
    carrier.send(port, request("INVITE", `sip:+15125550100@127.0.0.1:${port}`, carrier, { callId: "call-to-dest" }));
    const inv = await waitFor(() => dest.got.find((m) => m.method === "INVITE" && m.callId === "call-to-dest"));
    dest.send(port, response(inv, "486 Busy Here", { toTag: "b" }));
    await waitFor(() => carrier.got.find((m) => m.callId === "call-to-dest" && m.status === 486));
    opts(dest, "ping-dest-after");
    const ok = await waitFor(() => dest.got.find((m) => m.callId === "ping-dest-after"));
    expect(ok.status).toBe(200);
    expect(ok.get("Allow")).toContain("INVITE");
  });

  it("the first refusal of an unknown source is logged at warn with the nearest trunk, each one is counted", async () => {
    const udpBefore = await metric(app, "didgate_sip_refused_total", { transport: "udp" });
    const lone = await Peer.start("127.0.0.9");
    lone.send(port, request("INVITE", `sip:+15125550100@127.0.0.1:${port}`, lone, { callId: "lone-1" }));
    lone.send(port, request("INVITE", `sip:+15125550100@127.0.0.1:${port}`, lone, { callId: "lone-2" }));
    await waitFor(async () => (await metric(app, "didgate_sip_refused_total", { transport: "udp" })) === udpBefore + 2);
    await lone.close();
    const warns = lines.filter((l) => l.level === "warn" && l.source === "127.0.0.9");
    expect(warns.length).toBe(1);
    expect(warns[0]).toMatchObject({ transport: "udp", nearest_trunk: "carrier" });
    expect(String(warns[0]!.refused)).toContain("INVITE");

    // a request over TCP from an unknown source
    const tcpBefore = await metric(app, "didgate_sip_refused_total", { transport: "tcp" });
    const s = await connectFrom("127.0.0.10", port);
    s.write(request("INVITE", `sip:+15125550100@127.0.0.1:${port}`, { address: "127.0.0.10", port: s.localPort! }, { callId: "tcp-lone" }).replace("SIP/2.0/UDP", "SIP/2.0/TCP"));
    await waitFor(async () => (await metric(app, "didgate_sip_refused_total", { transport: "tcp" })) === tcpBefore + 1);
    expect(lines.filter((l) => l.level === "warn" && l.source === "127.0.0.10" && l.transport === "tcp").length).toBe(1);
    s.destroy();
  });

  it("TCP connections from unknown sources beyond sip.tcp.max_untrusted_connections are refused, counted and logged", async () => {
    await sleep(100); // the previous test's connection is closed
    const before = await metric(app, "didgate_sip_refused_total", { transport: "tcp" });
    const socks: net.Socket[] = [];
    for (let i = 0; i < 5; i++) {
      const s = net.connect({ host: "127.0.0.1", port, localAddress: "127.0.0.11" });
      s.on("error", () => {});
      socks.push(s);
    }
    await waitFor(async () => (await metric(app, "didgate_sip_refused_total", { transport: "tcp" })) >= before + 2);
    const w = lines.filter((l) => l.level === "warn" && l.source === "127.0.0.11");
    expect(w.length).toBe(1);
    expect(String(w[0]!.refused)).toContain("untrusted");
    // the trunk still gets in
    const t = await connectFrom("127.0.0.1", port);
    const pong = new Promise<string>((r) => t.once("data", (d) => r(d.toString("latin1"))));
    t.write("\r\n\r\n");
    expect(await pong).toBe("\r\n");
    t.destroy();
    for (const s of socks) s.destroy();
  });
});
