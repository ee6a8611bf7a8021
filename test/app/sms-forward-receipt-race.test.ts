/**
 * A carrier's message forwarded to an outbound bind (route sms.smpp naming a bind,
 * src/edge/sms-forward.ts) whose SMSC writes submit_sm_resp and the delivery receipt in one buffer
 * (an SMSC that delivers at once): the receipt is read before the forwarder has seen its answer,
 * and must still be matched to the message and relayed to the submitter.
 */
import { afterAll, beforeAll, expect, it } from "vitest";
import type { Didgate } from "../../src/app.js";
import { Pdu, encodePdu, tlvCString, tlvU8 } from "../../src/smpp/codec.js";
import { CMD, TLV } from "../../src/smpp/constants.js";
import { startApp, tempDir, waitFor, writeRoutes } from "../helpers/app.js";
import { connectEsme, startRawSmsc, type SmppPdu, type TestEsme } from "../helpers/smsc.js";

let app: Didgate;
let carrier: TestEsme;
let raw: Awaited<ReturnType<typeof startRawSmsc>>;
let seq = 100;
let bound = false;
let submits = 0;

const receiptsOf = (e: TestEsme) => e.received.filter((p) => p.command === "deliver_sm" && ((p.esm_class as number) & 0x3c) === 0x04);
const text = (p: SmppPdu): string => String((p.short_message as { message: string | Buffer }).message);
const cstr = (v: unknown): string => String(v).replace(/\0+$/, "");

beforeAll(async () => {
  // a raw SMSC: submit_sm_resp and the DELIVRD receipt for it written as one buffer
  raw = await startRawSmsc((p, sock) => {
    if (p.command_id === CMD.bind_transceiver) {
      const resp = new Pdu(CMD.bind_transceiver_resp, p.sequence_number);
      resp.system_id = "rawsmsc";
      sock.write(encodePdu(resp));
      bound = true;
    } else if (p.command_id === CMD.enquire_link) {
      sock.write(encodePdu(new Pdu(CMD.enquire_link_resp, p.sequence_number)));
    } else if (p.command_id === CMD.submit_sm) {
      const id = "x" + ++submits;
      const resp = new Pdu(CMD.submit_sm_resp, p.sequence_number);
      resp.message_id = id;
      const dr = new Pdu(CMD.deliver_sm, ++seq);
      dr.source_addr = p.destination_addr;
      dr.destination_addr = p.source_addr;
      dr.esm_class = 0x04;
      dr.short_message = Buffer.from(`id:${id} sub:001 dlvrd:001 submit date:2612041000 done date:2612041001 stat:DELIVRD err:000 text:hello`);
      dr.tlvs = [tlvCString(TLV.receipted_message_id, id), tlvU8(TLV.message_state, 2)];
      sock.write(Buffer.concat([encodePdu(resp), encodePdu(dr)]));
    }
  });
  const dir = tempDir();
  writeRoutes(dir, { "+15125550300": { sms: { smpp: "smsc-raw" } } });
  ({ app } = await startApp(
    {
      routes: { file: "routes.yaml" },
      smpp: {
        listen: "127.0.0.1:0",
        handler_timeout_s: 3,
        accounts: [{ system_id: "carrier", password: "pw-c", role: "carrier", country_code: "1" }],
        binds: [{ name: "smsc-raw", host: "127.0.0.1", port: raw.port, system_id: "didgate", password: "pw", mode: "transceiver" }],
      },
    },
    dir,
  ));
  carrier = await connectEsme(app.smpp!.address()!.port);
  expect((await carrier.bind("bind_transceiver", "carrier", "pw-c")).command_status).toBe(0);
  await waitFor(() => bound && app.smpp!.clients.get("smsc-raw")!.isBound);
}, 30_000);

afterAll(async () => {
  await carrier?.close();
  await app?.stop(1000);
  await raw?.close();
});

it("relays the carrier's receipt to the submitter when it comes in the same read as submit_sm_resp", async () => {
  const r = await carrier.send("submit_sm", { source_addr: "447700900123", source_addr_ton: 1, source_addr_npi: 1, destination_addr: "15125550300", short_message: "hello receipts", registered_delivery: 1 });
  expect(r.command_status).toBe(0);
  const id = cstr(r.message_id);
  await waitFor(() => submits === 1 || undefined);
  const rc = await waitFor(() => receiptsOf(carrier).at(-1), 4000);
  expect(text(rc)).toMatch(new RegExp(`^id:${id} .*stat:DELIVRD`));
});
