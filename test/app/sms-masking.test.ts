/**
 * SMS through masking sessions, end to end (real redis-server: routes, sessions, spool, records; a
 * carrier ESME (npm smpp) bound to didgate's SMPP server; an SMSC (npm smpp server) didgate binds
 * out to; a real HTTP server as the proxy number's webhook): a → proxy arrives at the SMSC as
 * proxy → b and b → proxy as proxy → a, a long message whole, a third party gets the number's own
 * route (or ESME_RINVDSTADR without one, even inside a routed block), an expired session no
 * longer routes, a stalled session store answers a temporary failure. The masked message's record
 * and the carrier's receipt.
 */
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Didgate } from "../../src/app.js";
import { gsm7Encode } from "../../src/smpp/charset.js";
import { RedisRouteWriter } from "../../src/routing/sources/redis-writer.js";
import { startApp, tempDir, waitFor } from "../helpers/app.js";
import { startRedis, type TestRedis } from "../helpers/redis.js";
import { connectEsme, startSmsc, type SmppPdu, type TestEsme, type TestSmsc } from "../helpers/smsc.js";

const A = "+15125551001";
const B = "+15125551002";
const THIRD = "+15125559999";
/** Pool "ride": its one number has its own route (a webhook) for those outside its sessions. */
const RIDE = "+15125550200";
/** Pool "deliv": no route of its own, inside a routed block. */
const DELIV = "+15125550300";

let redis: TestRedis;
let client: Redis;
let receiver: Server;
let hits: { path: string; body: Record<string, unknown> }[] = [];
let smsc: TestSmsc;
let app: Didgate;
let admin: string;
let carrier: TestEsme;

