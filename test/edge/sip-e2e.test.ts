/**
 * End to end: sipp as carrier (UAC) -> a running didgate (startApp) -> sipp as destination (UAS),
 * over UDP and TCP. Every case checks what the destination received (Request-URI, Via count,
 * Record-Route, Max-Forwards, internal headers) and what the carrier got.
 *
 * Timers are short (T1 = 30 ms: Timer B = 1.92 s) and independent cases run concurrently, each
 * with its own destination ports.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Didgate } from "../../src/app.js";
import { VoiceEdge } from "../../src/edge/voice.js";
import type { SipMessage } from "../../src/sip/index.js";
import { startApp, tempDir, writeRoutes } from "../helpers/app.js";
import { describeResult, freePort, killAllSipp } from "../helpers/sipp.js";
import { SilentUdp, startUac, startUas, statuses, type Party, type Tp } from "./sip-util.js";

// 2024-05-15 (a Wednesday) 10:30 UTC, moving with real time
const T0 = Date.UTC(2024, 4, 15, 10, 30);
const START = Date.now();
const clock = (): number => T0 + (Date.now() - START);

const TRUNK_HDR = "X-Didgate-Trunk";
const KEY_HDR = "X-Didgate-Route";

interface Edge {
  app: Didgate;
  voice: VoiceEdge;
  udp: number;
  tcp: number;
  own: boolean;
}

/** The app's VoiceEdge; started here when app.ts does not wire one (yet). */
async function edgeOf(app: Didgate): Promise<Edge> {
  let voice = (app as unknown as { voice?: VoiceEdge }).voice;
  let own = false;
  if (voice === undefined) {
    voice = new VoiceEdge({ config: app.config, store: app.store, decider: app.decider, logger: app.logger, registry: app.registry, now: app.now, baseDir: app.loaded.baseDir });
    await voice.start();
    own = true;
  }
  const udp = voice.listeners.find((l) => l.transport === "udp")!.port;
  const tcp = voice.listeners.find((l) => l.transport === "tcp")!.port;
  return { app, voice, udp, tcp, own };
}

async function closeEdge(e: Edge | undefined): Promise<void> {
  if (!e) return;
  if (e.own) await e.voice.close();
  await e.app.stop();
}

async function metricValue(app: Didgate, name: string, labels: Record<string, string>): Promise<number> {
  const m = (await app.registry.getMetricsAsJSON()).find((x) => x.name === name);
  if (!m) return 0;
  let sum = 0;
  for (const v of m.values as Array<{ value: number; labels: Record<string, string | number>; metricName?: string }>) {
    if (v.metricName !== undefined && v.metricName !== name) continue;
    if (Object.entries(labels).every(([k, val]) => String(v.labels[k]) === val)) sum += v.value;
  }
  return sum;
}

async function ok(p: Party, what: string): Promise<void> {
  const r = await p.done;
  expect(r.code, `${what}: ${describeResult(r, p.proc)}`).toBe(0);
}

/** What every forwarded initial INVITE must look like at the destination. */
function expectForwarded(inv: SipMessage | undefined, o: { ruri: string; tp: Tp; edgePort: number; doubleRR?: { otherPort: number; otherTp: Tp }; key?: string }): void {
  expect(inv, "destination got no INVITE").toBeDefined();
  const m = inv!;
  expect(m.requestUri).toBe(o.ruri);
  expect(m.vias.length).toBe(2);
  expect(m.vias[0]).toMatch(new RegExp(`^SIP/2\\.0/${o.tp.toUpperCase()} 127\\.0\\.0\\.1:\\d+;branch=z9hG4bK`));
  expect(m.maxForwards).toBe(69);
  const rr = m.recordRoutes;
  if (o.doubleRR) {
    expect(rr.length).toBe(2);
    expect(rr[0]).toContain(`<sip:127.0.0.1:${o.doubleRR.otherPort};lr`);
    expect(rr[1]).toContain(`<sip:127.0.0.1:${o.edgePort};lr`);
  } else {
    expect(rr.length).toBe(1);
    expect(rr[0]).toContain(`<sip:127.0.0.1:${o.edgePort};lr`);
  }
  if (o.tp === "tcp") expect(rr[rr.length - 1]).toContain(";transport=tcp");
  // the carrier's forged internal header is gone, ours is there
  expect(m.getAll(TRUNK_HDR)).toEqual(["carrier"]);
  if (o.key) expect(m.get(KEY_HDR)).toBe(o.key);
}

function target(did: string, port: number, tp: Tp = "udp"): string {
  return `sip:${did}@127.0.0.1:${port}${tp === "tcp" ? ";transport=tcp" : ""}`;
}

