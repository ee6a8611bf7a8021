/**
 * The voice policy (VoiceEdge) over a stack without sockets (fake-stack.ts): requests are parsed
 * by the real parser and handed to the edge as server transactions; what the edge answers and
 * what it sends downstream is recorded. Routes come from an in-memory table. Covers who may call
 * (trunks, customers, unknown sources), what a DID's route and state make of a call, and the
 * proxy's forking and failover (ring and invite timeouts, failover_on, 6xx, parallel 2xx) with
 * the stack's manual timers.
 */
import pino from "pino";
import { Registry } from "prom-client";
import { afterEach, describe, expect, it } from "vitest";
import { validateConfig } from "../../src/config/load.js";
import { voiceSettings } from "../../src/config/wire.js";
import { DRAIN_QUIET_MS, VoiceEdge } from "../../src/edge/voice.js";
import { Decider } from "../../src/routing/decide.js";
import { parseRoute, type Route } from "../../src/routing/route.js";
import { RouteStore, RouteTable } from "../../src/routing/table.js";
import { DialogSigner } from "../../src/sip/index.js";
import { FakeStack, optionsRequest, STACK_ADDRESS, STACK_PORT } from "./fake-stack.js";

const TRUNK_IP = "198.51.100.10";
const STRANGER_IP = "203.0.113.99";
const PBX = "192.0.2.50";
const NOW = Date.parse("2026-03-02T10:00:00Z");

function route(key: string, v: unknown): Route {
  const r = parseRoute(key, v);
  if (!r.ok) throw new Error(r.errors.join("; "));
  return r.route;
}

const edges: VoiceEdge[] = [];
afterEach(async () => {
  for (const e of edges.splice(0)) await e.close();
});

/**
 * `stackClock`: the edge's wall clock moves with the stack's manual timers (NOW + their time), so
 * what waits on the clock (a drain) moves when the test advances them.
 */
async function setup(routes: Record<string, unknown>, sip: Record<string, unknown> = {}, o: { stackClock?: boolean } = {}) {
  const v = validateConfig({
    sip: {
      listen: [`udp://${STACK_ADDRESS}:${STACK_PORT}`],
      trunks: [{ name: "carrier", sources: [TRUNK_IP], country_code: "1" }],
      customers: [{ name: "acme", tenant: "acme", digest: { username: "acme", password: "secret-password" } }],
      ...sip,
    },
    smpp: { listen: null },
    log: { level: "silent" },
  });
  if (!v.ok) throw new Error(v.errors.join("\n"));
  const table = new RouteTable<Route>();
  for (const [k, r] of Object.entries(routes)) table.set(k, route(k, r));
  const stack = new FakeStack();
  const edge = new VoiceEdge({
    createStack: stack.create,
    signer: new DialogSigner(["a test secret of at least 32 characters"]),
    settings: voiceSettings(v.config),
    store: new RouteStore(table),
    decider: new Decider({ random: () => 0 }),
    logger: pino({ level: "silent" }),
    registry: new Registry(),
    now: o.stackClock === true ? () => NOW + stack.timers.now() : () => NOW,
  });
  edges.push(edge);
  await edge.start();
  return { edge, stack };
}

let calls = 0;
function invite(did: string, fromIp: string, extra: string[] = []): string {
  calls++;
  return [
    `INVITE sip:${did}@${STACK_ADDRESS}:${STACK_PORT} SIP/2.0`,
    `Via: SIP/2.0/UDP ${fromIp}:5060;branch=z9hG4bKcall${calls}`,
    "Max-Forwards: 70",
    `From: <sip:+447700900001@${fromIp}>;tag=f${calls}`,
    `To: <sip:${did}@${STACK_ADDRESS}>`,
    `Call-ID: call-${calls}@${fromIp}`,
    "CSeq: 1 INVITE",
    `Contact: <sip:+447700900001@${fromIp}:5060>`,
    ...extra,
    "Content-Length: 0",
    "",
    "",
  ].join("\n");
}

