/**
 * Outbound SMS end to end, direct mode (no Redis): an app bound to didgate over SMPP (npm smpp)
 * submits; didgate, bound as ESME to real SMSC peers (npm smpp servers), routes by the outbound
 * table's sms names, answers ESME_ROK only once the carrier accepted, relays the carrier's receipt
 * with the app's own id, paces a bind to its tps, fails over when a bind throttles, refuses senders
 * the account does not own (0x0A), opted-out recipients (0x66) and destinations without a route
 * (0x0B), and writes one outbound message record per message. A bind with `national_language: [tr]`
 * gets a Turkish text in 7 bits through the Turkish tables, in fewer parts than UCS-2.
 */
import { writeFileSync } from "node:fs";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { verifyWebhook } from "../../src/delivery/webhook.js";
import { join } from "node:path";
import YAML from "yaml";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Didgate } from "../../src/app.js";
import { gsm7Decode, ucs2Decode } from "../../src/smpp/charset.js";
import { apiCall, outboundRecords, startApp, tempDir, waitFor } from "../helpers/app.js";
import { connectEsme, startSmsc, type SmppPdu, type TestEsme, type TestSmsc } from "../helpers/smsc.js";

let app: Didgate;
let esme: TestEsme;
let smscA: TestSmsc;
let smscB: TestSmsc;
let smscT: TestSmsc;
let smscR: TestSmsc;
let smscN: TestSmsc;
let dir: string;
const ADMIN = "admin-token-0123456789abcdef";
const SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
let receiver: Server;
let hookUrl: string;
const hooks: { id: string; ok: boolean; body: any }[] = [];
const ACME = "acme-token-0123456789abcdef";
const OTHER = "other-token-0123456789abcdef";


const cstr = (v: unknown): string => String(v ?? "").replace(/\0+$/, "");
const submits = (s: TestSmsc, to?: string) => s.received.filter((p) => p.command === "submit_sm" && (to === undefined || p.destination_addr === to));
const api = (method: string, path: string, token: string | null, body?: unknown) => apiCall(app.api!.address.port, method, path, token, body);
const records = () => outboundRecords(dir);
const receiptsOf = (e: TestEsme) => e.received.filter((p) => p.command === "deliver_sm" && ((p.esm_class as number) & 0x3c) === 0x04);

/** The raw user data of a submit_sm as the npm smpp package decoded it. */
function ud(p: SmppPdu): { udh?: Buffer[]; message: Buffer | string } {
  return p.short_message as { udh?: Buffer[]; message: Buffer | string };
}

function textOf(p: SmppPdu): string {
  const m = ud(p).message;
  return typeof m === "string" ? m : p.data_coding === 8 ? ucs2Decode(m) : gsm7Decode(m);
}

