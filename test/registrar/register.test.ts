import { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DigestAuth, digestResponse, ncHex } from "../../src/sip/digest.js";
import { parseOrThrow } from "../../src/sip/index.js";
import { MemoryLocationStore, RedisLocationStore, type LocationStore } from "../../src/registrar/location.js";
import { Lockout, qGroups, Registrar, type RegisterSource, type RegistrarOptions } from "../../src/registrar/register.js";
import { startRedis, type TestRedis } from "../helpers/redis.js";

const DOMAIN = "sip.example.net";
const SECRET = Buffer.from("registrar test secret 0123456789");
let redis: TestRedis;
const clients: Redis[] = [];
beforeAll(async () => {
  redis = await startRedis();
});
afterAll(async () => {
  for (const c of clients) c.disconnect();
  await redis.stop();
});

let seq = 0;
function register(opts: { user?: string; contacts?: string[]; expires?: number; callId?: string; cseq?: number; auth?: string; extra?: string[] }): ReturnType<typeof parseOrThrow> {
  const user = opts.user ?? "alice";
  const lines = [
    `REGISTER sip:${DOMAIN} SIP/2.0`,
    `Via: SIP/2.0/UDP 192.0.2.10:5062;branch=z9hG4bK-${++seq}`,
    `From: <sip:${user}@${DOMAIN}>;tag=f${seq}`,
    `To: <sip:${user}@${DOMAIN}>`,
    `Call-ID: ${opts.callId ?? "reg-1"}`,
    `CSeq: ${opts.cseq ?? seq} REGISTER`,
    ...(opts.contacts ?? ["<sip:alice@192.168.1.20:5062>"]).map((c) => `Contact: ${c}`),
    ...(opts.expires !== undefined ? [`Expires: ${opts.expires}`] : []),
    ...(opts.auth !== undefined ? [`Authorization: ${opts.auth}`] : []),
    ...(opts.extra ?? []),
    "Content-Length: 0",
    "",
    "",
  ];
  return parseOrThrow(lines.join("\r\n"));
}

function answer(challenge: string, user: string, password: string, nc = 1): string {
  const nonce = /nonce="([^"]+)"/.exec(challenge)![1]!;
  const alg = /algorithm=([A-Z0-9-]+)/.exec(challenge)![1] as "MD5" | "SHA-256";
  const uri = `sip:${DOMAIN}`;
  const r = digestResponse(alg, user, DOMAIN, password, "REGISTER", uri, nonce, "auth", nc, "c0ffee");
  return `Digest username="${user}", realm="${DOMAIN}", nonce="${nonce}", uri="${uri}", response="${r}", algorithm=${alg}, qop=auth, nc=${ncHex(nc)}, cnonce="c0ffee"`;
}

const SRC: RegisterSource = { transport: "udp", address: "203.0.113.5", port: 40123 };

function registrar(store: LocationStore, now: () => number = Date.now, extra: Partial<RegistrarOptions> = {}): Registrar {
  return new Registrar({
    ...extra,
    domain: DOMAIN,
    user: (u) => (u === "alice" ? { user: "alice", tenant: "acme", password: "wonderland" } : u === "bob" ? { user: "bob", tenant: "acme", password: "builder" } : undefined),
    auth: new DigestAuth({ realm: DOMAIN, secret: SECRET, now }),
    store,
    edgeId: "edge-1",
    minExpires: 60,
    maxExpires: 3600,
    lockout: { maxFailures: 3, windowMs: 60_000, durationMs: 300_000 },
    now,
  });
}

async function registered(r: Registrar, opts: Parameters<typeof register>[0] = {}, src = SRC) {
  const first = await r.handle(register(opts), src);
  expect(first).toMatchObject({ status: 401, outcome: "challenged" });
  const ch = first.headers.find(([n]) => n === "WWW-Authenticate")![1];
  return r.handle(register({ ...opts, auth: answer(ch, opts.user ?? "alice", opts.user === "bob" ? "builder" : "wonderland") }), src);
}

