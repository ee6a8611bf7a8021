/**
 * Long messages to SMPP peers by `long_messages`: a 400-character text from a carrier (one
 * message_payload) forwarded to an app account set to `udh` arrives as 3 parts with a concatenation
 * UDH, to one set to `sar` as 3 parts with SAR TLVs, to one left at the default as one
 * message_payload, and to an outbound bind set to `udh` as 3 submit_sm parts (real peers: npm smpp).
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Didgate } from "../../src/app.js";
import { startApp, tempDir, waitFor, writeRoutes } from "../helpers/app.js";
import { connectEsme, startSmsc, type SmppPdu, type TestEsme, type TestSmsc } from "../helpers/smsc.js";

let app: Didgate;
let carrier: TestEsme;
let udhApp: TestEsme;
let sarApp: TestEsme;
let plainApp: TestEsme;
let smsc: TestSmsc;

const TEXT = Array.from({ length: 400 }, (_, i) => String.fromCharCode(65 + (i % 26))).join("");

beforeAll(async () => {
  smsc = await startSmsc();
  const dir = tempDir();
  writeRoutes(dir, {
    "+15125560001": { sms: { smpp: "app-udh" } },
    "+15125560002": { sms: { smpp: "app-sar" } },
    "+15125560003": { sms: { smpp: "app-plain" } },
    "+15125560004": { sms: { smpp: "smsc-b" } },
  });
  ({ app } = await startApp(
    {
      routes: { file: "routes.yaml" },
      smpp: {
        listen: "127.0.0.1:0",
        handler_timeout_s: 3,
        accounts: [
          { system_id: "carrier", password: "pw-c", role: "carrier", country_code: "1" },
          { system_id: "app-udh", password: "pw-u", role: "app", long_messages: "udh" },
          { system_id: "app-sar", password: "pw-s", role: "app", long_messages: "sar" },
          { system_id: "app-plain", password: "pw-p", role: "app" },
        ],
        binds: [{ name: "smsc-b", host: "127.0.0.1", port: smsc.port, system_id: "didgate", password: "pw", mode: "transceiver", long_messages: "udh" }],
      },
    },
    dir,
  ));
  const port = app.smpp!.address()!.port;
  carrier = await connectEsme(port);
  expect((await carrier.bind("bind_transceiver", "carrier", "pw-c")).command_status).toBe(0);
  udhApp = await connectEsme(port);
  expect((await udhApp.bind("bind_receiver", "app-udh", "pw-u")).command_status).toBe(0);
  sarApp = await connectEsme(port);
  expect((await sarApp.bind("bind_receiver", "app-sar", "pw-s")).command_status).toBe(0);
  plainApp = await connectEsme(port);
  expect((await plainApp.bind("bind_receiver", "app-plain", "pw-p")).command_status).toBe(0);
  await smsc.waitBound();
});

afterAll(async () => {
  for (const e of [carrier, udhApp, sarApp, plainApp]) await e?.close();
  await app?.stop(1000);
  await smsc?.close();
});

const send = (to: string) =>
  carrier.send("submit_sm", { source_addr: "447700900123", source_addr_ton: 1, source_addr_npi: 1, destination_addr: to, message_payload: Buffer.from(TEXT) });

const delivered = (e: TestEsme) => e.received.filter((p) => p.command === "deliver_sm");

/** [reference, total, seq, text] of a part with an 8-bit concatenation UDH. */
function udhOf(p: SmppPdu): [number, number, number, string] {
  const sm = p.short_message as { udh?: Buffer[]; message: string | Buffer };
  // the npm package splits the UDH off when esm_class has UDHI: udh is a list of IEs
  const ie = sm.udh![0]!;
  expect([ie[0], ie[1]]).toEqual([0x00, 0x03]);
  return [ie[2]!, ie[3]!, ie[4]!, String(sm.message)];
}

describe("long messages to SMPP peers", () => {
  it("udh: 400 characters arrive as 3 parts with one 8-bit reference, seq 1..3", async () => {
    expect((await send("15125560001")).command_status).toBe(0);
    const parts = await waitFor(() => (delivered(udhApp).length >= 3 ? delivered(udhApp) : undefined));
    expect(parts).toHaveLength(3);
    const u = parts.map(udhOf);
    expect(new Set(u.map((x) => x[0])).size).toBe(1);
    expect(u.map((x) => [x[1], x[2]])).toEqual([[3, 1], [3, 2], [3, 3]]);
    for (const p of parts) expect((p.esm_class as number) & 0x40).toBe(0x40);
    expect(u.map((x) => x[3]).join("")).toBe(TEXT);
    expect(u.map((x) => x[3].length)).toEqual([153, 153, 94]);
  });

  it("sar: 3 parts with sar_msg_ref_num, sar_total_segments, sar_segment_seqnum and no UDH", async () => {
    expect((await send("15125560002")).command_status).toBe(0);
    const parts = await waitFor(() => (delivered(sarApp).length >= 3 ? delivered(sarApp) : undefined));
    expect(parts.map((p) => [p.sar_total_segments, p.sar_segment_seqnum])).toEqual([[3, 1], [3, 2], [3, 3]]);
    expect(new Set(parts.map((p) => p.sar_msg_ref_num)).size).toBe(1);
    for (const p of parts) expect((p.esm_class as number) & 0x40).toBe(0);
    expect(parts.map((p) => String((p.short_message as { message: string }).message)).join("")).toBe(TEXT);
  });

  it("default (payload): one deliver_sm with message_payload", async () => {
    expect((await send("15125560003")).command_status).toBe(0);
    const parts = await waitFor(() => (delivered(plainApp).length >= 1 ? delivered(plainApp) : undefined));
    await new Promise((r) => setTimeout(r, 100));
    expect(delivered(plainApp)).toHaveLength(1);
    expect(String((parts[0]!.message_payload as { message: string }).message)).toBe(TEXT);
  });

  it("an outbound bind set to udh gets 3 submit_sm parts", async () => {
    expect((await send("15125560004")).command_status).toBe(0);
    const parts = await waitFor(() => {
      const s = smsc.received.filter((p) => p.command === "submit_sm");
      return s.length >= 3 ? s : undefined;
    });
    expect(parts.map(udhOf).map((x) => [x[1], x[2]])).toEqual([[3, 1], [3, 2], [3, 3]]);
    expect(parts.map(udhOf).map((x) => x[3]).join("")).toBe(TEXT);
  });
});