beforeAll(async () => {
  redis = await startRedis();
  client = new Redis(redis.url);
  receiver = createServer((req, res) => {
    let body = "";
    req.on("data", (d: Buffer) => (body += d.toString()));
    req.on("end", () => {
      hits.push({ path: req.url ?? "", body: JSON.parse(body) as Record<string, unknown> });
      res.writeHead(204).end();
    });
  });
  await new Promise<void>((r) => receiver.listen(0, "127.0.0.1", r));
  const hook = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}`;
  const w = new RedisRouteWriter(client, { prefix: "msk:", streamMaxlen: 10_000 });
  await w.set(RIDE, { tenant: "acme", sms: { webhook: `${hook}/ride-own-route` } });
  await w.set("+1512555030*", { tenant: "acme", sms: { webhook: `${hook}/block` } });
  await w.setOutbound("+1512555100*", { sms: ["smsc-b"] });
  smsc = await startSmsc({ idPrefix: "s" });
  const dir = tempDir();
  ({ app, admin } = await startApp(
    {
      state_dir: dir,
      routes: { redis: { url: redis.url, prefix: "msk:", snapshot: "" } },
      webhooks: { timeout_ms: 1000, allow_private: ["127.0.0.0/8"] },
      masking: {
        pools: [
          { name: "ride", tenant: "acme", numbers: [RIDE] },
          { name: "deliv", tenant: "acme", numbers: [DELIV] },
        ],
      },
      smpp: {
        listen: "127.0.0.1:0",
        handler_timeout_s: 5,
        accounts: [{ system_id: "smsc-a", password: "pw", role: "carrier", country_code: "1" }],
        binds: [{ name: "smsc-b", host: "127.0.0.1", port: smsc.port, system_id: "didgate", password: "pw", mode: "transceiver", long_messages: "udh", reconnect_min_s: 0.2, reconnect_max_s: 1 }],
      },
    },
    dir,
  ));
  carrier = await connectEsme(app.smpp!.address()!.port);
  expect((await carrier.bind("bind_transceiver", "smsc-a", "pw")).command_status).toBe(0);
  await smsc.waitBound(10_000);
}, 60_000);

afterAll(async () => {
  await carrier?.close();
  await app?.stop(1000);
  await smsc?.close();
  client?.disconnect();
  await redis?.stop();
  await new Promise<void>((r) => receiver.close(() => r()));
});

/** A message from the carrier: `from` sent it to `to` (both international, TON 1). */
const deliver = (from: string, to: string, text: string, extra: Record<string, unknown> = {}) =>
  carrier.send("deliver_sm", { source_addr: from.slice(1), source_addr_ton: 1, source_addr_npi: 1, destination_addr: to.slice(1), dest_addr_ton: 1, dest_addr_npi: 1, short_message: text, ...extra });

const submits = (): SmppPdu[] => smsc.received.filter((p) => p.command === "submit_sm");
const textOf = (p: SmppPdu): string => String((p.short_message as { message: string | Buffer }).message);

/** The next submit_sm at the SMSC whose text is `text`. */
const arrived = (text: string) => waitFor(() => submits().find((p) => textOf(p) === text), 10_000);

async function session(pool: string, ttlMs: number, a = A, b = B): Promise<{ id: string; proxy: string }> {
  const r = await app.masking!.create(pool, a, b, ttlMs);
  if (!r.ok) throw new Error(r.code);
  return { id: r.session.id, proxy: r.session.proxy };
}

async function metric(name: string, labels: string): Promise<number> {
  const text = await (await fetch(`${admin}/metrics`)).text();
  const line = text.split("\n").find((l) => l.startsWith(`${name}{${labels}}`));
  return line === undefined ? 0 : Number(line.split(" ").pop());
}

let rideSession: { id: string; proxy: string };

describe("SMS through a masking session", () => {
  it("a → proxy arrives at the SMSC as proxy → b, b → proxy as proxy → a; the text is the sender's, no real number of the other side", async () => {
    rideSession = await session("ride", 3_600_000);
    expect(rideSession.proxy).toBe(RIDE);
    expect((await deliver(A, RIDE, "hello from a", { registered_delivery: 1 })).command_status).toBe(0);
    const ab = await arrived("hello from a");
    expect([ab.source_addr, ab.source_addr_ton, ab.destination_addr, ab.dest_addr_ton]).toEqual([RIDE.slice(1), 1, B.slice(1), 1]);
    expect((await deliver(B, RIDE, "hello from b")).command_status).toBe(0);
    const ba = await arrived("hello from b");
    expect([ba.source_addr, ba.destination_addr]).toEqual([RIDE.slice(1), A.slice(1)]);
    // the own route's webhook got neither
    expect(hits.filter((h) => h.path === "/ride-own-route")).toHaveLength(0);
  });

  it("b's carrier's receipt reaches a's carrier (it asked for one), naming only a and the proxy", async () => {
    const ab = await arrived("hello from a");
    // the test SMSC numbers its message ids s1, s2, … in the order of the submit_sm it got
    const id = `s${submits().indexOf(ab) + 1}`;
    await smsc.send("deliver_sm", {
      source_addr: B.slice(1),
      source_addr_ton: 1,
      destination_addr: RIDE.slice(1),
      dest_addr_ton: 1,
      esm_class: 4,
      short_message: `id:${id} sub:001 dlvrd:000 submit date:2612050800 done date:2612050900 stat:EXPIRED err:000 text:`,
      receipted_message_id: id,
      message_state: 3,
    });
    const rcpt = await waitFor(() => carrier.received.find((p) => p.command === "deliver_sm" && ((p.esm_class as number) & 0x04) !== 0), 10_000);
    expect(String((rcpt.short_message as { message: string }).message)).toContain("stat:EXPIRED");
    expect([rcpt.source_addr, rcpt.destination_addr]).toEqual([RIDE.slice(1), A.slice(1)]);
    expect(JSON.stringify(rcpt)).not.toContain(B.slice(1));
  });

  it("a long message (two concatenated parts) is relayed whole, split again for b's carrier", async () => {
    const first = "x".repeat(150);
    const second = "the end of a long one";
    const part = (seq: number, text: string) =>
      deliver(A, RIDE, "", { esm_class: 0x40, short_message: Buffer.concat([Buffer.from([5, 0, 3, 0x2a, 2, seq]), Buffer.from(gsm7Encode(text)!)]) });
    expect((await part(1, first)).command_status).toBe(0);
    expect((await part(2, second)).command_status).toBe(0);
    const parts = await waitFor(() => {
      const s = submits().filter((p) => p.destination_addr === B.slice(1) && ((p.esm_class as number) & 0x40) !== 0);
      return s.length >= 2 ? s : undefined;
    }, 10_000);
    expect(parts.map((p) => p.source_addr)).toEqual([RIDE.slice(1), RIDE.slice(1)]);
    expect(parts.map(textOf).join("")).toBe(first + second);
  });

  it("a third party gets the number's own route (its webhook); without one ESME_RINVDSTADR, even inside a routed block", async () => {
    const before = submits().length;
    expect((await deliver(THIRD, RIDE, "who is this")).command_status).toBe(0);
    const h = await waitFor(() => hits.find((x) => x.path === "/ride-own-route"), 10_000);
    expect(h.body).toMatchObject({ type: "message.received", from: THIRD, to: RIDE, text: "who is this" });
    expect((await deliver(THIRD, DELIV, "anyone there")).command_status).toBe(0x0b);
    expect(hits.filter((x) => x.path === "/block")).toHaveLength(0);
    // neither reached a party
    expect(submits()).toHaveLength(before);
    expect(await metric("didgate_masking_routed_total", 'kind="message",result="own_route"')).toBe(1);
    expect(await metric("didgate_masking_routed_total", 'kind="message",result="no_session"')).toBe(1);
  });

  it("after the session's TTL the proxy number no longer routes a's message", async () => {
    const s = await session("deliv", 1500);
    expect(s.proxy).toBe(DELIV);
    expect((await deliver(A, DELIV, "while alive")).command_status).toBe(0);
    expect((await arrived("while alive")).destination_addr).toBe(B.slice(1));
    // its keys expire in Redis at the session's expiry, on every edge
    await waitFor(async () => ((await client.exists(`msk:mask:s:${s.id}`)) === 0 ? true : undefined), 10_000, 100);
    const before = submits().length;
    expect((await deliver(A, DELIV, "too late")).command_status).toBe(0x0b);
    expect(submits()).toHaveLength(before);
  });

  it("the masked message's record (at its final receipt): direction masked, the parties, the proxy as did, the session, the pool's tenant", async () => {
    const recs = await waitFor(async () => {
      const e = (await client.xrange("msk:cdr", "-", "+")) as [string, string[]][];
      const all = e.map(([, f]) => JSON.parse(f[f.indexOf("json") + 1]!) as Record<string, unknown>);
      const m = all.filter((r) => r.direction === "masked");
      return m.length >= 1 ? m : undefined;
    }, 10_000);
    expect(recs).toHaveLength(1);
    expect(recs[0]).toMatchObject({ type: "message", direction: "masked", peer: "smsc-a", from: A, to: B, did: RIDE, session_id: rideSession.id, tenant: "acme", target: "smsc-b", status: "expired" });
    expect(await metric("didgate_masking_routed_total", 'kind="message",result="routed"')).toBe(4);
  });

  it("an SMSC's retry of a relayed message is answered ESME_ROK and not sent again", async () => {
    expect((await deliver(B, RIDE, "said once")).command_status).toBe(0);
    expect((await deliver(B, RIDE, "said once")).command_status).toBe(0);
    expect((await deliver(B, RIDE, "after the retry")).command_status).toBe(0);
    await arrived("after the retry");
    expect(submits().filter((p) => textOf(p) === "said once")).toHaveLength(1);
    expect(await metric("didgate_sms_inbound_total", 'peer="smsc-a",outcome="duplicate"')).toBe(1);
  });

  it("the other party opted out of messages from the proxy number: ESME_RX_R_APPN, nothing sent", async () => {
    await client.sadd(`msk:optout:${RIDE}`, B);
    try {
      const before = submits().length;
      expect((await deliver(A, RIDE, "please answer")).command_status).toBe(0x66);
      expect(submits()).toHaveLength(before);
      expect(await metric("didgate_masking_routed_total", 'kind="message",result="refused"')).toBe(1);
    } finally {
      await client.srem(`msk:optout:${RIDE}`, B);
    }
  });

  it("a session whose party is a proxy number is refused; a message from a pool number to a pool number is not relayed (it would go round for ever)", async () => {
    await expect(session("ride", 60_000, A, DELIV)).rejects.toThrow("party_is_proxy");
    // a session made before that rule (written as the store writes it): DELIV is a party on RIDE
    await client.set(`msk:mask:p:${RIDE}:${DELIV}`, `ses_old ${B}`, "PX", 60_000);
    try {
      const before = submits().length;
      const hitsBefore = hits.length;
      expect((await deliver(DELIV, RIDE, "round and round")).command_status).toBe(0x66);
      expect(submits()).toHaveLength(before);
      expect(hits).toHaveLength(hitsBefore);
      expect(await metric("didgate_masking_routed_total", 'kind="message",result="loop"')).toBe(1);
    } finally {
      await client.del(`msk:mask:p:${RIDE}:${DELIV}`);
    }
  });

  it("no outbound sms route to the other party: ESME_RINVDSTADR", async () => {
    await session("deliv", 60_000, "+15125551005", "+447700900555");
    expect((await deliver("+15125551005", DELIV, "to nowhere")).command_status).toBe(0x0b);
    expect(await metric("didgate_masking_routed_total", 'kind="message",result="no_outbound"')).toBe(1);
  });

  it("a session store that stalls gets the carrier a temporary failure, not the number's own route", async () => {
    await session("deliv", 60_000);
    const hitsBefore = hits.length;
    const paused = new Redis(redis.url);
    try {
      // every client of this redis-server waits 3 s: the lookup gives up after its 1 s bound
      await paused.call("CLIENT", "PAUSE", "3000", "ALL");
      expect((await deliver(A, DELIV, "during a stall")).command_status).toBe(0x64);
    } finally {
      paused.disconnect();
    }
    expect(hits).toHaveLength(hitsBefore);
    expect(await metric("didgate_masking_routed_total", 'kind="message",result="store_error"')).toBe(1);
  });

  it("one party relays at most 30 messages a minute through a proxy number (two auto-replies answering each other are bounded); over it a temporary failure", async () => {
    const x = "+15125551007";
    const y = "+15125551008";
    await session("deliv", 60_000, x, y);
    const before = submits().length;
    // 30 at once (within the inbound window): each takes its place as it comes
    const answers = await Promise.all(Array.from({ length: 30 }, (_, i) => deliver(x, DELIV, `auto ${i}`)));
    expect(answers.map((a) => a.command_status)).toEqual(Array(30).fill(0));
    expect((await deliver(x, DELIV, "auto 30")).command_status).toBe(0x64);
    // the other party is not held back by x's count
    expect((await deliver(y, DELIV, "from y")).command_status).toBe(0);
    await waitFor(() => submits().length >= before + 31 || undefined, 10_000);
    expect(submits().filter((p) => textOf(p).startsWith("auto "))).toHaveLength(30);
    expect(await metric("didgate_masking_routed_total", 'kind="message",result="rate_limited"')).toBe(1);
  });
});
