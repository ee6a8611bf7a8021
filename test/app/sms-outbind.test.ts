/**
 * Outbind end to end: an SMSC built on the npm smpp package connects to didgate's SMPP listener and
 * sends outbind with the credentials of a bind configured `outbind: true`; didgate answers on that
 * connection with bind_receiver (the bind's own system_id and password), and the session serves as
 * that bind: a deliver_sm reaches the route's webhook (a real HTTP receiver) and the bind shows as
 * bound. A wrong password, an unknown system_id and an address outside outbind_sources get the
 * connection closed with no PDU at all; each is counted by outcome.
 */
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import smpp from "smpp";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Didgate } from "../../src/app.js";
import { startApp, tempDir, waitFor, writeRoutes } from "../helpers/app.js";
import type { SmppPdu } from "../helpers/smsc.js";

interface Hit {
  body: { text: string; smpp: { peer: string } };
}

let receiver: Server;
let hits: Hit[] = [];
let app: Didgate;
let admin: string;
let port: number;
const peers: OutbindingSmsc[] = [];

interface OutbindingSmsc {
  session: any;
  received: SmppPdu[];
  closed: Promise<void>;
  isClosed: () => boolean;
}

/** An SMSC that connects to didgate and sends outbind; it accepts any bind_receiver that follows. */
function outbind(system_id: string, password: string, localAddress = "127.0.0.1"): Promise<OutbindingSmsc> {
  return new Promise((resolve, reject) => {
    const received: SmppPdu[] = [];
    let closedFlag = false;
    let closedResolve!: () => void;
    const closed = new Promise<void>((r) => (closedResolve = r));
    const session = smpp.connect({ host: "127.0.0.1", port, localAddress });
    session.on("error", (e: Error) => reject(e));
    session.on("close", () => {
      closedFlag = true;
      closedResolve();
    });
    session.on("pdu", (pdu: SmppPdu) => {
      received.push(pdu);
      if (pdu.command === "bind_receiver") session.send(pdu.response({ system_id: "testsmsc" }));
      if (pdu.command === "enquire_link" || pdu.command === "unbind") session.send(pdu.response());
    });
    session.on("connect", () => {
      session.outbind({ system_id, password });
      const peer = { session, received, closed, isClosed: () => closedFlag };
      peers.push(peer);
      resolve(peer);
    });
  });
}

const metrics = async (): Promise<string> => (await fetch(`${admin}/metrics`)).text();
const count = (m: string, outcome: string): number => {
  const line = m.split("\n").find((l) => l.startsWith(`didgate_smpp_outbinds_total{outcome="${outcome}"}`));
  return line === undefined ? 0 : Number(line.split(" ").at(-1));
};