describe("VoiceEdge policy over a fake stack", () => {
  it("an INVITE from a trunk to a DID with a static target is forwarded to that target, nothing answered yet", async () => {
    const { stack } = await setup({ "+15125550100": { voice: { targets: [`sip:+15125550100@${PBX}:5080`] } } });
    stack.receive(invite("+15125550100", TRUNK_IP), TRUNK_IP);
    expect(stack.requests).toHaveLength(1);
    const out = stack.requests[0]!;
    expect(out.dest).toEqual({ transport: "udp", host: PBX, port: 5080 });
    expect(out.request.method).toBe("INVITE");
    expect(out.request.requestUri).toBe(`sip:+15125550100@${PBX}:5080`);
    expect(out.request.maxForwards).toBe(69);
    // Record-Route of ours, signed; our Via above the caller's
    expect(out.request.recordRoutes[0]).toContain(`sip:${STACK_ADDRESS}:${STACK_PORT}`);
    expect(out.request.vias).toHaveLength(2);
    // the caller hears 100 Trying at once; nothing final yet
    expect(stack.statuses()).toEqual([100]);
  });

  it("the target's answer goes back to the caller", async () => {
    const { stack } = await setup({ "+15125550100": { voice: { targets: [`sip:+15125550100@${PBX}:5080`] } } });
    stack.receive(invite("+15125550100", TRUNK_IP), TRUNK_IP);
    stack.respond(0, 180, "pbx1");
    stack.respond(0, 486, "pbx1");
    expect(stack.statuses()).toEqual([100, 180, 486]);
    expect(stack.responses[2]!.to).toEqual({ transport: "udp", address: TRUNK_IP, port: 5060 });
    expect(stack.responses[2]!.res.vias).toHaveLength(1);
  });

  it("an INVITE from an unknown source is dropped without an answer (sip.unknown_source: drop) or 403 (reject); nothing forwarded", async () => {
    const routes = { "+15125550100": { voice: { targets: [`sip:+15125550100@${PBX}:5080`] } } };
    // no customer that authenticates from anywhere (that would challenge the stranger instead)
    const drop = await setup(routes, { customers: [] });
    const tx = drop.stack.receive(invite("+15125550100", STRANGER_IP), STRANGER_IP);
    expect(drop.stack.statuses()).toEqual([]);
    expect(tx.terminated).toBe(true);
    const reject = await setup(routes, { customers: [], unknown_source: "reject" });
    reject.stack.receive(invite("+15125550100", STRANGER_IP), STRANGER_IP);
    expect(reject.stack.statuses()).toEqual([403]);
    expect([...drop.stack.requests, ...reject.stack.requests]).toEqual([]);
  });

  it("a DID without a route is 404; a released or quarantined one is sip.gone_status (410); a bad number 484", async () => {
    const t = { targets: [`sip:pbx@${PBX}:5080`] };
    const { stack } = await setup({ "+15125550101": { state: "released", voice: t }, "+15125550102": { state: "quarantine", voice: t } });
    stack.receive(invite("+15125550199", TRUNK_IP), TRUNK_IP);
    stack.receive(invite("+15125550101", TRUNK_IP), TRUNK_IP);
    stack.receive(invite("+15125550102", TRUNK_IP), TRUNK_IP);
    stack.receive(invite("abc", TRUNK_IP), TRUNK_IP);
    expect(stack.statuses()).toEqual([404, 410, 410, 484]);
    expect(stack.requests).toEqual([]);
  });

  it("Max-Forwards 0 is 483; an OPTIONS from the trunk is 200 with Allow", async () => {
    const { stack } = await setup({});
    stack.receive(invite("+15125550100", TRUNK_IP).replace("Max-Forwards: 70", "Max-Forwards: 0"), TRUNK_IP);
    stack.receive(
      [`OPTIONS sip:${STACK_ADDRESS}:${STACK_PORT} SIP/2.0`, `Via: SIP/2.0/UDP ${TRUNK_IP}:5060;branch=z9hG4bKopt1`, "Max-Forwards: 70", `From: <sip:ping@${TRUNK_IP}>;tag=o1`, `To: <sip:${STACK_ADDRESS}>`, "Call-ID: opt-1", "CSeq: 1 OPTIONS", "Content-Length: 0", "", ""].join("\n"),
      TRUNK_IP,
    );
    expect(stack.statuses()).toEqual([483, 200]);
    expect(stack.responses[1]!.res.get("allow")).toContain("INVITE");
  });

  it("a customer's INVITE without credentials gets a 407 digest challenge; nothing is sent on", async () => {
    const { stack } = await setup({ "+15125550100": { tenant: "acme", voice: { targets: [`sip:+15125550100@${PBX}:5080`] } } });
    stack.receive(invite("+447700900123", STRANGER_IP), STRANGER_IP);
    expect(stack.statuses()).toEqual([407]);
    expect(stack.responses[0]!.res.getAll("proxy-authenticate").join(" ")).toMatch(/Digest realm="didgate"/);
    expect(stack.requests).toEqual([]);
  });

  it("after drain() an INVITE from a trunk is 503 with Retry-After", async () => {
    const { edge, stack } = await setup({ "+15125550100": { voice: { targets: [`sip:+15125550100@${PBX}:5080`] } } });
    await edge.drain(0);
    stack.receive(invite("+15125550100", TRUNK_IP), TRUNK_IP);
    expect(stack.statuses()).toEqual([503]);
    expect(stack.responses[0]!.res.get("retry-after")).toBe("5");
  });
});

