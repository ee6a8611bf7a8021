/**
 * What didgate sends by itself for an inbound message, end to end in direct mode (no Redis): a
 * carrier ESME (npm smpp) bound to didgate sends deliver_sm; a real HTTP receiver is the route's
 * webhook; replies, forwards and opt-out confirmations leave through the outbound table to an SMSC
 * peer (npm smpp server) with the DID as source and the sender as destination. STOP makes an app's
 * message to that sender refused (SMPP ESME_RX_R_APPN, HTTP 409 recipient_opted_out); START
 * restores it.
 */
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Didgate } from "../../src/app.js";
import { STATUS } from "../../src/smpp/constants.js";
import { DEFAULT_OPTOUT_TEXTS } from "../../src/edge/sms-keywords.js";
import { startApp, tempDir, waitFor, writeRoutes } from "../helpers/app.js";
import { connectEsme, startSmsc, submittedTo, type TestEsme, type TestSmsc } from "../helpers/smsc.js";

const SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const ACME = "acme-token-0123456789abcdef";
let receiver: Server;
const hits: { path: string; body: any }[] = [];
let app: Didgate;
let smsc: TestSmsc;
let carrier: TestEsme;
let appEsme: TestEsme;
/** An app account whose listed senders include a number written as digits. */
let senderEsme: TestEsme;

/** What reached the SMSC for one destination: [source, text]. */
const sent = (to: string) => submittedTo(smsc, to);
const waitSent = (to: string, n = 1) => waitFor(() => (sent(to).length >= n ? sent(to) : undefined), 5000);
const hitsFor = (from: string) => hits.filter((h) => h.body.from === from);

beforeAll(async () => {
  receiver = createServer((req, res) => {
    let body = "";
    req.on("data", (d: Buffer) => (body += d.toString()));
    req.on("end", () => {
      const j = JSON.parse(body);
      hits.push({ path: req.url ?? "", body: j });
      if (req.url === "/reply") res.writeHead(200, { "content-type": "application/json; charset=utf-8" }).end(JSON.stringify({ reply: `You said: ${j.text}` }));
      else if (req.url === "/noreply") res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify({ ok: true }));
      else if (req.url === "/text") res.writeHead(200, { "content-type": "text/plain" }).end('{"reply":"not json by its type"}');
      else res.writeHead(204).end();
    });
  });
  await new Promise<void>((r) => receiver.listen(0, "127.0.0.1", r));
  const hook = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}`;
  smsc = await startSmsc({ idPrefix: "r" });
  const dir = tempDir();
  writeRoutes(dir, {
    "+15125550100": { tenant: "acme", sms: { webhook: `${hook}/reply` } },
    "+15125550101": { tenant: "acme", sms: { webhook: `${hook}/noreply` } },
    "+15125550102": { tenant: "acme", sms: { webhook: `${hook}/text` } },
    "+15125550110": { tenant: "acme", sms: { webhook: `${hook}/plain`, forward: ["+447700900500", "+447700900501"], forward_template: "Fwd {from} to {to}: {text}" } },
    "+15125550120": {
      tenant: "acme",
      sms: {
        webhook: `${hook}/plain`,
        keywords: { join: { webhook: `${hook}/join`, reply: "Welcome to the club" }, INFO: { reply: "Acme info" } },
        optout: { stop_reply: "Acme: unsubscribed", help_reply: "Acme help: call 555" },
      },
    },
    "+15125550150": { tenant: "acme", sms: { webhook: `${hook}/plain` } },
    "+15125550130": { tenant: "acme", sms: { forward: "+15125550140" } },
    "+15125550140": { tenant: "acme", sms: { forward: "+15125550130" } },
  });
  // the routes file also holds the outbound table
  const { writeFileSync, readFileSync } = await import("node:fs");
  const YAML = (await import("yaml")).default;
  const doc = YAML.parse(readFileSync(`${dir}/routes.yaml`, "utf8"));
  doc.outbound = { "+44*": { sms: ["smsc-r"] }, "+1*": { sms: ["smsc-r"] } };
  writeFileSync(`${dir}/routes.yaml`, YAML.stringify(doc));
  ({ app } = await startApp(
    {
      routes: { file: "routes.yaml" },
      api: { listen: "127.0.0.1:0", tokens: [{ token: ACME, tenant: "acme" }] },
      webhooks: { secret: SECRET, timeout_ms: 2000, allow_private: ["127.0.0.0/8"] },
      smpp: {
        listen: "127.0.0.1:0",
        handler_timeout_s: 5,
        optout: { help_reply: "Global help text" },
        accounts: [
          { system_id: "carrier-1", password: "pw-c", role: "carrier", sources: ["127.0.0.1"], country_code: "1" },
          { system_id: "app-1", password: "pw-a", role: "app", tenant: "acme", country_code: "1" },
          { system_id: "app-2", password: "pw-b", role: "app", senders: ["15125550150"], country_code: "1" },
        ],
        binds: [{ name: "smsc-r", host: "127.0.0.1", port: smsc.port, system_id: "didgate", password: "pw", mode: "transceiver" }],
      },
    },
    dir,
  ));
  await smsc.waitBound();
  await waitFor(() => app.smpp!.clients.get("smsc-r")!.isBound);
  const port = app.smpp!.address()!.port;
  carrier = await connectEsme(port);
  expect((await carrier.bind("bind_transceiver", "carrier-1", "pw-c")).command_status).toBe(0);
  appEsme = await connectEsme(port);
  expect((await appEsme.bind("bind_transceiver", "app-1", "pw-a")).command_status).toBe(0);
  senderEsme = await connectEsme(port);
  expect((await senderEsme.bind("bind_transceiver", "app-2", "pw-b")).command_status).toBe(0);
}, 30_000);

afterAll(async () => {
  await carrier?.close();
  await appEsme?.close();
  await senderEsme?.close();
  await app?.stop(1000);
  await smsc?.close();
  await new Promise<void>((r) => receiver.close(() => r()));
});

const deliver = (from: string, to: string, text: string, ton = 1) =>
  carrier.send("deliver_sm", { source_addr: from, source_addr_ton: ton, source_addr_npi: ton === 5 ? 0 : 1, destination_addr: to, dest_addr_ton: 1, dest_addr_npi: 1, short_message: text });
const appSubmit = (from: string, to: string) =>
  appEsme.send("submit_sm", { source_addr: from, source_addr_ton: 1, source_addr_npi: 1, destination_addr: to, dest_addr_ton: 1, dest_addr_npi: 1, short_message: "promo" });

async function api(path: string, body: unknown): Promise<{ status: number; body: any }> {
  const res = await fetch(`http://127.0.0.1:${app.api!.address.port}${path}`, { method: "POST", headers: { authorization: `Bearer ${ACME}`, "content-type": "application/json" }, body: JSON.stringify(body) });
  return { status: res.status, body: await res.json() };
}