beforeAll(async () => {
  receiver = createServer((req, res) => {
    let body = "";
    req.on("data", (d: Buffer) => (body += d.toString()));
    req.on("end", () => {
      hits.push({ body: JSON.parse(body) });
      res.writeHead(204).end();
    });
  });
  await new Promise<void>((r) => receiver.listen(0, "127.0.0.1", r));
  const hook = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}`;
  const dir = tempDir();
  writeRoutes(dir, { "+15125550100": { tenant: "acme", sms: { webhook: `${hook}/sms` } } });
  ({ app, admin } = await startApp(
    {
      routes: { file: "routes.yaml" },
      webhooks: { timeout_ms: 2000, allow_private: ["127.0.0.0/8"] },
      smpp: {
        listen: "127.0.0.1:0",
        binds: [{ name: "smsc-o", system_id: "didgate1", password: "pw1", outbind: true, outbind_sources: ["127.0.0.1"], country_code: "1" }],
      },
    },
    dir,
  ));
  port = app.smpp!.address()!.port;
});

afterAll(async () => {
  for (const p of peers) p.session.destroy();
  await app?.stop(1000);
  await new Promise<void>((r) => receiver.close(() => r()));
});

describe("outbind", () => {
  it("an SMSC's outbind gets bind_receiver on the same connection; its deliver_sm reaches the webhook", async () => {
    expect(app.smpp!.clients.get("smsc-o")!.state).toBe("waiting");
    const smsc = await outbind("didgate1", "pw1");
    const bind = await waitFor(() => smsc.received.find((p) => p.command === "bind_receiver"));
    expect(bind).toMatchObject({ system_id: "didgate1", password: "pw1" });
    await waitFor(() => app.smpp!.isBound("smsc-o") || undefined);

    hits = [];
    const resp = await new Promise<SmppPdu>((r) =>
      smsc.session.deliver_sm({ source_addr: "447700900123", source_addr_ton: 1, source_addr_npi: 1, destination_addr: "5125550100", short_message: "via outbind" }, r),
    );
    expect(resp.command_status).toBe(0);
    expect(hits).toHaveLength(1);
    expect(hits[0]!.body).toMatchObject({ text: "via outbind", smpp: { peer: "smsc-o" } });

    const m = await metrics();
    expect(count(m, "accepted")).toBe(1);
    expect(m).toMatch(/didgate_smpp_bind_state\{peer="smsc-o",side="client"\} 1/);
    expect(m).toMatch(/didgate_sms_inbound_total\{peer="smsc-o",outcome="accepted"\} 1/);
    // A link set up by outbind is a receiver: nothing is submitted through it.
    const sent = await app.smpp!.submit("smsc-o", { source: { addr: "15125550100", ton: 1, npi: 1 }, destination: { addr: "447700900123", ton: 1, npi: 1 }, text: "no" });
    expect(sent).toMatchObject({ outcome: "temporary", error: "receiver_bind" });
    expect(smsc.received.some((p) => p.command === "submit_sm")).toBe(false);
    const status = (await (await fetch(`${admin}/v1/status`)).json()) as { smpp: { binds: { name: string; state: string }[] } };
    expect(status.smpp.binds).toEqual(expect.arrayContaining([expect.objectContaining({ name: "smsc-o", state: "bound" })]));
  });

  it("a new outbind replaces the bind's link; when the SMSC leaves the bind waits for the next one", async () => {
    const first = peers[0]!;
    const second = await outbind("didgate1", "pw1");
    await waitFor(() => second.received.find((p) => p.command === "bind_receiver"));
    await first.closed;
    await waitFor(() => app.smpp!.isBound("smsc-o") || undefined);
    second.session.destroy();
    await waitFor(() => app.smpp!.clients.get("smsc-o")!.state === "waiting" || undefined);
  });

  it("wrong password, unknown system_id, an address outside outbind_sources: closed, no PDU, counted", async () => {
    const before = await metrics();
    const wrong = await outbind("didgate1", "nope");
    const unknown = await outbind("nobody", "pw1");
    const elsewhere = await outbind("didgate1", "pw1", "127.0.0.2");
    await Promise.all([wrong.closed, unknown.closed, elsewhere.closed]);
    for (const p of [wrong, unknown, elsewhere]) expect(p.received).toEqual([]);
    expect(app.smpp!.isBound("smsc-o")).toBe(false);
    const m = await metrics();
    expect(count(m, "bad_password") - count(before, "bad_password")).toBe(1);
    expect(count(m, "unknown_system_id") - count(before, "unknown_system_id")).toBe(1);
    expect(count(m, "source_not_allowed") - count(before, "source_not_allowed")).toBe(1);
    expect(count(m, "accepted")).toBe(count(before, "accepted"));
  });

  it("repeated wrong passwords lock the address out: then even the right one is closed", async () => {
    // smpp.lockout default: 5 failures within 60 s (one already counted above).
    for (let i = 0; i < 4; i++) await (await outbind("didgate1", "nope")).closed;
    const right = await outbind("didgate1", "pw1");
    await right.closed;
    expect(right.received).toEqual([]);
    expect(count(await metrics(), "locked_out")).toBe(1);
    expect(app.smpp!.isBound("smsc-o")).toBe(false);
  });
});
