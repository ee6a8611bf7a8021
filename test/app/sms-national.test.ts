/**
 * National language shift tables (3GPP TS 23.038) end to end with real peers (npm smpp, which
 * encodes and decodes the Turkish, Spanish and Portuguese tables itself): a carrier sends a
 * Turkish text in GSM 7-bit with the locking shift IE; didgate decodes it, and forwards it to an
 * app account whose `national_language` allows Turkish as one 7-bit part with the IE (the peer
 * decodes the same text), and to one without the setting as UCS-2, in three parts.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Didgate } from "../../src/app.js";
import { chooseNational, ucs2Parts } from "../../src/smpp/national.js";
import { startApp, tempDir, waitFor, writeRoutes } from "../helpers/app.js";
import { connectEsme, type SmppPdu, type TestEsme } from "../helpers/smsc.js";

let app: Didgate;
let carrier: TestEsme;
let trApp: TestEsme;
let plainApp: TestEsme;

// 140 characters, all in the Turkish locking shift table, several not in the default alphabet.
const TEXT = "Şişli'de buluşalım mı? Ağaç İstanbul'da çok güzel. ".repeat(3).slice(0, 140);

beforeAll(async () => {
  const dir = tempDir();
  writeRoutes(dir, {
    "+15125560011": { sms: { smpp: "app-tr" } },
    "+15125560012": { sms: { smpp: "app-plain" } },
  });
  ({ app } = await startApp(
    {
      routes: { file: "routes.yaml" },
      smpp: {
        listen: "127.0.0.1:0",
        handler_timeout_s: 3,
        accounts: [
          { system_id: "carrier", password: "pw-c", role: "carrier", country_code: "1" },
          { system_id: "app-tr", password: "pw-t", role: "app", long_messages: "udh", national_language: ["tr"] },
          { system_id: "app-plain", password: "pw-p", role: "app", long_messages: "udh" },
        ],
      },
    },
    dir,
  ));
  const port = app.smpp!.address()!.port;
  carrier = await connectEsme(port);
  expect((await carrier.bind("bind_transceiver", "carrier", "pw-c")).command_status).toBe(0);
  trApp = await connectEsme(port);
  expect((await trApp.bind("bind_receiver", "app-tr", "pw-t")).command_status).toBe(0);
  plainApp = await connectEsme(port);
  expect((await plainApp.bind("bind_receiver", "app-plain", "pw-p")).command_status).toBe(0);
});

afterAll(async () => {
  for (const e of [carrier, trApp, plainApp]) await e?.close();
  await app?.stop(1000);
});

// The carrier's PDU: GSM 7-bit with the Turkish locking shift IE (0x25, length 1, language 1) in its
// UDH; the npm package encodes the text through the table itself (and marks it data_coding 1).
const send = (to: string) =>
  carrier.send("deliver_sm", { source_addr: "905321234567", source_addr_ton: 1, source_addr_npi: 1, destination_addr: to, short_message: { udh: Buffer.from([0x03, 0x25, 0x01, 0x01]), message: TEXT } });

const delivered = (e: TestEsme) => e.received.filter((p) => p.command === "deliver_sm");
const textOf = (p: SmppPdu) => String((p.short_message as { message: string }).message);

describe("national language shift tables", () => {
  it("the tables save parts for this text: Turkish 7-bit fits one part, UCS-2 needs three", () => {
    expect(chooseNational(TEXT, [1])?.parts).toBe(1);
    expect(ucs2Parts(TEXT.length)).toBe(3);
  });

  it("decodes a Turkish locking-shift text and sends it to an app that allows Turkish as one 7-bit part", async () => {
    expect((await send("15125560011")).command_status).toBe(0);
    const got = await waitFor(() => (delivered(trApp).length >= 1 ? delivered(trApp) : undefined));
    await new Promise((r) => setTimeout(r, 200));
    expect(delivered(trApp)).toHaveLength(1);
    const p = got[0]!;
    expect(p.data_coding).toBe(0);
    expect((p.esm_class as number) & 0x40).toBe(0x40);
    const udh = (p.short_message as { udh: Buffer[] }).udh.map((ie) => [...ie]);
    expect(udh).toContainEqual([0x25, 0x01, 0x01]);
    expect(textOf(p)).toBe(TEXT);
    expect(await app.registry.getSingleMetricAsString("didgate_smpp_national_parts_saved_total")).toMatch(/peer="app-tr"\} 2/);
  });

  it("an app without national_language gets the same text as UCS-2 in three parts", async () => {
    expect((await send("15125560012")).command_status).toBe(0);
    const parts = await waitFor(() => (delivered(plainApp).length >= 3 ? delivered(plainApp) : undefined));
    expect(parts.map((p) => p.data_coding)).toEqual([8, 8, 8]);
    expect(parts.map(textOf).join("")).toBe(TEXT);
  });
});