describe("VoiceEdge.drain with the stack's manual timers", () => {
  const route = { "+15125550100": { voice: { targets: [`sip:+15125550100@${PBX}:5080`] } } };

  /** A call from the trunk in flight (no answer yet), then the drain started. */
  async function drainDuringCall(deadline: number) {
    const { edge, stack } = await setup(route, {}, { stackClock: true });
    stack.receive(invite("+15125550100", TRUNK_IP), TRUNK_IP);
    expect(edge.inFlight()).toBe(1);
    const state = { ended: false };
    const drained = edge.drain(deadline).then(() => void (state.ended = true));
    return { edge, stack, state, drained };
  }

  it("nothing in flight and SIP quiet: the drain ends at once, later INVITEs get 503", async () => {
    const { edge, stack } = await setup(route, {}, { stackClock: true });
    await edge.drain(NOW + 10_000);
    stack.receive(invite("+15125550100", TRUNK_IP), TRUNK_IP);
    expect(stack.statuses()).toEqual([503]);
    expect(stack.requests).toEqual([]);
  });

  it("waits for the INVITE in flight, then lingers until SIP has been quiet for DRAIN_QUIET_MS", async () => {
    const { edge, stack, state, drained } = await drainDuringCall(NOW + 10_000);
    // a new call during the drain is refused; the one in flight goes on
    stack.receive(invite("+15125550100", TRUNK_IP), TRUNK_IP);
    expect(stack.statuses()).toEqual([100, 503]);
    // the last request came at t=0: SIP is quiet from t=DRAIN_QUIET_MS, but the call is not done
    await stack.advance(DRAIN_QUIET_MS - 500);
    expect(state.ended).toBe(false);
    await stack.advance(1000);
    expect(state.ended).toBe(false);
    stack.respond(0, 486, "pbx1");
    expect(edge.inFlight()).toBe(0);
    await stack.advance(50);
    expect(state.ended).toBe(true);
    await drained;
    // (the final answers are resent over UDP until ACKed: each status once here)
    expect([...new Set(stack.statuses())]).toEqual([100, 503, 486]);
  });

  it("after the calls in flight ended, lingers while requests still come (no dialog state to wait on)", async () => {
    const { stack, state, drained } = await drainDuringCall(NOW + 10_000);
    await stack.advance(1000);
    stack.respond(0, 486, "pbx1");
    // a request at t=1200 (a keep-alive of the trunk): quiet only from t=1200+DRAIN_QUIET_MS
    await stack.advance(200);
    stack.receive(optionsRequest(TRUNK_IP), TRUNK_IP);
    await stack.advance(DRAIN_QUIET_MS - 100);
    expect(state.ended).toBe(false);
    await stack.advance(150);
    expect(state.ended).toBe(true);
    await drained;
    expect([...new Set(stack.statuses())]).toEqual([100, 486, 200]);
  });

  it("ends at its deadline though a call is still in flight", async () => {
    const { edge, stack, state } = await drainDuringCall(NOW + 500);
    await stack.advance(450);
    expect(state.ended).toBe(false);
    await stack.advance(100);
    expect(state.ended).toBe(true);
    expect(edge.inFlight()).toBe(1);
  });
});