async function metric(name: string, labels: string): Promise<number> {
  const text = await app.registry.metrics();
  const line = text.split("\n").find((l) => l.startsWith(`${name}{${labels}}`));
  return line === undefined ? 0 : Number(line.split(" ").pop());
}

describe("a synchronous webhook reply", () => {
  it("200 with {reply} in JSON reaches the sender from the DID", async () => {
    expect((await deliver("447700900001", "15125550100", "hello there")).command_status).toBe(0);
    expect(hitsFor("+447700900001").map((h) => h.path)).toEqual(["/reply"]);
    expect(await waitSent("447700900001")).toEqual([["15125550100", "You said: hello there"]]);
    // counted once the carrier's submit_sm_resp came back
    await waitFor(async () => (await metric("didgate_sms_replies_total", 'kind="sync",outcome="accepted"')) >= 1);
  });

  it("no reply field, a non-JSON content type, an alphanumeric sender: nothing is sent back", async () => {
    expect((await deliver("447700900002", "15125550101", "a")).command_status).toBe(0);
    expect((await deliver("447700900002", "15125550102", "b")).command_status).toBe(0);
    expect((await deliver("ACMEBANK", "15125550100", "c", 5)).command_status).toBe(0);
    expect(hits.filter((h) => h.body.text === "c").map((h) => h.body.from)).toEqual(["ACMEBANK"]);
    // a reply that is sent comes after these were decided: then none of them was sent
    expect((await deliver("447700900002", "15125550100", "d")).command_status).toBe(0);
    expect(await waitSent("447700900002")).toEqual([["15125550100", "You said: d"]]);
    expect(smsc.received.filter((p) => p.command === "submit_sm" && p.destination_addr === "ACMEBANK")).toEqual([]);
  });
});