for (const kind of ["memory", "redis"] as const) {
  describe(`registrar (${kind} location)`, () => {
    let n = 0;
    const store = (now: () => number = Date.now): LocationStore => {
      if (kind === "memory") return new MemoryLocationStore(now);
      const c = new Redis(redis.url);
      clients.push(c);
      return new RedisLocationStore(c, `r${++n}:`, now);
    };

    it("challenges, then registers with the source address and port the REGISTER came from", async () => {
      const loc = store();
      const r = registrar(loc);
      const ok = await registered(r);
      expect(ok).toMatchObject({ status: 200, outcome: "registered", user: "alice", tenant: "acme" });
      expect(ok.headers).toEqual([["Contact", "<sip:alice@192.168.1.20:5062>;expires=3600"]]);
      const bs = await loc.lookup(`sip:alice@${DOMAIN}`);
      expect(bs).toHaveLength(1);
      expect(bs[0]).toMatchObject({ contact: "sip:alice@192.168.1.20:5062", address: "203.0.113.5", port: 40123, transport: "udp", edge: "edge-1", q: 1 });
    });

    it("answers a wrong password and an unknown user the same, and locks out guesses per source and user only", async () => {
      const r = registrar(store());
      const ch = (await r.handle(register({}), SRC)).headers[0]![1];
      const wrong = await r.handle(register({ auth: answer(ch, "alice", "guess") }), SRC);
      const ch2 = (await r.handle(register({ user: "mallory" }), SRC)).headers[0]![1];
      const unknown = await r.handle(register({ user: "mallory", auth: answer(ch2, "mallory", "x") }), SRC);
      expect(wrong).toMatchObject({ status: 403, outcome: "auth_failed" });
      expect(unknown).toEqual(wrong);
      // two more wrong passwords for alice from this source: locked out, even with the right one
      for (let i = 0; i < 2; i++) {
        const c = (await r.handle(register({}), SRC)).headers[0]![1];
        await r.handle(register({ auth: answer(c, "alice", "guess" + i) }), SRC);
      }
      const c = (await r.handle(register({}), SRC)).headers;
      expect(c).toEqual([]);
      // bob from the same source is not locked; alice from elsewhere is not either
      expect((await registered(r, { user: "bob", contacts: ["<sip:bob@10.0.0.2>"] })).status).toBe(200);
      expect((await registered(r, {}, { ...SRC, address: "198.51.100.9" })).status).toBe(200);
    });

    it("malformed credentials (no nonce, no response, an algorithm not offered) are challenged, not counted towards a lockout", async () => {
      const r = registrar(store());
      const junk = ['Digest username="alice"', 'Digest username="alice", realm="' + DOMAIN + '", uri="sip:' + DOMAIN + '"', 'Digest username="alice", realm="' + DOMAIN + '", nonce="x", uri="sip:' + DOMAIN + '", response="00", algorithm=MD5-sess'];
      for (let i = 0; i < 4; i++) {
        for (const auth of junk) expect(await r.handle(register({ auth }), SRC)).toMatchObject({ status: 401, outcome: "challenged" });
        for (const user of ["bob", "carol", "dave"]) expect((await r.handle(register({ user, auth: `Digest username="${user}"` }), SRC)).status).toBe(401);
      }
      // neither alice nor the address is locked out
      expect((await registered(r, {})).status).toBe(200);
      expect((await registered(r, { user: "bob", contacts: ["<sip:bob@10.0.0.2>"] })).status).toBe(200);
    });

    it("a Contact over 512 characters, or more than 5 Path values, is refused (a binding is sent in every call's INVITE and written in its record)", async () => {
      const loc = store();
      const r = registrar(loc);
      const long = `<sip:alice@192.168.1.20:5062;x=${"a".repeat(500)}>`;
      expect(await registered(r, { contacts: [long] })).toMatchObject({ status: 400, reason: "Bad Request (Contact over 512 characters)" });
      const paths = Array.from({ length: 6 }, (_, i) => `Path: <sip:p${i}@192.0.2.1;lr>`);
      expect(await registered(r, { extra: paths })).toMatchObject({ status: 400, outcome: "bad_request" });
      expect(await loc.lookup(`sip:alice@${DOMAIN}`)).toHaveLength(0);
      expect((await registered(r, { contacts: [`<sip:alice@192.168.1.20:5062;x=${"a".repeat(400)}>`] })).status).toBe(200);
    });

    it("REGISTERs of one AOR handled at the same time cannot pass max_contacts together, nor can an older CSeq undo a newer one", async () => {
      const loc = store();
      const r = registrar(loc, Date.now, { maxContacts: 1 });
      /** A REGISTER with its answer to a challenge of its own. */
      const authed = async (o: Parameters<typeof register>[0]) => {
        const ch = (await r.handle(register(o), SRC)).headers[0]![1];
        return register({ ...o, auth: answer(ch, "alice", "wonderland") });
      };
      // two devices at once, one contact allowed: one is registered, the other refused
      const both = await Promise.all([authed({ contacts: ["<sip:alice@10.0.0.1>"], callId: "dev-1" }), authed({ contacts: ["<sip:alice@10.0.0.2>"], callId: "dev-2" })]);
      const answers = await Promise.all(both.map((m) => r.handle(m, SRC)));
      expect(answers.map((a) => a.status).sort()).toEqual([200, 403]);
      expect(answers.find((a) => a.status === 403)).toMatchObject({ outcome: "too_many_contacts" });
      expect(await loc.lookup(`sip:alice@${DOMAIN}`)).toHaveLength(1);
      // one device's refresh (CSeq n+2) and its older unregister (CSeq n+1, overtaken) handled at once
      const dev = (await loc.lookup(`sip:alice@${DOMAIN}`))[0]!;
      const callId = dev.callId;
      const contact = `<${dev.contact}>`;
      const [refresh, stale] = await Promise.all([authed({ contacts: [contact], callId, cseq: dev.cseq + 2 }), authed({ contacts: [contact], callId, cseq: dev.cseq + 1, expires: 0 })]);
      const [a1, a2] = await Promise.all([r.handle(refresh, SRC), r.handle(stale, SRC)]);
      expect([a1.status, a2.status]).toEqual([200, 200]);
      const after = await loc.lookup(`sip:alice@${DOMAIN}`);
      expect(after).toHaveLength(1);
      expect(after[0]!.cseq).toBe(dev.cseq + 2);
    });

    it("refuses a replayed REGISTER (same nonce and nonce-count)", async () => {
      const r = registrar(store());
      const ch = (await r.handle(register({}), SRC)).headers[0]![1];
      const auth = answer(ch, "alice", "wonderland");
      expect((await r.handle(register({ auth }), SRC)).status).toBe(200);
      expect(await r.handle(register({ auth }), SRC)).toMatchObject({ status: 403, outcome: "auth_failed" });
    });

    it("keeps several devices; a device re-registering with its instance and reg-id replaces only its own binding", async () => {
      const loc = store();
      const r = registrar(loc);
      const phone = '<sip:alice@10.0.0.5:5060>;+sip.instance="<urn:uuid:00000000-0000-0000-0000-000000000001>";reg-id=1';
      const desk = '<sip:alice@10.0.0.6:5060>;+sip.instance="<urn:uuid:00000000-0000-0000-0000-000000000002>";reg-id=1;q=0.5';
      expect((await registered(r, { contacts: [phone], callId: "p" })).status).toBe(200);
      expect((await registered(r, { contacts: [desk], callId: "d" })).status).toBe(200);
      expect(await loc.lookup(`sip:alice@${DOMAIN}`)).toHaveLength(2);
      // the phone moves to another address and port (new Contact, same instance)
      const moved = '<sip:alice@10.0.0.99:5099>;+sip.instance="<urn:uuid:00000000-0000-0000-0000-000000000001>";reg-id=1';
      const res = await registered(r, { contacts: [moved], callId: "p2", extra: ["Supported: outbound, path"] }, { transport: "tcp", address: "203.0.113.7", port: 50000 });
      expect(res.headers).toContainEqual(["Require", "outbound"]);
      const bs = await loc.lookup(`sip:alice@${DOMAIN}`);
      expect(bs.map((b) => b.contact).sort()).toEqual(["sip:alice@10.0.0.6:5060", "sip:alice@10.0.0.99:5099"]);
      expect(qGroups(bs).map((g) => g.map((b) => b.q))).toEqual([[1], [0.5]]);
    });

    it("applies expiry rules: 423 under min_expires, capped at max_expires, a binding expires, * unregisters", async () => {
      let now = Date.now();
      const loc = store(() => now);
      const r = registrar(loc, () => now);
      const brief = await registered(r, { expires: 10 });
      expect(brief).toMatchObject({ status: 423, headers: [["Min-Expires", "60"]] });
      const capped = await registered(r, { expires: 99999 });
      expect(capped.headers[0]![1]).toMatch(/expires=3600$/);
      expect((await registered(r, { contacts: ["<sip:alice@10.9.9.9>;expires=120"], callId: "x" })).status).toBe(200);
      expect(await loc.lookup(`sip:alice@${DOMAIN}`)).toHaveLength(2);
      now += 121_000;
      expect((await loc.lookup(`sip:alice@${DOMAIN}`)).map((b) => b.contact)).toEqual(["sip:alice@192.168.1.20:5062"]);
      const bad = await registered(r, { contacts: ["*"] });
      expect(bad.status).toBe(400);
      const un = await registered(r, { contacts: ["*"], expires: 0 });
      expect(un).toMatchObject({ status: 200, outcome: "unregistered" });
      expect(await loc.lookup(`sip:alice@${DOMAIN}`)).toEqual([]);
    });

    it("refuses another domain, and an older REGISTER does not undo a newer one", async () => {
      const loc = store();
      const r = registrar(loc);
      const other = parseOrThrow(register({}).toString().replaceAll(DOMAIN, "evil.example"));
      expect(await r.handle(other, SRC)).toMatchObject({ status: 404, outcome: "not_found" });
      expect((await registered(r, { callId: "same", cseq: 10 })).status).toBe(200);
      const old = await registered(r, { callId: "same", cseq: 5, expires: 0 });
      expect(old.status).toBe(200);
      expect(await loc.lookup(`sip:alice@${DOMAIN}`)).toHaveLength(1);
    });
  });
}