beforeAll(async () => {
  receiver = createServer((req, res) => {
    let body = "";
    req.on("data", (d: Buffer) => (body += d.toString()));
    req.on("end", () => {
      hooks.push({ id: String(req.headers["webhook-id"]), ok: verifyWebhook(SECRET, req.headers as Record<string, string>, body), body: JSON.parse(body) });
      res.writeHead(200).end();
    });
  });
  await new Promise<void>((r) => receiver.listen(0, "127.0.0.1", r));
  hookUrl = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}/status`;
  smscA = await startSmsc({ idPrefix: "a", submitStatusOf: (p) => (String(p.destination_addr).startsWith("45") ? 0x58 : 0) });
  smscB = await startSmsc({ idPrefix: "b" });
  smscT = await startSmsc({ idPrefix: "t" });
  smscR = await startSmsc({ idPrefix: "r", receiptFirst: 300 });
  smscN = await startSmsc({ idPrefix: "n" });
  dir = tempDir();
  const doc = {
    routes: {
      "+15125550100": { tenant: "acme", sms: { webhook: "http://127.0.0.1:9/in" } },
      "+15125550101": { tenant: "acme", state: "quarantine" },
      "+15125550200": { tenant: "other", sms: { webhook: "http://127.0.0.1:9/in" } },
    },
    outbound: {
      "+44*": { sms: ["smsc-a", "smsc-b"] },
      "+45*": { sms: ["smsc-a", "smsc-b"] },
      "+33*": { sms: ["smsc-t"] },
      "+34*": { voice: ["nobody"] },
      "+36*": { sms: ["smsc-r"] },
      "+90*": { sms: ["smsc-n"] },
    },
  };
  writeFileSync(join(dir, "routes.yaml"), YAML.stringify(doc));
  const bind = (name: string, port: number, extra: Record<string, unknown> = {}) => ({ name, host: "127.0.0.1", port, system_id: "didgate", password: "pw", mode: "transceiver", long_messages: "udh", ...extra });
  ({ app } = await startApp(
    {
      routes: { file: "routes.yaml" },
      state_dir: dir,
      records: { jsonl: { path: "records.jsonl" } },
      api: { listen: "127.0.0.1:0", tokens: [{ token: ADMIN }, { token: ACME, tenant: "acme" }, { token: OTHER, tenant: "other" }] },
      webhooks: { secret: SECRET, timeout_ms: 1000, allow_private: ["127.0.0.0/8"] },
      smpp: {
        listen: "127.0.0.1:0",
        handler_timeout_s: 10,
        reassembly: { timeout_s: 1 },
        accounts: [
          { system_id: "app-1", password: "pw-a", role: "app", tenant: "acme", senders: ["ACME"], country_code: "1" },
          // only its senders matter here: the HTTP API reads a tenant's senders from its app accounts
          { system_id: "app-2", password: "pw-b", role: "app", tenant: "acme", senders: ["72345"], country_code: "1" },
        ],
        binds: [bind("smsc-a", smscA.port), bind("smsc-b", smscB.port), bind("smsc-t", smscT.port, { tps: 10 }), bind("smsc-r", smscR.port), bind("smsc-n", smscN.port, { national_language: ["tr"] })],
      },
    },
    dir,
  ));
  await Promise.all([smscA.waitBound(), smscB.waitBound(), smscT.waitBound(), smscR.waitBound(), smscN.waitBound()]);
  await waitFor(() => ["smsc-a", "smsc-b", "smsc-t", "smsc-r", "smsc-n"].every((n) => app.smpp!.clients.get(n)!.isBound));
  esme = await connectEsme(app.smpp!.address()!.port);
  expect((await esme.bind("bind_transceiver", "app-1", "pw-a")).command_status).toBe(0);
}, 60_000);

afterAll(async () => {
  await esme?.close();
  await app?.stop(1000);
  await Promise.all([smscA?.close(), smscB?.close(), smscT?.close(), smscR?.close(), smscN?.close()]);
  await new Promise<void>((r) => receiver.close(() => r()));
});

const from = { source_addr: "15125550100", source_addr_ton: 1, source_addr_npi: 1 };
const submit = (to: string, fields: Record<string, unknown>) => esme.send("submit_sm", { ...from, destination_addr: to, dest_addr_ton: 1, dest_addr_npi: 1, ...fields });


describe("an app sends from its own number", () => {
  it("GSM 7 text reaches the carrier with the right source, destination and text; ESME_ROK carries an id", async () => {
    const r = await submit("447700900001", { data_coding: 0, short_message: "Your code is 1234 @ £5 {ok}" });
    expect(r.command_status).toBe(0);
    expect(cstr(r.message_id).length).toBeGreaterThan(0);
    // direct mode: the carrier had it before the app got its ESME_ROK
    const [p] = submits(smscA, "447700900001");
    expect(p).toBeDefined();
    expect([p!.source_addr, p!.source_addr_ton, p!.dest_addr_ton]).toEqual(["15125550100", 1, 1]);
    expect(p!.data_coding).toBe(0);
    expect(textOf(p!)).toBe("Your code is 1234 @ £5 {ok}");
    expect(p!.registered_delivery).toBe(1);
  });

  it("UCS-2 with an emoji goes as data_coding 8", async () => {
    const r = await submit("447700900002", { short_message: { message: "Привет 👋" } });
    expect(r.command_status).toBe(0);
    const [p] = submits(smscA, "447700900002");
    expect(p!.data_coding).toBe(8);
    expect(textOf(p!)).toBe("Привет 👋");
  });

  it("a 400-character text goes in 3 concatenated parts with one UDH reference", async () => {
    const long = ("0123456789abcdefghijklmnopqrstuvwxyz".repeat(12)).slice(0, 400);
    const r = await esme.send("submit_sm", { ...from, destination_addr: "447700900003", dest_addr_ton: 1, message_payload: long });
    expect(r.command_status).toBe(0);
    const ps = submits(smscA, "447700900003");
    expect(ps.length).toBe(3);
    const refs = new Set<number>();
    let text = "";
    ps.forEach((p, i) => {
      expect(((p.esm_class as number) & 0x40) !== 0).toBe(true);
      const h = ud(p).udh![0]!;
      expect([h[0], h[1], h[3], h[4]]).toEqual([0x00, 0x03, 3, i + 1]);
      refs.add(h[2]!);
      text += textOf(p);
    });
    expect(refs.size).toBe(1);
    expect(text).toBe(long);
  });

  it("a Turkish text goes to a bind with national_language [tr] as one 7-bit part with the locking shift IE; to a bind without, as three UCS-2 parts", async () => {
    // 140 characters, all in the Turkish locking shift table, several not in the default alphabet
    const tr = "Şişli'de buluşalım mı? Ağaç İstanbul'da çok güzel. ".repeat(3).slice(0, 140);
    expect((await submit("905321234567", { data_coding: 8, message_payload: tr })).command_status).toBe(0);
    const [p] = submits(smscN, "905321234567");
    expect(submits(smscN, "905321234567")).toHaveLength(1);
    expect(p!.data_coding === 0 || p!.data_coding === 1).toBe(true);
    expect(ud(p!).udh!.map((ie) => [...ie])).toContainEqual([0x25, 0x01, 0x01]);
    // the npm smpp SMSC decodes the text through the table the IE names
    expect(String(ud(p!).message)).toBe(tr);
    expect((await submit("447700900030", { data_coding: 8, message_payload: tr })).command_status).toBe(0);
    const ucs2 = submits(smscA, "447700900030");
    expect(ucs2.map((x) => x.data_coding)).toEqual([8, 8, 8]);
    expect(ucs2.map(textOf).join("")).toBe(tr);
    expect(await app.registry.getSingleMetricAsString("didgate_smpp_national_parts_saved_total")).toMatch(/peer="smsc-n"\} 2/);
  });

  it("data_sm is an outbound message too", async () => {
    const r = await esme.send("data_sm", { ...from, destination_addr: "447700900006", dest_addr_ton: 1, data_coding: 0, message_payload: "via data_sm" });
    expect(r.command_status).toBe(0);
    const [p] = submits(smscA, "447700900006");
    expect(textOf(p!)).toBe("via data_sm");
  });

  it("an alphanumeric sender listed for the account is allowed", async () => {
    const r = await esme.send("submit_sm", { source_addr: "ACME", source_addr_ton: 5, destination_addr: "447700900004", dest_addr_ton: 1, short_message: "from a name" });
    expect(r.command_status).toBe(0);
    const [p] = submits(smscA, "447700900004");
    expect([p!.source_addr, p!.source_addr_ton]).toEqual(["ACME", 5]);
  });

  it("the carrier's receipt comes back to the app as a deliver_sm receipt with the app's id", async () => {
    const r = await submit("447700900005", { short_message: "receipt please", registered_delivery: 1 });
    expect(r.command_status).toBe(0);
    const appId = cstr(r.message_id);
    const smscId = await waitFor(() => {
      const i = smscA.received.findIndex((p) => p.command === "submit_sm" && p.destination_addr === "447700900005");
      return i >= 0 ? `a${submits(smscA).indexOf(smscA.received[i]!) + 1}` : undefined;
    });
    // direct mode: sent before the app's ESME_ROK, so query says ENROUTE and there is nothing to
    // cancel or replace (memory status store)
    const q0 = await esme.send("query_sm", { message_id: appId, source_addr_ton: 1, source_addr: "15125550100" });
    expect([q0.command_status, q0.message_state]).toEqual([0, 1]);
    expect((await esme.send("cancel_sm", { message_id: appId, source_addr_ton: 1, source_addr: "15125550100" })).command_status).toBe(0x11);
    expect((await esme.send("replace_sm", { message_id: appId, source_addr_ton: 1, source_addr: "15125550100", short_message: Buffer.from("x") })).command_status).toBe(0x13);
    const before = receiptsOf(esme).length;
    const dr = await smscA.send("deliver_sm", {
      source_addr: "447700900005",
      destination_addr: "15125550100",
      esm_class: 4,
      short_message: `id:${smscId} sub:001 dlvrd:001 submit date:2612050800 done date:2612050801 stat:DELIVRD err:000 text:receipt please`,
      receipted_message_id: smscId,
      message_state: 2,
    });
    expect(dr.command_status).toBe(0);
    const rc = await waitFor(() => (receiptsOf(esme).length > before ? receiptsOf(esme).at(-1) : undefined));
    expect(String((rc.short_message as { message: string }).message)).toMatch(new RegExp(`^id:${appId} .*stat:DELIVRD`));
    expect(cstr(rc.receipted_message_id)).toBe(appId);
    // its record: final status and the receipt
    const rec = await waitFor(() => records().find((x) => x.smpp_message_id === appId));
    expect(rec).toMatchObject({ direction: "outbound", tenant: "acme", peer: "app-1", from: "+15125550100", to: "+447700900005", parts: 1, encoding: "gsm7", target: "smsc-a", status: "delivered", carrier_message_ids: [smscId] });
    expect(rec.receipt).toMatchObject({ stat: "DELIVRD", err: "000", smsc_message_id: smscId, bind: "smsc-a" });
    const q1 = await waitFor(async () => {
      const q = await esme.send("query_sm", { message_id: appId, source_addr_ton: 1, source_addr: "15125550100" });
      return q.message_state === 2 ? q : undefined;
    });
    expect([q1.command_status, q1.error_code]).toEqual([0, 0]);
    expect(q1.final_date).toBeInstanceOf(Date);
  });
});

describe("a receipt that overtakes its submit_sm_resp", () => {
  it("is still relayed with the app's id", async () => {
    const before = receiptsOf(esme).length;
    const r = await submit("3620000001", { short_message: "fast receipt", registered_delivery: 1 });
    expect(r.command_status).toBe(0);
    const appId = cstr(r.message_id);
    const rc = await waitFor(() => receiptsOf(esme).slice(before).find((p) => cstr(p.receipted_message_id) === appId));
    expect(String((rc.short_message as { message: string }).message)).toMatch(new RegExp(`^id:${appId} .*stat:DELIVRD`));
    const rec = await waitFor(() => records().find((x) => x.smpp_message_id === appId));
    expect(rec).toMatchObject({ status: "delivered", target: "smsc-r", carrier_message_ids: ["r1"] });
  });
});

describe("refusals", () => {
  it("a long message whose second part never comes is not sent cut short", async () => {
    const udh = Buffer.from([0x05, 0x00, 0x03, 0x42, 0x02, 0x01]);
    const r = await submit("447700900020", { esm_class: 0x40, short_message: { udh, message: "first half only" } });
    expect(r.command_status).toBe(0); // a part is acknowledged when stored
    const rec = await waitFor(() => records().find((x) => x.to === "+447700900020"), 10_000);
    expect(rec).toMatchObject({ status: "rejected", reason: "permanent" });
    expect(submits(smscA, "447700900020").length + submits(smscB, "447700900020").length).toBe(0);
  });

  it("a number of another tenant, a number not active, an unlisted name: ESME_RINVSRCADR, nothing sent", async () => {
    const before = submits(smscA).length + submits(smscB).length;
    expect((await esme.send("submit_sm", { source_addr: "15125550200", source_addr_ton: 1, destination_addr: "447700900010", dest_addr_ton: 1, short_message: "x" })).command_status).toBe(0x0a);
    expect((await esme.send("submit_sm", { source_addr: "15125550101", source_addr_ton: 1, destination_addr: "447700900010", dest_addr_ton: 1, short_message: "x" })).command_status).toBe(0x0a);
    expect((await esme.send("submit_sm", { source_addr: "15125559999", source_addr_ton: 1, destination_addr: "447700900010", dest_addr_ton: 1, short_message: "x" })).command_status).toBe(0x0a);
    expect((await esme.send("submit_sm", { source_addr: "EVIL", source_addr_ton: 5, destination_addr: "447700900010", dest_addr_ton: 1, short_message: "x" })).command_status).toBe(0x0a);
    expect(submits(smscA).length + submits(smscB).length).toBe(before);
    const recs = await waitFor(() => {
      const r = records().filter((x) => x.to === "+447700900010");
      return r.length === 4 ? r : undefined;
    });
    expect(recs.every((x) => x.status === "rejected" && x.reason === "invalid_source")).toBe(true);
  });

  it("a recipient that opted out of the number: ESME_RX_R_APPN; no outbound sms route: ESME_RINVDSTADR", async () => {
    await app.optouts!.optOut("+15125550100", "+447700900011");
    expect((await submit("447700900011", { short_message: "x" })).command_status).toBe(0x66);
    await app.optouts!.optIn("+15125550100", "+447700900011");
    expect((await submit("447700900011", { short_message: "x" })).command_status).toBe(0);
    expect((await submit("34600000001", { short_message: "x" })).command_status).toBe(0x0b);
    expect((await submit("81300000001", { short_message: "x" })).command_status).toBe(0x0b);
  });

  it("without Redis nothing can wait: a schedule_delivery_time in the future is ESME_RINVSCHED; a past one and a validity_period go now", async () => {
    const r = await submit("447700900013", { short_message: "later please", schedule_delivery_time: "000000010000000R" });
    expect(r.command_status).toBe(0x61);
    expect(submits(smscA, "447700900013")).toHaveLength(0);
    const t0 = Date.now();
    expect((await submit("447700900013", { short_message: "now please", schedule_delivery_time: "200101000000000+", validity_period: "000001000000000R" })).command_status).toBe(0);
    const t1 = Date.now();
    expect(submits(smscA, "447700900013").map(textOf)).toEqual(["now please"]);
    // the carrier gets the validity as an absolute time (a day after didgate received the PDU), no schedule
    const p = submits(smscA, "447700900013")[0]!;
    expect(p.validity_period).toBeInstanceOf(Date);
    expect((p.validity_period as Date).getTime()).toBeGreaterThanOrEqual(t0 + 86_400_000 - 100);
    expect((p.validity_period as Date).getTime()).toBeLessThanOrEqual(t1 + 86_400_000);
    expect(p.schedule_delivery_time || "").toBe("");
    expect((await submit("447700900013", { short_message: "x", validity_period: "000000000000000R" })).command_status).toBe(0x62);
  });
});

describe("HTTP: POST /v1/messages, GET /v1/messages/{id}", () => {
  it("a tenant token sends from its number: 202 once the carrier accepted (direct mode); the status history follows the receipt", async () => {
    const r = await api("POST", "/v1/messages", ACME, { from: "+15125550100", to: "+447700900200", text: "hello over http", client_ref: "order-42", status_webhook: hookUrl });
    expect(r.status).toBe(202);
    expect(r.body).toMatchObject({ status: "sent", parts: 1 });
    expect(r.body.id).toMatch(/^msg_/);
    const [p] = submits(smscA, "447700900200");
    expect([p!.source_addr, textOf(p!)]).toEqual(["15125550100", "hello over http"]);
    const g = await api("GET", `/v1/messages/${r.body.id}`, ACME);
    expect(g.status).toBe(200);
    expect(g.body).toMatchObject({ id: r.body.id, status: "sent", tenant: "acme", from: "+15125550100", to: "+447700900200", parts: 1, encoding: "gsm7", client_ref: "order-42" });
    expect(g.body.history.map((h: { status: string }) => h.status)).toEqual(["queued", "sent"]);
    const smscId = `a${submits(smscA).indexOf(p!) + 1}`;
    await smscA.send("deliver_sm", { source_addr: "447700900200", destination_addr: "15125550100", esm_class: 4, short_message: `id:${smscId} sub:001 dlvrd:001 submit date:2612050800 done date:2612050801 stat:DELIVRD err:000 text:`, receipted_message_id: smscId, message_state: 2 });
    const done = await waitFor(async () => {
      const x = await api("GET", `/v1/messages/${r.body.id}`, ACME);
      return x.body.status === "delivered" ? x.body : undefined;
    });
    expect(done.history.map((h: { status: string }) => h.status)).toEqual(["queued", "sent", "delivered"]);
    // and each change went to the status_webhook, signed
    const mine = await waitFor(() => {
      const h = hooks.filter((x) => x.body.id === r.body.id);
      return h.length >= 2 ? h : undefined;
    });
    expect(mine.every((h) => h.ok)).toBe(true);
    expect(mine.map((h) => h.body.status).sort()).toEqual(["delivered", "sent"]);
    expect(mine.find((h) => h.body.status === "delivered")!.body).toMatchObject({ type: "message.status", error_code: "000", client_ref: "order-42", from: "+15125550100", to: "+447700900200", tenant: "acme" });
    expect(new Set(mine.map((h) => h.id)).size).toBe(2);
    // another tenant's token does not see it; an admin token does
    expect((await api("GET", `/v1/messages/${r.body.id}`, ADMIN)).status).toBe(200);
    expect((await api("GET", "/v1/messages/msg_nope", ACME)).status).toBe(404);
  });

  it("a 400-character UCS-2 text counts its parts", async () => {
    const r = await api("POST", "/v1/messages", ACME, { from: "+15125550100", to: "+447700900201", text: "ü👋".repeat(100) });
    expect(r.status).toBe(202);
    // 300 UTF-16 units, 67 per part
    expect(r.body.parts).toBe(5);
    expect(submits(smscA, "447700900201").length).toBe(5);
  });

  it("wrong token 401, another tenant's number 403, opted out 409, no route 404, bad body 400", async () => {
    const before = submits(smscA).length + submits(smscB).length;
    expect((await api("POST", "/v1/messages", "wrong-token-0123456789abcdef", { from: "+15125550100", to: "+447700900202", text: "x" })).status).toBe(401);
    expect((await api("POST", "/v1/messages", null, { from: "+15125550100", to: "+447700900202", text: "x" })).status).toBe(401);
    const forbidden = await api("POST", "/v1/messages", ACME, { from: "+15125550200", to: "+447700900202", text: "x" });
    expect([forbidden.status, forbidden.body.error.code]).toEqual([403, "sender_not_owned"]);
    await app.optouts!.optOut("+15125550100", "+447700900202");
    const opted = await api("POST", "/v1/messages", ACME, { from: "+15125550100", to: "+447700900202", text: "x" });
    expect([opted.status, opted.body.error.code]).toEqual([409, "recipient_opted_out"]);
    await app.optouts!.optIn("+15125550100", "+447700900202");
    const noRoute = await api("POST", "/v1/messages", ACME, { from: "+15125550100", to: "+34600000002", text: "x" });
    expect([noRoute.status, noRoute.body.error.code]).toEqual([404, "no_route"]);
    expect((await api("POST", "/v1/messages", ACME, { from: "+15125550100", to: "447700900202", text: "x" })).status).toBe(400);
    expect((await api("POST", "/v1/messages", ACME, { from: "+15125550100", to: "+447700900202", text: "x", extra: 1 })).status).toBe(400);
    expect((await api("POST", "/v1/messages", ACME, { from: "+15125550100", to: "+447700900202", text: "x", status_webhook: "ftp://example.com/x" })).status).toBe(400);
    expect((await api("POST", "/v1/messages", ACME, { from: "+15125550100", to: "+447700900202", text: "x", status_webhook: "https://u:p@example.com/x" })).status).toBe(422);
    expect(submits(smscA).length + submits(smscB).length).toBe(before);
    // an admin token may send from any active number of ours
    expect((await api("POST", "/v1/messages", ADMIN, { from: "+15125550200", to: "+447700900203", text: "admin" })).status).toBe(202);
  });
});

describe("HTTP: alphanumeric senders and short codes", () => {
  it("a sender listed on an app account of the token's tenant: 202, the SMSC gets it as written (TON 5 for a name)", async () => {
    const r = await api("POST", "/v1/messages", ACME, { from: "ACME", to: "+447700900210", text: "from a name over http" });
    expect([r.status, r.body.status]).toEqual([202, "sent"]);
    const [p] = submits(smscA, "447700900210");
    expect([p!.source_addr, p!.source_addr_ton, textOf(p!)]).toEqual(["ACME", 5, "from a name over http"]);
    expect((await api("GET", `/v1/messages/${r.body.id}`, ACME)).body).toMatchObject({ from: "ACME", tenant: "acme" });
    // a short code listed on the tenant's other account
    expect((await api("POST", "/v1/messages", ACME, { from: "72345", to: "+447700900211", text: "short code" })).status).toBe(202);
    const [q] = submits(smscA, "447700900211");
    expect(q!.source_addr).toBe("72345");
    // an admin token may use any listed sender; the message is the listing account's tenant's
    const a = await api("POST", "/v1/messages", ADMIN, { from: "ACME", to: "+447700900212", text: "admin" });
    expect(a.status).toBe(202);
    expect((await api("GET", `/v1/messages/${a.body.id}`, ADMIN)).body.tenant).toBe("acme");
  });

  it("a sender not listed for the tenant: 403 sender_not_owned, nothing sent; not a sender at all: 400", async () => {
    const before = submits(smscA).length + submits(smscB).length;
    const unlisted = await api("POST", "/v1/messages", ACME, { from: "OTHERCO", to: "+447700900213", text: "x" });
    expect([unlisted.status, unlisted.body.error.code]).toEqual([403, "sender_not_owned"]);
    // listed, but for another tenant's account
    const foreign = await api("POST", "/v1/messages", OTHER, { from: "ACME", to: "+447700900213", text: "x" });
    expect([foreign.status, foreign.body.error.code]).toEqual([403, "sender_not_owned"]);
    expect((await api("POST", "/v1/messages", ADMIN, { from: "NOBODY", to: "+447700900213", text: "x" })).status).toBe(403);
    expect((await api("POST", "/v1/messages", ACME, { from: "A!B", to: "+447700900213", text: "x" })).status).toBe(400);
    expect((await api("POST", "/v1/messages", ACME, { from: "X".repeat(21), to: "+447700900213", text: "x" })).status).toBe(400);
    expect(submits(smscA).length + submits(smscB).length).toBe(before);
  });
});

describe("throughput and failover", () => {
  it("a bind limited to 10 tps spaces 40 messages over about 4 s (SMSC receive times)", async () => {
    const n = 40;
    const rs = await Promise.all(Array.from({ length: n }, (_, i) => submit(`3361000${String(i).padStart(4, "0")}`, { short_message: `paced ${i}` })));
    expect(rs.every((r) => r.command_status === 0)).toBe(true);
    const ps = submits(smscT);
    expect(ps.length).toBe(n);
    const times = ps.map((p) => p._at as number).sort((a, b) => a - b);
    const span = times[n - 1]! - times[0]!;
    // (n - 1) intervals of 100 ms; a little slack for timer granularity
    expect(span).toBeGreaterThanOrEqual((n - 1) * 100 * 0.9);
    // no bursts: any 11 consecutive arrivals span about a second (10 slots of 100 ms; one late
    // submit may arrive close to the next, on time, one, so pairs are not compared)
    for (let i = 10; i < n; i++) expect(times[i]! - times[i - 10]!).toBeGreaterThanOrEqual(900);
    const metrics = await app.registry.metrics();
    expect(metrics).toContain('didgate_sms_outbound_parts_total{bind="smsc-t"} 40');
    expect(metrics).toContain('didgate_sms_outbound_pacing{bind="smsc-t"} 0');
  }, 30_000);

  it("the first bind throttling (0x58) fails over to the second", async () => {
    const r = await submit("4520000001", { short_message: "failover" });
    expect(r.command_status).toBe(0);
    expect(submits(smscA, "4520000001").length).toBe(1); // tried, answered 0x58
    expect(submits(smscB, "4520000001").length).toBe(1);
    expect(textOf(submits(smscB, "4520000001")[0]!)).toBe("failover");
  });
});