describe("SIP edge end to end (sipp carrier -> didgate -> sipp destination)", () => {
  let main: Edge | undefined;
  let rejecting: Edge | undefined;
  const silent: SilentUdp[] = [];
  const P: Record<string, number> = {};
  const names = [
    "u_call", "u_byeuas", "u_reinv", "u_fo503a", "u_fo503b", "u_fob", "u_486", "u_486next", "u_603", "u_cancel", "u_ring", "u_ringnext",
    "u_caller_def", "u_caller_uk", "u_sched", "u_dbl", "t_call", "t_byeuas", "t_reinv", "t_fo503a", "t_fo503b", "t_cancel", "t_dbl",
  ];

  beforeAll(async () => {
    for (const n of names) P[n] = await freePort();
    const quiet = await SilentUdp.start(); // never answers: Timer B
    const never = await SilentUdp.start(); // must never be reached
    silent.push(quiet, never);
    P.silent = quiet.port;
    P.never = never.port;
    const dir = tempDir();
    const r = (did: string, targets: unknown[], extra: Record<string, unknown> = {}): Record<string, unknown> => ({ voice: { targets, ...extra } });
    const routes: Record<string, unknown> = {
      "+15125550101": r("+15125550101", [target("+15125550101", P.u_call!)]),
      "+15125550102": r("+15125550102", [target("+15125550102", P.u_byeuas!)]),
      "+15125550103": r("+15125550103", [target("+15125550103", P.u_reinv!)]),
      "+15125550104": r("+15125550104", [{ uri: target("+15125550104", P.u_fo503a!), priority: 1 }, { uri: target("+15125550104", P.u_fo503b!), priority: 2 }]),
      "+15125550105": r("+15125550105", [{ uri: target("+15125550105", P.silent), priority: 1 }, { uri: target("+15125550105", P.u_fob!), priority: 2 }]),
      "+15125550106": r("+15125550106", [{ uri: target("+15125550106", P.u_486!), priority: 1 }, { uri: target("+15125550106", P.never), priority: 2 }]),
      "+15125550107": r("+15125550107", [{ uri: target("+15125550107", P.u_603!), priority: 1 }, { uri: target("+15125550107", P.never), priority: 2 }], { failover_on: [486, 503, 603] }),
      "+15125550108": r("+15125550108", [target("+15125550108", P.u_cancel!)]),
      "+15125550109": r("+15125550109", [{ uri: target("+15125550109", P.u_ring!), priority: 1 }, { uri: target("+15125550109", P.u_ringnext!), priority: 2 }], { ring_timeout_s: 1 }),
      "+15125550110": r("+15125550110", [target("+15125550110", P.u_caller_def!)], { callers: [{ match: "+44*", targets: [target("+15125550110", P.u_caller_uk!)] }] }),
      "+15125550111": r("+15125550111", [target("+15125550111", P.never)], {
        schedule: [{ days: ["wed"], from: "10:00", to: "11:00", tz: "UTC", targets: [target("+15125550111", P.u_sched!)] }],
      }),
      "+15125550112": r("+15125550112", [target("+15125550112", P.u_dbl!, "tcp")]),
      "+15125550120": { state: "quarantine", voice: { targets: [target("+15125550120", P.never)] } },
      "+15125550201": r("+15125550201", [target("+15125550201", P.t_call!, "tcp")]),
      "+15125550202": r("+15125550202", [target("+15125550202", P.t_byeuas!, "tcp")]),
      "+15125550203": r("+15125550203", [target("+15125550203", P.t_reinv!, "tcp")]),
      "+15125550204": r("+15125550204", [{ uri: target("+15125550204", P.t_fo503a!, "tcp"), priority: 1 }, { uri: target("+15125550204", P.t_fo503b!, "tcp"), priority: 2 }]),
      "+15125550208": r("+15125550208", [target("+15125550208", P.t_cancel!, "tcp")]),
      "+15125550212": r("+15125550212", [target("+15125550212", P.t_dbl!)]),
    };
    writeRoutes(dir, routes);
    const sip = (extra: Record<string, unknown>) => ({
      listen: ["udp://127.0.0.1:0", "tcp://127.0.0.1:0"],
      timers: { t1_ms: 30 },
      headers: { trunk: TRUNK_HDR, route_key: KEY_HDR, strip: ["X-Internal"] },
      trunks: [
        { name: "carrier", sources: ["127.0.0.1"], country_code: "1", cps: 1000 },
        { name: "slow", sources: ["127.0.0.3/32"], country_code: "1", cps: 0.001 },
      ],
      ...extra,
    });
    // UDP and TCP listeners on the same port number keep Record-Route checks simple
    const port = await freePort();
    const port2 = await freePort();
    main = await edgeOf((await startApp({ sip: { ...sip({}), listen: [`udp://127.0.0.1:${port}`, `tcp://127.0.0.1:${port}`] }, routes: { file: "routes.yaml", watch: false } }, dir, { now: clock })).app);
    rejecting = await edgeOf(
      (await startApp({ sip: { ...sip({ unknown_source: "reject" }), listen: [`udp://127.0.0.1:${port2}`, `tcp://127.0.0.1:${port2}`] }, routes: { file: "routes.yaml", watch: false } }, dir, { now: clock })).app,
    );
  }, 30_000);

  afterAll(async () => {
    await killAllSipp();
    await closeEdge(main);
    await closeEdge(rejecting);
    for (const s of silent) await s.close();
  });

  const settle = (): Promise<void> => new Promise((r) => setTimeout(r, 250));

  it.concurrent("UDP: full call, BYE from the carrier", async () => {
    const e = main!;
    const uas = startUas("uas_answer.xml", "udp", P.u_call!);
    await settle();
    const uac = startUac("uac_call.xml", "udp", e.udp, { service: "+15125550101" });
    await ok(uac, "uac");
    await ok(uas, "uas");
    expectForwarded(uas.received("INVITE")[0], { ruri: target("+15125550101", P.u_call!), tp: "udp", edgePort: e.udp, key: "+15125550101" });
    const ack = uas.received("ACK")[0]!;
    expect(ack.vias.length).toBe(2);
    expect(ack.routes.length).toBe(0);
    const bye = uas.received("BYE")[0]!;
    expect(bye.requestUri).toMatch(/^sip:127\.0\.0\.1:\d+;transport=UDP$/i);
    expect(bye.vias.length).toBe(2);
    expect(bye.maxForwards).toBe(69);
    const ok200 = uac.receivedResponses().find((m) => m.status === 200 && m.cseq?.method === "INVITE")!;
    expect(ok200.vias.length).toBe(1);
    expect(ok200.recordRoutes[0]).toContain(`<sip:127.0.0.1:${e.udp};lr`);
    expect(statuses(uac.receivedResponses())).toContain(180);
  });
});
