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
import type { VoiceEdge } from "../../src/edge/voice.js";
import type { SipMessage } from "../../src/sip/index.js";
import { startApp, tempDir, writeRoutes } from "../helpers/app.js";
import { freePort, killAllSipp, sippReady } from "../helpers/sipp.js";
import { SilentUdp, startUac, startUas, statuses, type Tp, ok } from "./sip-util.js";

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
}

/** The app's VoiceEdge (app.ts builds one when sip.listen has listeners). */
async function edgeOf(app: Didgate): Promise<Edge> {
  const voice = (app as unknown as { voice?: VoiceEdge }).voice;
  if (voice === undefined) throw new Error("the app runs no SIP edge (sip.listen is empty)");
  const udp = voice.listeners.find((l) => l.transport === "udp")!.port;
  const tcp = voice.listeners.find((l) => l.transport === "tcp")!.port;
  return { app, voice, udp, tcp };
}

async function closeEdge(e: Edge | undefined): Promise<void> {
  if (!e) return;
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

  const settle = async (): Promise<void> => {
    await sippReady();
    await new Promise((r) => setTimeout(r, 20));
  };

  it.concurrent("UDP: full call, BYE from the carrier", async () => {
    const e = main!;
    const uas = startUas("uas_answer.xml", "udp", P.u_call!);
    await settle();
    const uac = await startUac("uac_call.xml", "udp", e.udp, { service: "+15125550101" });
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

  for (const tp of ["udp", "tcp"] as const) {
    const x = tp === "udp" ? "u" : "t";
    const d = tp === "udp" ? "1" : "2";
    const ep = (): number => (tp === "udp" ? main!.udp : main!.tcp);

    if (tp === "tcp") {
      it.concurrent("TCP: full call, BYE from the carrier", async () => {
        const uas = startUas("uas_answer.xml", "tcp", P.t_call!);
        await settle();
        const uac = await startUac("uac_call.xml", "tcp", ep(), { service: "+15125550201" });
        await ok(uac, "uac");
        await ok(uas, "uas");
        expectForwarded(uas.received("INVITE")[0], { ruri: target("+15125550201", P.t_call!, "tcp"), tp: "tcp", edgePort: ep() });
        expect(uas.received("ACK")[0]!.vias.length).toBe(2);
        expect(uas.received("BYE")[0]!.vias.length).toBe(2);
        const ok200 = uac.receivedResponses().find((m) => m.status === 200 && m.cseq?.method === "INVITE")!;
        expect(ok200.recordRoutes[0]).toContain(";transport=tcp");
      });
    }

    it.concurrent(`${tp.toUpperCase()}: full call, BYE from the destination`, async () => {
      const port = P[`${x}_byeuas`]!;
      const uas = startUas("uas_answer_bye.xml", tp, port);
      await settle();
      const uac = await startUac("uac_wait_bye.xml", tp, ep(), { service: `+15125550${d}02` });
      await ok(uac, "uac");
      await ok(uas, "uas");
      expectForwarded(uas.received("INVITE")[0], { ruri: target(`+15125550${d}02`, port, tp), tp, edgePort: ep() });
      // the carrier got the destination's BYE through didgate: our Via on top, Route consumed
      const bye = uac.received("BYE")[0]!;
      expect(bye.vias.length).toBe(2);
      expect(bye.vias[0]).toMatch(new RegExp(`^SIP/2\\.0/${tp.toUpperCase()} 127\\.0\\.0\\.1:${ep()};`));
      expect(bye.routes.length).toBe(0);
      expect(bye.maxForwards).toBe(69);
      expect(bye.requestUri).toMatch(/^sip:sipp@127\.0\.0\.1:\d+/);
    });

    it.concurrent(`${tp.toUpperCase()}: re-INVITE in the dialog`, async () => {
      const port = P[`${x}_reinv`]!;
      const uas = startUas("uas_reinvite.xml", tp, port);
      await settle();
      const uac = await startUac("uac_reinvite.xml", tp, ep(), { service: `+15125550${d}03` });
      await ok(uac, "uac");
      await ok(uas, "uas");
      const invs = uas.received("INVITE");
      expect(invs.length).toBe(2);
      expectForwarded(invs[0], { ruri: target(`+15125550${d}03`, port, tp), tp, edgePort: ep() });
      const re = invs[1]!;
      expect(re.toTag).toBeDefined();
      expect(re.vias.length).toBe(2);
      expect(re.routes.length).toBe(0);
      expect(re.maxForwards).toBe(69);
      expect(re.requestUri).toMatch(/^sip:127\.0\.0\.1:\d+;transport=/i);
      expect(uas.received("ACK").length).toBe(2);
      expect(uac.receivedResponses().filter((m) => m.status === 200 && m.cseq?.method === "INVITE").length).toBeGreaterThanOrEqual(2);
    });

    it.concurrent(`${tp.toUpperCase()}: first target 503, failover to the second (200)`, async () => {
      const a = startUas("uas_final.xml", tp, P[`${x}_fo503a`]!, { CODE: "503", REASON: "Service Unavailable" });
      const b = startUas("uas_answer.xml", tp, P[`${x}_fo503b`]!);
      await settle();
      const uac = await startUac("uac_call.xml", tp, ep(), { service: `+15125550${d}04` });
      await ok(uac, "uac");
      await ok(a, "uas a");
      await ok(b, "uas b");
      expectForwarded(a.received("INVITE")[0], { ruri: target(`+15125550${d}04`, P[`${x}_fo503a`]!, tp), tp, edgePort: ep() });
      expectForwarded(b.received("INVITE")[0], { ruri: target(`+15125550${d}04`, P[`${x}_fo503b`]!, tp), tp, edgePort: ep() });
      expect(statuses(uac.receivedResponses())).not.toContain(503);
      expect(await metricValue(main!.app, "didgate_call_failovers_total", { trunk: "carrier" })).toBeGreaterThanOrEqual(1);
    });

    it.concurrent(`${tp.toUpperCase()}: CANCEL while the destination rings`, async () => {
      const port = P[`${x}_cancel`]!;
      const uas = startUas("uas_ring_cancel.xml", tp, port);
      await settle();
      const uac = await startUac("uac_cancel.xml", tp, ep(), { service: `+15125550${d}08` });
      await ok(uac, "uac");
      await ok(uas, "uas");
      expectForwarded(uas.received("INVITE")[0], { ruri: target(`+15125550${d}08`, port, tp), tp, edgePort: ep() });
      const cancel = uas.received("CANCEL")[0]!;
      expect(cancel.vias.length).toBe(1);
      expect(cancel.vias[0]).toBe(uas.received("INVITE")[0]!.vias[0]);
      const res = uac.receivedResponses();
      expect(res.some((m) => m.status === 200 && m.cseq?.method === "CANCEL")).toBe(true);
      expect(res.some((m) => m.status === 487 && m.cseq?.method === "INVITE")).toBe(true);
    });
  }

  it.concurrent("UDP carrier to a TCP destination: double Record-Route, BYE both ways", async () => {
    const e = main!;
    const uas = startUas("uas_answer.xml", "tcp", P.u_dbl!);
    await settle();
    const uac = await startUac("uac_call.xml", "udp", e.udp, { service: "+15125550112" });
    await ok(uac, "uac");
    await ok(uas, "uas");
    const inv = uas.received("INVITE")[0]!;
    expect(inv.recordRoutes[0]).toContain(`<sip:127.0.0.1:${e.tcp};lr;transport=tcp`);
    expect(inv.recordRoutes[1]).toContain(`<sip:127.0.0.1:${e.udp};lr;`);
    expect(inv.vias[0]).toMatch(/^SIP\/2\.0\/TCP /);
    expect(uas.received("BYE")[0]!.vias[0]).toMatch(/^SIP\/2\.0\/TCP /);
    const ok200 = uac.receivedResponses().find((m) => m.status === 200 && m.cseq?.method === "INVITE")!;
    expect(ok200.recordRoutes.length).toBe(2);
  });

  it.concurrent("TCP carrier to a UDP destination: BYE from the destination goes back over the carrier's connection", async () => {
    const e = main!;
    const uas = startUas("uas_answer_bye.xml", "udp", P.t_dbl!);
    await settle();
    const uac = await startUac("uac_wait_bye.xml", "tcp", e.tcp, { service: "+15125550212" });
    await ok(uac, "uac");
    await ok(uas, "uas");
    const inv = uas.received("INVITE")[0]!;
    expect(inv.recordRoutes.length).toBe(2);
    expect(inv.vias[0]).toMatch(/^SIP\/2\.0\/UDP /);
    expect(inv.vias[1]).toMatch(/^SIP\/2\.0\/TCP /);
    const bye = uac.received("BYE")[0]!;
    expect(bye.vias[0]).toMatch(/^SIP\/2\.0\/TCP /);
    expect(bye.routes.length).toBe(0);
  });

  it.concurrent("UDP: a destination that never answers (Timer B) is marked down and the call fails over", async () => {
    const e = main!;
    const b = startUas("uas_answer.xml", "udp", P.u_fob!);
    await settle();
    const uac = await startUac("uac_call.xml", "udp", e.udp, { service: "+15125550105" });
    await ok(uac, "uac");
    await ok(b, "uas");
    const got = silent[0]!.got.filter((m) => m.method === "INVITE");
    expect(got.length).toBeGreaterThanOrEqual(3); // timer A retransmissions
    expect(got[0]!.requestUri).toBe(target("+15125550105", P.silent!));
    expect(got[0]!.vias.length).toBe(2);
    expectForwarded(b.received("INVITE")[0], { ruri: target("+15125550105", P.u_fob!), tp: "udp", edgePort: e.udp });
    expect(e.voice.health.isDown(`udp:127.0.0.1:${P.silent}`)).toBe(true);
    expect(await metricValue(e.app, "didgate_sip_targets_down", {})).toBeGreaterThanOrEqual(1);
  });

  for (const code of [486, 603] as const) {
    it.concurrent(`UDP: ${code} is not failed over${code === 603 ? " (even when listed in failover_on)" : ""}`, async () => {
      const e = main!;
      const port = P[`u_${code}`]!;
      const did = code === 486 ? "+15125550106" : "+15125550107";
      const uas = startUas("uas_final.xml", "udp", port, { CODE: String(code), REASON: code === 486 ? "Busy Here" : "Decline" });
      await settle();
      const uac = await startUac("uac_final.xml", "udp", e.udp, { service: did, subst: { CODE: String(code) } });
      await ok(uac, "uac");
      await ok(uas, "uas");
      expectForwarded(uas.received("INVITE")[0], { ruri: target(did, port), tp: "udp", edgePort: e.udp });
      expect(uas.received("ACK").length).toBe(1);
      expect(silent[1]!.got.filter((m) => m.requestUri.includes(did)).length).toBe(0);
    });
  }

  it.concurrent("UDP: ring timeout cancels the ringing target and fails over", async () => {
    const e = main!;
    const a = startUas("uas_ring_cancel.xml", "udp", P.u_ring!);
    const b = startUas("uas_answer.xml", "udp", P.u_ringnext!);
    await settle();
    const uac = await startUac("uac_call.xml", "udp", e.udp, { service: "+15125550109" });
    await ok(uac, "uac");
    await ok(a, "uas a");
    await ok(b, "uas b");
    expectForwarded(a.received("INVITE")[0], { ruri: target("+15125550109", P.u_ring!), tp: "udp", edgePort: e.udp });
    expect(a.received("CANCEL").length).toBe(1);
    expectForwarded(b.received("INVITE")[0], { ruri: target("+15125550109", P.u_ringnext!), tp: "udp", edgePort: e.udp });
    expect(statuses(uac.receivedResponses())).toContain(180);
  });

  it.concurrent("UDP: caller rule picks another target for +44 callers", async () => {
    const e = main!;
    const def = startUas("uas_answer.xml", "udp", P.u_caller_def!);
    const uk = startUas("uas_answer.xml", "udp", P.u_caller_uk!);
    await settle();
    const c1 = await startUac("uac_call.xml", "udp", e.udp, { service: "+15125550110", caller: "+442071234567" });
    await ok(c1, "uac uk");
    await ok(uk, "uas uk");
    const c2 = await startUac("uac_call.xml", "udp", e.udp, { service: "5125550110", caller: "5125551234" });
    await ok(c2, "uac default");
    await ok(def, "uas default");
    expectForwarded(uk.received("INVITE")[0], { ruri: target("+15125550110", P.u_caller_uk!), tp: "udp", edgePort: e.udp });
    expectForwarded(def.received("INVITE")[0], { ruri: target("+15125550110", P.u_caller_def!), tp: "udp", edgePort: e.udp });
  });

  it.concurrent("UDP: schedule window (Wednesday 10:00-11:00 UTC) picks its target", async () => {
    const e = main!;
    const uas = startUas("uas_answer.xml", "udp", P.u_sched!);
    await settle();
    const uac = await startUac("uac_call.xml", "udp", e.udp, { service: "+15125550111" });
    await ok(uac, "uac");
    await ok(uas, "uas");
    expectForwarded(uas.received("INVITE")[0], { ruri: target("+15125550111", P.u_sched!), tp: "udp", edgePort: e.udp });
    expect(silent[1]!.got.filter((m) => m.requestUri.includes("+15125550111")).length).toBe(0);
  });

  const finalCase = (name: string, code: number, o: { service: string; ip?: string; mf?: number; edge?: () => Edge; check?: (res: SipMessage) => void }): void => {
    it.concurrent(name, async () => {
      const e = (o.edge ?? (() => main!))();
      const uac = await startUac("uac_final.xml", "udp", e.udp, { service: o.service, ip: o.ip, mf: o.mf, subst: { CODE: String(code) } });
      await ok(uac, "uac");
      const fin = uac.receivedResponses().filter((m) => m.status >= 200);
      expect(statuses(fin)[0]).toBe(code);
      expect(fin[0]!.toTag).toBeDefined();
      o.check?.(fin[0]!);
      expect(silent[1]!.got.filter((m) => m.requestUri.includes(o.service)).length).toBe(0);
    });
  };
  finalCase("UDP: unknown DID gets 404", 404, { service: "+15125550999" });
  finalCase("UDP: quarantined DID gets 410", 410, { service: "+15125550120" });
  finalCase("UDP: a DID that cannot be normalised gets 484", 484, { service: "12ab" });
  finalCase("UDP: Max-Forwards 0 gets 483", 483, { service: "+15125550101", mf: 0 });
  finalCase("UDP: unknown source gets 403 when unknown_source is reject", 403, { service: "+15125550101", ip: "127.0.0.2", edge: () => rejecting! });

  it.concurrent("UDP: over the trunk's CPS limit: 503 with Retry-After", async () => {
    const e = main!;
    // trunk "slow" (127.0.0.3) has one token: the first call spends it (404), the next is limited
    const first = await startUac("uac_final.xml", "udp", e.udp, { service: "+15125550998", ip: "127.0.0.3", subst: { CODE: "404" } });
    await ok(first, "first");
    const second = await startUac("uac_final.xml", "udp", e.udp, { service: "+15125550998", ip: "127.0.0.3", subst: { CODE: "503" } });
    await ok(second, "second");
    const res = second.receivedResponses().find((m) => m.status === 503)!;
    expect(Number(res.get("Retry-After"))).toBeGreaterThanOrEqual(1);
    expect(await metricValue(e.app, "didgate_calls_total", { trunk: "slow", outcome: "rate_limited" })).toBe(1);
  });

  it.concurrent("UDP: unknown source is dropped silently (no answer at all)", async () => {
    const e = main!;
    const uac = await startUac("uac_final.xml", "udp", e.udp, { service: "+15125550101", ip: "127.0.0.2", subst: { CODE: "403" }, timeoutS: 2 });
    const r = await uac.done;
    expect(r.code).not.toBe(0);
    expect(uac.trace().filter((t) => t.dir === "sent").length).toBeGreaterThanOrEqual(2); // sipp retransmitted
    expect(uac.trace().filter((t) => t.dir === "received").length).toBe(0);
    expect(await metricValue(e.app, "didgate_calls_total", { trunk: "unknown", outcome: "rejected_acl" })).toBeGreaterThanOrEqual(1);
  });
});