describe("forwarding", () => {
  it("every message goes on to the forward numbers from the DID, per the template; the webhook still gets it", async () => {
    expect((await deliver("447700900003", "15125550110", "ping")).command_status).toBe(0);
    expect(await waitSent("447700900500")).toEqual([["15125550110", "Fwd +447700900003 to +15125550110: ping"]]);
    expect(await waitSent("447700900501")).toEqual([["15125550110", "Fwd +447700900003 to +15125550110: ping"]]);
    expect(hitsFor("+447700900003").map((h) => h.path)).toEqual(["/plain"]);
    await waitFor(async () => (await metric("didgate_sms_forwards_total", 'outcome="accepted"')) >= 2);
  });

  it("a route with only a forward accepts the message; a message from one of our numbers is not forwarded (no loop)", async () => {
    // +15125550140 forwards to +15125550130 and back: a forwarded message arrives with our number as sender
    expect((await deliver("15125550140", "15125550130", "looping?")).command_status).toBe(0);
    expect((await deliver("447700900004", "15125550130", "once")).command_status).toBe(0);
    expect(await waitSent("15125550140")).toEqual([["15125550130", "From +447700900004: once"]]);
  });

  it("a route with only a forward refuses a binary message (it cannot be forwarded, and would reach no one)", async () => {
    const r = await carrier.send("deliver_sm", { source_addr: "447700900012", source_addr_ton: 1, source_addr_npi: 1, destination_addr: "15125550130", dest_addr_ton: 1, dest_addr_npi: 1, data_coding: 4, short_message: Buffer.from([0xde, 0xad, 0xbe, 0xef]) });
    expect(r.command_status).toBe(STATUS.ESME_RINVDSTADR);
  });
});

describe("route keywords", () => {
  it("JOIN (any case, first word) goes to its own webhook and gets its reply; the route's webhook does not get it", async () => {
    expect((await deliver("447700900005", "15125550120", "join please")).command_status).toBe(0);
    expect(hitsFor("+447700900005").map((h) => h.path)).toEqual(["/join"]);
    expect(await waitSent("447700900005")).toEqual([["15125550120", "Welcome to the club"]]);
    expect(await metric("didgate_sms_keywords_total", 'kind="keyword"')).toBeGreaterThanOrEqual(1);
  });

  it("INFO as a route keyword answers its reply; HELP answers the configured help text; both still reach the webhook", async () => {
    expect((await deliver("447700900006", "15125550120", "info")).command_status).toBe(0);
    expect(await waitSent("447700900006")).toEqual([["15125550120", "Acme info"]]);
    expect((await deliver("447700900006", "15125550120", "Help")).command_status).toBe(0);
    expect(await waitSent("447700900006", 2)).toEqual([
      ["15125550120", "Acme info"],
      ["15125550120", "Acme help: call 555"],
    ]);
    expect(hitsFor("+447700900006").map((h) => h.path)).toEqual(["/plain", "/plain"]);
  });

  it("automatic answers to one recipient are bounded: 7 HELPs within a minute get 5 answers, all 7 reach the webhook", async () => {
    const before = await metric("didgate_sms_replies_total", 'kind="help",outcome="rate_limited"');
    // seven different spellings: the same text again would be taken for an SMSC retry (stable ids)
    for (const t of ["help", "Help", "HELP", "help!", "HELP.", "Help?", "hElp"]) expect((await deliver("447700900012", "15125550150", t)).command_status).toBe(0);
    await waitFor(() => (hitsFor("+447700900012").length >= 7 ? true : undefined), 5000);
    await waitFor(async () => ((await metric("didgate_sms_replies_total", 'kind="help",outcome="rate_limited"')) - before >= 2 ? true : undefined), 5000);
    expect(await waitSent("447700900012", 5)).toHaveLength(5);
    // another recipient is answered as before
    expect((await deliver("447700900013", "15125550150", "help")).command_status).toBe(0);
    expect(await waitSent("447700900013")).toEqual([["15125550150", "Global help text"]]);
    expect(sent("447700900012")).toHaveLength(5);
  });

  it("a route without sms.optout answers HELP with smpp.optout's text", async () => {
    expect((await deliver("447700900009", "15125550150", "help")).command_status).toBe(0);
    expect(await waitSent("447700900009")).toEqual([["15125550150", "Global help text"]]);
    expect(hitsFor("+447700900009").map((h) => h.body.keyword)).toEqual(["help"]);
  });
});

