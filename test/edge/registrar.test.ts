import pino from "pino";
import { Registry } from "prom-client";
import { describe, expect, it } from "vitest";
import { registrarSchema } from "../../src/config/registrar.js";
import { RegistrarEdge, type ContactLeg } from "../../src/edge/registrar.js";
import { MemoryLocationStore, type Binding } from "../../src/registrar/location.js";
import type { Target } from "../../src/routing/route.js";

const DOMAIN = "sip.example.net";

function edge(): { e: RegistrarEdge; store: MemoryLocationStore } {
  const store = new MemoryLocationStore();
  const e = new RegistrarEdge({
    config: registrarSchema.parse({ domain: DOMAIN, users: [{ user: "alice", tenant: "acme", password: "wonderland" }] }),
    secret: Buffer.alloc(32, 1),
    nonceTtlMs: 300_000,
    algorithms: ["MD5"],
    store,
    edgeId: "edge-1",
    registry: new Registry(),
    logger: pino({ level: "silent" }),
    now: Date.now,
    stack: () => undefined,
  });
  return { e, store };
}

let n = 0;
function binding(user: string, q: number, transport: Binding["transport"] = "udp"): Binding {
  n++;
  const now = Date.now();
  return { contact: `sip:${user}@10.0.0.${n}:5060`, expiresAt: now + 60_000, q, callId: `c${n}`, cseq: 1, transport, address: "203.0.113.9", port: 40000 + n, edge: "edge-1", registeredAt: now + n };
}

const t = (uri: string, priority = 1): Target => ({ uri, priority, weight: 1 });