describe("ProxyCall with the stack's manual timers", () => {
  it("sequential ringing: a target that rings past its ring timeout is cancelled and the next target gets the INVITE", async () => {
    const { stack } = await setup({
      "+15125550100": {
        voice: {
          ring: "sequential",
          ring_timeout_s: 20,
          targets: [
            { uri: `sip:first@${PBX}:5080`, priority: 1 },
            { uri: `sip:second@${PBX}:5081`, priority: 2 },
          ],
        },
      },
    });
    stack.receive(invite("+15125550100", TRUNK_IP), TRUNK_IP);
    expect(stack.requests.map((r) => r.dest.port)).toEqual([5080]);
    stack.respond(0, 180, "first");
    stack.timers.advance(19_999);
    expect(stack.requests[0]!.cancelled).toBe(false);
    expect(stack.requests).toHaveLength(1);
    stack.timers.advance(1);
    expect(stack.requests[0]!.cancelled).toBe(true);
    expect(stack.requests.map((r) => r.dest.port)).toEqual([5080, 5081]);
    // the second answers: its 200 goes to the caller
    stack.respond(1, 200, "second");
    expect(stack.statuses()).toEqual([100, 180, 200]);
  });

  it("a target's own timeout_s ends its ringing before the route's ring timeout", async () => {
    const { stack } = await setup({
      "+15125550100": {
        voice: {
          ring: "sequential",
          ring_timeout_s: 30,
          targets: [
            { uri: `sip:first@${PBX}:5080`, priority: 1, timeout_s: 5 },
            { uri: `sip:second@${PBX}:5081`, priority: 2 },
          ],
        },
      },
    });
    stack.receive(invite("+15125550100", TRUNK_IP), TRUNK_IP);
    stack.respond(0, 180, "first");
    stack.timers.advance(5_000);
    expect(stack.requests[0]!.cancelled).toBe(true);
    expect(stack.requests).toHaveLength(2);
  });

  it("a target with no provisional answer within invite_timeout_s is cancelled and the next target tried", async () => {
    const { stack } = await setup({
      "+15125550100": {
        voice: {
          invite_timeout_s: 3,
          targets: [
            { uri: `sip:first@${PBX}:5080`, priority: 1 },
            { uri: `sip:second@${PBX}:5081`, priority: 2 },
          ],
        },
      },
    });
    stack.receive(invite("+15125550100", TRUNK_IP), TRUNK_IP);
    stack.timers.advance(2_999);
    expect(stack.requests).toHaveLength(1);
    stack.timers.advance(1);
    expect(stack.requests[0]!.cancelled).toBe(true);
    expect(stack.requests.map((r) => r.dest.port)).toEqual([5080, 5081]);
  });

  it("a 100 Trying stops the invite timer: the target then rings for its ring timeout", async () => {
    const { stack } = await setup({
      "+15125550100": {
        voice: {
          invite_timeout_s: 3,
          ring_timeout_s: 20,
          targets: [
            { uri: `sip:first@${PBX}:5080`, priority: 1 },
            { uri: `sip:second@${PBX}:5081`, priority: 2 },
          ],
        },
      },
    });
    stack.receive(invite("+15125550100", TRUNK_IP), TRUNK_IP);
    stack.respond(0, 100);
    stack.timers.advance(19_999);
    expect(stack.requests).toHaveLength(1);
    stack.timers.advance(1);
    expect(stack.requests).toHaveLength(2);
  });

  it("a failure in failover_on moves to the next target; one not in it is the caller's answer", async () => {
    const targets = [
      { uri: `sip:first@${PBX}:5080`, priority: 1 },
      { uri: `sip:second@${PBX}:5081`, priority: 2 },
    ];
    const { stack } = await setup({ "+15125550100": { voice: { failover_on: [503], targets } }, "+15125550200": { voice: { failover_on: [503], targets } } });
    stack.receive(invite("+15125550100", TRUNK_IP), TRUNK_IP);
    stack.respond(0, 503, "a");
    expect(stack.requests.map((r) => r.dest.port)).toEqual([5080, 5081]);
    stack.respond(1, 200, "b");
    stack.receive(invite("+15125550200", TRUNK_IP), TRUNK_IP);
    stack.respond(2, 486, "c");
    expect(stack.requests).toHaveLength(3);
    expect(stack.statuses()).toEqual([100, 200, 100, 486]);
  });

  it("simultaneous ringing: a priority group gets the INVITE at once; the first 2xx wins and the others are cancelled", async () => {
    const { stack } = await setup({
      "+15125550100": {
        voice: {
          ring: "simultaneous",
          targets: [
            { uri: `sip:a@${PBX}:5080`, priority: 1 },
            { uri: `sip:b@${PBX}:5081`, priority: 1 },
            { uri: `sip:c@${PBX}:5082`, priority: 2 },
          ],
        },
      },
    });
    stack.receive(invite("+15125550100", TRUNK_IP), TRUNK_IP);
    expect(stack.requests.map((r) => r.dest.port).sort()).toEqual([5080, 5081]);
    const b = stack.requests.findIndex((r) => r.dest.port === 5081);
    const a = 1 - b;
    stack.respond(b, 200, "b");
    expect(stack.requests[a]!.cancelled).toBe(true);
    expect(stack.requests[b]!.cancelled).toBe(false);
    expect(stack.requests).toHaveLength(2);
    expect(stack.statuses()).toEqual([100, 200]);
  });

  it("a 6xx ends the call: the other branches are cancelled and no further group is tried", async () => {
    const { stack } = await setup({
      "+15125550100": {
        voice: {
          ring: "simultaneous",
          targets: [
            { uri: `sip:a@${PBX}:5080`, priority: 1 },
            { uri: `sip:b@${PBX}:5081`, priority: 1 },
            { uri: `sip:c@${PBX}:5082`, priority: 2 },
          ],
        },
      },
    });
    stack.receive(invite("+15125550100", TRUNK_IP), TRUNK_IP);
    stack.respond(0, 603, "a");
    expect(stack.requests[1]!.cancelled).toBe(true);
    expect(stack.requests).toHaveLength(2);
    expect(stack.statuses()).toEqual([100, 603]);
  });
});