describe("opt-out", () => {
  it("STOP: confirmation sent; then the app's message is refused (SMPP 0x66, HTTP 409); START: confirmed and allowed again", async () => {
    const who = "447700900007";
    expect((await appSubmit("15125550120", who)).command_status).toBe(0);
    expect((await deliver(who, "15125550120", "STOP")).command_status).toBe(0);
    expect((await waitSent(who, 2))[1]).toEqual(["15125550120", "Acme: unsubscribed"]);
    expect(STATUS.ESME_RX_R_APPN).toBe(0x66);
    expect((await appSubmit("15125550120", who)).command_status).toBe(STATUS.ESME_RX_R_APPN);
    const r = await api("/v1/messages", { from: "+15125550120", to: `+${who}`, text: "x" });
    expect([r.status, r.body.error.code]).toEqual([409, "recipient_opted_out"]);
    // an opt-out is of one number: another of the tenant's numbers may still send
    expect((await appSubmit("15125550100", who)).command_status).toBe(0);
    // the message itself still reaches the route's webhook (the app learns of the opt-out)
    expect(hitsFor(`+${who}`).map((h) => [h.body.text, h.body.keyword])).toEqual([["STOP", "stop"]]);
    // HELP while opted out is still answered (how to come back); the opt-out stays
    expect((await deliver(who, "15125550120", "HELP")).command_status).toBe(0);
    const helped = await waitFor(() => (sent(who).filter(([s]) => s === "15125550120").length >= 3 ? sent(who).filter(([s]) => s === "15125550120") : undefined));
    expect(helped[2]![0]).toBe("15125550120");
    expect((await appSubmit("15125550120", who)).command_status).toBe(STATUS.ESME_RX_R_APPN);
    expect((await deliver(who, "15125550120", "start")).command_status).toBe(0);
    const all = await waitFor(() => (sent(who).filter(([s]) => s === "15125550120").length >= 4 ? sent(who).filter(([s]) => s === "15125550120") : undefined));
    expect(all[3]).toEqual(["15125550120", DEFAULT_OPTOUT_TEXTS.start]);
    expect((await appSubmit("15125550120", who)).command_status).toBe(0);
    expect(await metric("didgate_sms_keywords_total", 'kind="stop"')).toBeGreaterThanOrEqual(1);
    expect(await metric("didgate_sms_keywords_total", 'kind="start"')).toBeGreaterThanOrEqual(1);
  });

  it("STOP to a route without a webhook (forward only) is accepted and recorded; a sync reply to an opted-out sender is refused", async () => {
    const who = "447700900008";
    expect((await deliver(who, "15125550130", "Stop.")).command_status).toBe(0);
    expect(await app.optouts!.isOptedOut("+15125550130", `+${who}`)).toBe(true);
    // opted out of +15125550100 as well: its webhook's reply is not sent
    expect((await deliver(who, "15125550100", "unsubscribe")).command_status).toBe(0);
    expect((await deliver(who, "15125550100", "still there?")).command_status).toBe(0);
    // both webhook replies ("unsubscribe", "still there?") were refused; the two confirmations went
    await waitFor(async () => (await metric("didgate_sms_replies_total", 'kind="sync",outcome="opted_out"')) >= 2);
    await waitSent(who, 2);
    expect(sent(who).sort()).toEqual([
      ["15125550100", DEFAULT_OPTOUT_TEXTS.stop],
      ["15125550130", DEFAULT_OPTOUT_TEXTS.stop],
    ]);
  });

  it("an SMSC's late retry of an accepted START (same PDU, within the dedup window) does not undo a STOP sent since", async () => {
    const who = "447700900009";
    expect((await deliver(who, "15125550150", "START")).command_status).toBe(0);
    expect((await deliver(who, "15125550150", "STOP")).command_status).toBe(0);
    expect(await app.optouts!.isOptedOut("+15125550150", `+${who}`)).toBe(true);
    // the retry is answered as the first copy was, and changes nothing
    expect((await deliver(who, "15125550150", "START")).command_status).toBe(0);
    expect(await app.optouts!.isOptedOut("+15125550150", `+${who}`)).toBe(true);
    expect((await appSubmit("15125550150", who)).command_status).toBe(STATUS.ESME_RX_R_APPN);
    // a retry of the STOP still records the opt-out (a STOP is never ignored)
    await app.optouts!.optIn("+15125550150", `+${who}`);
    expect((await deliver(who, "15125550150", "STOP")).command_status).toBe(0);
    expect(await app.optouts!.isOptedOut("+15125550150", `+${who}`)).toBe(true);
  });

  it("a STOP whose short_message ends in a NUL terminator is an opt-out", async () => {
    const who = "447700900011";
    expect((await deliver(who, "15125550150", "STOP\u0000")).command_status).toBe(0);
    expect(await app.optouts!.isOptedOut("+15125550150", `+${who}`)).toBe(true);
  });

  it("an app sending from a listed sender written as digits is refused after a STOP to that number", async () => {
    const who = "447700900010";
    const fromListed = () => senderEsme.send("submit_sm", { source_addr: "15125550150", source_addr_ton: 1, source_addr_npi: 1, destination_addr: who, dest_addr_ton: 1, dest_addr_npi: 1, short_message: "promo" });
    expect((await fromListed()).command_status).toBe(0);
    expect((await deliver(who, "15125550150", "STOP")).command_status).toBe(0);
    expect((await fromListed()).command_status).toBe(STATUS.ESME_RX_R_APPN);
  });
});