describe("Lockout bound", () => {
  it("at the cap, the entry whose window began first goes; a restarted window counts as new", () => {
    let now = 0;
    const l = new Lockout({ maxFailures: 2, windowMs: 1000, durationMs: 5000, maxEntries: 3 }, () => now);
    l.fail("a");
    now = 1500;
    l.fail("b");
    now = 1600;
    l.fail("c");
    now = 1700;
    l.fail("a"); // a's window (from 0) ended: a new one from 1700, last in the order
    expect(l.size).toBe(3);
    now = 1800;
    l.fail("d"); // full: b, whose window began first (1500), goes
    expect(l.size).toBe(3);
    now = 1900;
    l.fail("b"); // had b been kept, this second failure in its window would lock it
    expect(l.locked("b")).toBe(false);
    l.fail("a"); // a was kept: a second failure in its window from 1700 locks it
    expect(l.locked("a")).toBe(true);
  });

  it("never holds more than its cap under a stream of new keys", () => {
    const l = new Lockout({ maxFailures: 5, windowMs: 60_000, durationMs: 60_000, maxEntries: 1000 }, () => 0);
    for (let i = 0; i < 20_000; i++) l.fail("u" + i + "@198.51.100.7");
    expect(l.size).toBe(1000);
    expect(l.locked("u19999@198.51.100.7")).toBe(false);
  });
});
