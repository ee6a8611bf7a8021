/**
 * SMS end to end through a whole didgate (direct mode, no Redis): a carrier ESME (npm smpp) binds
 * to didgate's SMPP server and sends deliver_sm; routed messages reach a real HTTP receiver as
 * signed webhooks or an app ESME bound to didgate; unrouted and gone numbers get ESME_RINVDSTADR;
 * a receiver that fails makes the PDU answer the temporary status.
 */
import { createServer, type IncomingMessage, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Didgate } from "../../src/app.js";
import { verifyWebhook } from "../../src/delivery/webhook.js";
import { startApp, tempDir, waitFor, writeRoutes } from "../helpers/app.js";
import { connectEsme, type TestEsme } from "../helpers/smsc.js";

const SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

interface Hit {
  path: string;
  headers: IncomingMessage["headers"];
  body: string;
}

let receiver: Server;
let hits: Hit[] = [];
let receiverStatus = 204;
let app: Didgate;
let admin: string;
let carrier: TestEsme;
let appEsme: TestEsme;

beforeAll(async () => {
  receiver = createServer((req, res) => {
    let body = "";
    req.on("data", (d: Buffer) => (body += d.toString()));
    req.on("end", () => {
      hits.push({ path: req.url ?? "", headers: req.headers, body });
      res.writeHead(receiverStatus).end();
    });
  });
  await new Promise<void>((r) => receiver.listen(0, "127.0.0.1", r));
  const hook = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}`;
  const dir = tempDir();
  writeRoutes(dir, {
    "+15125550100": { tenant: "acme", sms: { webhook: `${hook}/sms/acme` } },
    "+1512556*": { tenant: "apps", sms: { smpp: "app-1" } },
    "+15125550150": { state: "quarantine", sms: { webhook: `${hook}/old-holder` } },
    "+15125550170": { voice: { targets: ["sip:a@127.0.0.1"] } },
  });
  ({ app, admin } = await startApp(
    {
      routes: { file: "routes.yaml" },
      webhooks: { secret: SECRET, timeout_ms: 1000, allow_private: ["127.0.0.0/8"] },
      smpp: {
        listen: "127.0.0.1:0",
        handler_timeout_s: 2,
        accounts: [
          { system_id: "smsc-a", password: "secret1", role: "carrier", sources: ["127.0.0.1"], country_code: "1" },
          { system_id: "app-1", password: "secret2", role: "app", sources: ["127.0.0.1"] },
        ],
      },
    },
    dir,
  ));
  const port = app.smpp!.address()!.port;
  carrier = await connectEsme(port);
  expect((await carrier.bind("bind_transceiver", "smsc-a", "secret1")).command_status).toBe(0);
  appEsme = await connectEsme(port);
  expect((await appEsme.bind("bind_receiver", "app-1", "secret2")).command_status).toBe(0);
});

afterAll(async () => {
  await carrier?.close();
  await appEsme?.close();
  await app?.stop(1000);
  await new Promise<void>((r) => receiver.close(() => r()));
});

const deliver = (to: string, text: string, extra: Record<string, unknown> = {}) =>
  carrier.send("deliver_sm", { source_addr: "447700900123", source_addr_ton: 1, source_addr_npi: 1, destination_addr: to, short_message: text, ...extra });

describe("SMS through didgate", () => {
  it("a national DID is normalised, routed and delivered as a signed webhook before ESME_ROK", async () => {
    hits = [];
    // GSM 03.38 unpacked septets, with the extension table's [ ] € (ESC 0x1B + code).
    const gsm = Buffer.from([...Buffer.from("Hello "), 0x1b, 0x3c, ...Buffer.from("world"), 0x1b, 0x3e, 0x20, 0x1b, 0x65, 0x35]);
    const resp = await deliver("5125550100", "", { data_coding: 0, short_message: gsm });
    expect(resp.command_status).toBe(0);
    // Direct mode: the receiver already has it when the PDU is answered.
    expect(hits).toHaveLength(1);
    const h = hits[0]!;
    expect(h.path).toBe("/sms/acme");
    expect(h.headers["content-type"]).toContain("application/json");
    expect(verifyWebhook(SECRET, h.headers as Record<string, string>, h.body)).toBe(true);
    const body = JSON.parse(h.body);
    expect(body).toMatchObject({ type: "message.received", from: "+447700900123", to: "+15125550100", text: "Hello [world] €5", encoding: "gsm7", parts: 1, tenant: "acme", smpp: { peer: "smsc-a" } });
    expect(h.headers["webhook-id"]).toBe(body.id);
  });

  it("no route, an sms-less route and a quarantined number get ESME_RINVDSTADR", async () => {
    hits = [];
    expect((await deliver("+4930123456", "x")).command_status).toBe(0x0b);
    expect((await deliver("5125550150", "x")).command_status).toBe(0x0b);
    expect((await deliver("5125550170", "x")).command_status).toBe(0x0b);
    expect(hits).toHaveLength(0);
    const m = await (await fetch(`${admin}/metrics`)).text();
    expect(m).toMatch(/didgate_sms_inbound_total\{peer="smsc-a",outcome="gone"\} 1/);
    expect(m).toMatch(/didgate_sms_inbound_total\{peer="smsc-a",outcome="no_route"\} 1/);
  });

  it("a receiver failure answers the temporary status; the SMSC's retry succeeds once it is up", async () => {
    hits = [];
    receiverStatus = 503;
    const first = await deliver("5125550100", "retry me");
    expect(first.command_status).toBe(0x64);
    receiverStatus = 200;
    const second = await deliver("5125550100", "retry me");
    expect(second.command_status).toBe(0);
    const bodies = hits.map((h) => JSON.parse(h.body).text);
    expect(bodies.filter((t) => t === "retry me").length).toBeGreaterThanOrEqual(2);
    expect(hits.at(-1)!.headers).toBeDefined();
  });

  it("a route to an app ESME bound to didgate forwards the message as deliver_sm", async () => {
    const before = appEsme.received.filter((p) => p.command === "deliver_sm").length;
    const resp = await deliver("+15125560042", "to the app", { data_coding: 8, short_message: Buffer.from("\u0000t\u0000o\u0000 \u0000a\u0000p\u0000p\u00d8\u003d\u00de\u0000", "latin1") });
    expect(resp.command_status).toBe(0);
    const got = await waitFor(() => {
      const d = appEsme.received.filter((p) => p.command === "deliver_sm");
      return d.length > before ? d.at(-1) : undefined;
    });
    expect(got.destination_addr).toBe("15125560042");
    expect(got.source_addr).toBe("447700900123");
  });

  it("a delivery receipt goes to the route's webhook as message.receipt", async () => {
    hits = [];
    const resp = await carrier.send("deliver_sm", {
      source_addr: "447700900123",
      destination_addr: "15125550100",
      esm_class: 0x04,
      short_message: "id:ABC123 sub:001 dlvrd:001 submit date:2611221000 done date:2611221001 stat:DELIVRD err:000 text:hi",
    });
    expect(resp.command_status).toBe(0);
    const h = await waitFor(() => hits.find((x) => JSON.parse(x.body).type === "message.receipt"));
    expect(JSON.parse(h.body)).toMatchObject({ type: "message.receipt", receipted_message_id: "ABC123", status: "delivered", tenant: "acme" });
  });
});
