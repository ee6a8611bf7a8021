/**
 * Stable webhook ids across SMSC retries, end to end in direct mode: a carrier ESME (npm smpp)
 * sends a deliver_sm, the real HTTP receiver answers too late (the PDU gets the temporary status),
 * the carrier sends the same PDU again as its retry, and the receiver sees the same webhook-id on
 * both deliveries. A further copy after the accepted one is answered ESME_ROK without a delivery;
 * a different text gets another id; counted in didgate_sms_duplicates_total.
 */
import { createServer, type IncomingMessage, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Didgate } from "../../src/app.js";
import { startApp, tempDir, waitFor, writeRoutes } from "../helpers/app.js";
import { connectEsme, type TestEsme } from "../helpers/smsc.js";

interface Hit {
  headers: IncomingMessage["headers"];
  body: { id: string; text: string };
}

let receiver: Server;
let hits: Hit[] = [];
/** Milliseconds the receiver holds its answer (longer than didgate's wait: the PDU times out). */
let holdMs = 0;
let app: Didgate;
let admin: string;
let carrier: TestEsme;

beforeAll(async () => {
  receiver = createServer((req, res) => {
    let body = "";
    req.on("data", (d: Buffer) => (body += d.toString()));
    req.on("end", () => {
      hits.push({ headers: req.headers, body: JSON.parse(body) });
      const hold = holdMs;
      if (hold > 0) setTimeout(() => res.writeHead(204).end(), hold);
      else res.writeHead(204).end();
    });
  });
  await new Promise<void>((r) => receiver.listen(0, "127.0.0.1", r));
  const hook = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}`;
  const dir = tempDir();
  writeRoutes(dir, { "+15125550100": { tenant: "acme", sms: { webhook: `${hook}/sms` } } });
  ({ app, admin } = await startApp(
    {
      routes: { file: "routes.yaml" },
      webhooks: { timeout_ms: 700, allow_private: ["127.0.0.0/8"] },
      smpp: {
        listen: "127.0.0.1:0",
        handler_timeout_s: 2,
        dedup_window_s: 300,
        accounts: [{ system_id: "smsc-a", password: "secret1", role: "carrier", sources: ["127.0.0.1"], country_code: "1" }],
      },
    },
    dir,
  ));
  carrier = await connectEsme(app.smpp!.address()!.port);
  expect((await carrier.bind("bind_transceiver", "smsc-a", "secret1")).command_status).toBe(0);
});

afterAll(async () => {
  await carrier?.close();
  await app?.stop(1000);
  await new Promise<void>((r) => receiver.close(() => r()));
});

const deliver = (text: string) =>
  carrier.send("deliver_sm", { source_addr: "447700900123", source_addr_ton: 1, source_addr_npi: 1, destination_addr: "5125550100", short_message: text });

const metric = async (action: string): Promise<number> => {
  const m = await (await fetch(`${admin}/metrics`)).text();
  const line = m.split("\n").find((l) => l.startsWith(`didgate_sms_duplicates_total{peer="smsc-a",action="${action}"}`));
  return line === undefined ? 0 : Number(line.split(" ").at(-1));
};

describe("stable webhook ids across SMSC retries (direct mode)", () => {
  it("the SMSC's retry after a timeout is delivered with the same webhook-id; a later copy is not delivered again", async () => {
    hits = [];
    holdMs = 1500; // beyond webhooks.timeout_ms: didgate answers the temporary status
    const first = await deliver("see you at 8");
    expect(first.command_status).toBe(0x64);
    expect(hits).toHaveLength(1);
    holdMs = 0;
    // The SMSC retries the PDU it got no success for.
    const retry = await deliver("see you at 8");
    expect(retry.command_status).toBe(0);
    expect(hits).toHaveLength(2);
    const [a, b] = hits;
    expect(a!.body.text).toBe("see you at 8");
    expect(b!.headers["webhook-id"]).toBe(a!.headers["webhook-id"]);
    expect(b!.body.id).toBe(a!.body.id);
    expect(await metric("redelivered")).toBe(1);

    // Its answer lost, the SMSC sends it once more: ESME_ROK, no second delivery to the receiver.
    const again = await deliver("see you at 8");
    expect(again.command_status).toBe(0);
    expect(await metric("suppressed")).toBe(1);
    expect(hits).toHaveLength(2);

    // Another text from the same sender is another message.
    const other = await deliver("see you at 9");
    expect(other.command_status).toBe(0);
    await waitFor(() => hits.length === 3 || undefined);
    expect(hits[2]!.body.text).toBe("see you at 9");
    expect(hits[2]!.headers["webhook-id"]).not.toBe(a!.headers["webhook-id"]);
  });
});