describe("registrar targets", () => {
  it("recognises sip:USER@<domain> only", () => {
    const { e } = edge();
    expect(e.userOf(`sip:alice@${DOMAIN}`)).toBe("alice");
    expect(e.userOf(`sip:alice@SIP.Example.NET`)).toBe("alice");
    expect(e.userOf(`sips:alice@${DOMAIN}`)).toBe("alice");
    expect(e.userOf(`sip:alice@${DOMAIN}:5060`)).toBeUndefined();
    expect(e.userOf(`sip:alice@${DOMAIN}.evil.example`)).toBeUndefined();
    expect(e.userOf(`sip:alice@other.example`)).toBeUndefined();
    expect(e.userOf(`sip:${DOMAIN}`)).toBeUndefined();
    expect(e.userOf("tel:+15125550100")).toBeUndefined();
    expect(e.hasUsers([t("sip:pbx@192.0.2.1"), t(`sip:alice@${DOMAIN}`)])).toBe(true);
    expect(e.hasUsers([t("sip:pbx@192.0.2.1")])).toBe(false);
  });

  it("sequential route: contacts of one q ring together, higher q first, other targets keep their turn", async () => {
    const { e, store } = edge();
    const [a, b, c] = [binding("alice", 1), binding("alice", 1), binding("alice", 0.5)];
    await store.update(`sip:alice@${DOMAIN}`, { upsert: [a, b, c] });
    const x = await e.expand([t("sip:first@192.0.2.1", 1), t(`sip:alice@${DOMAIN}`, 2), t("sip:voicemail@192.0.2.2", 3)], "sequential");
    expect(x.ring).toBe("simultaneous");
    expect(x.targets.map((y) => [y.uri, y.priority])).toEqual([
      ["sip:first@192.0.2.1", 1],
      [b.contact, 2],
      [a.contact, 2],
      [c.contact, 3],
      ["sip:voicemail@192.0.2.2", 4],
    ]);
    // sent to where the REGISTER came from, the Contact as Request-URI
    expect((x.targets[1] as ContactLeg).sendTo).toEqual({ transport: "udp", address: "203.0.113.9", port: b.port, key: `udp:203.0.113.9:${b.port}` });
  });

  it("simultaneous route: every contact joins its target's group", async () => {
    const { e, store } = edge();
    const [a, c] = [binding("alice", 1), binding("alice", 0.2)];
    await store.update(`sip:alice@${DOMAIN}`, { upsert: [a, c] });
    const x = await e.expand([t(`sip:alice@${DOMAIN}`, 1), t("sip:desk@192.0.2.1", 1), t("sip:voicemail@192.0.2.2", 5)], "simultaneous");
    expect(x.targets.map((y) => y.priority)).toEqual([1, 1, 1, 2]);
  });

  it("nobody registered: the user's target disappears (next target, or 480 when none is left)", async () => {
    const { e } = edge();
    expect((await e.expand([t(`sip:alice@${DOMAIN}`)], "sequential")).targets).toEqual([]);
    expect((await e.expand([t(`sip:alice@${DOMAIN}`), t("sip:voicemail@192.0.2.2", 2)], "sequential")).targets.map((y) => y.uri)).toEqual(["sip:voicemail@192.0.2.2"]);
  });

  it("a TCP binding whose connection is not open here goes to its Contact, only when that is where the phone registered from", async () => {
    const { e, store } = edge();
    const b = { ...binding("alice", 1, "tcp"), contact: "sip:alice@203.0.113.9:5070;transport=tcp" };
    await store.update(`sip:alice@${DOMAIN}`, { upsert: [b] });
    const x = await e.expand([t(`sip:alice@${DOMAIN}`)], "sequential");
    expect(x.targets).toHaveLength(1);
    expect((x.targets[0] as ContactLeg).sendTo).toBeUndefined();
    expect(x.targets[0]!.uri).toBe(b.contact);
    // a Contact naming another host (a carrier's termination, anyone): not called at all
    const { e: e2, store: s2 } = edge();
    await s2.update(`sip:alice@${DOMAIN}`, { upsert: [{ ...binding("alice", 1, "tcp"), contact: "sip:+882999999999@192.0.2.50:5060;transport=tcp" }] });
    expect((await e2.expand([t(`sip:alice@${DOMAIN}`)], "sequential")).targets).toEqual([]);
    // the registering host with a maddr naming another: the call would go to the maddr, not called
    const { e: e4, store: s4 } = edge();
    await s4.update(`sip:alice@${DOMAIN}`, { upsert: [{ ...binding("alice", 1, "tcp"), contact: "sip:+882999999999@203.0.113.9:5060;maddr=192.0.2.50;transport=udp" }] });
    expect((await e4.expand([t(`sip:alice@${DOMAIN}`)], "sequential")).targets).toEqual([]);
    // a maddr that is the registering address is that address
    const { e: e5, store: s5 } = edge();
    await s5.update(`sip:alice@${DOMAIN}`, { upsert: [{ ...binding("alice", 1, "tcp"), contact: "sip:alice@phone.invalid:5070;maddr=203.0.113.9;transport=tcp" }] });
    expect((await e5.expand([t(`sip:alice@${DOMAIN}`)], "sequential")).targets).toHaveLength(1);
    // an IPv6 address written another way is the same address
    const { e: e3, store: s3 } = edge();
    await s3.update(`sip:alice@${DOMAIN}`, { upsert: [{ ...binding("alice", 1, "tcp"), address: "2001:db8::1", contact: "sip:alice@[2001:DB8:0::1]:5070;transport=tcp" }] });
    expect((await e3.expand([t(`sip:alice@${DOMAIN}`)], "sequential")).targets).toHaveLength(1);
  });

  it("users show: a configured user with its bindings; an unknown user is undefined", async () => {
    const { e, store } = edge();
    const b = binding("alice", 0.5);
    await store.update(`sip:alice@${DOMAIN}`, { upsert: [b] });
    expect(await e.show("alice")).toMatchObject({ user: "alice", tenant: "acme", aor: `sip:alice@${DOMAIN}`, bindings: [{ contact: b.contact, source: `203.0.113.9:${b.port}`, transport: "udp", edge: "edge-1", q: 0.5 }] });
    expect(await e.show("mallory")).toBeUndefined();
  });
});
