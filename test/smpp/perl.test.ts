/**
 * A peer that shares no code with didgate or the npm smpp package: Perl Net::SMPP binds to
 * didgate's server over loopback and sends deliver_sm.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { execFile } from "node:child_process";
import { fileURLToPath } from "node:url";
import pino from "pino";
import { Registry } from "prom-client";
import { SmppService } from "../../src/smpp/service.js";
import type { InboundSms, Receipt } from "../../src/smpp/types.js";

const script = fileURLToPath(new URL("./net-smpp-peer.pl", import.meta.url).href.replace("/dist/", "/"));

function runPeer(port: number, sid: string, pw: string): Promise<string[]> {
  return new Promise((resolve, reject) => {
    execFile("perl", [script, "127.0.0.1", String(port), sid, pw], { timeout: 15000 }, (err, stdout, stderr) => {
      if (err && !stdout) reject(new Error(`perl peer failed: ${err.message} ${stderr}`));
      else resolve(stdout.trim().split("\n"));
    });
  });
}

describe("Perl Net::SMPP carrier", () => {
  let edge: SmppService;
  const messages: InboundSms[] = [];
  const receipts: Receipt[] = [];
  beforeAll(async () => {
    edge = new SmppService({
      config: { listen: "127.0.0.1:0", accounts: [{ system_id: "perl", password: "pl", role: "carrier", sources: ["127.0.0.1"] }] },
      logger: pino({ level: "silent" }),
      registry: new Registry(),
      onMessage: async (m) => {
        messages.push(m);
        return m.destination.addr === "0" ? { status: "invalid_destination" } : { status: "accepted" };
      },
      onReceipt: (r) => {
        receipts.push(r);
      },
    });
    await edge.start();
  });
  afterAll(() => edge.close());

  it("binds, sends deliver_sm of every kind, gets the right answers, unbinds", async () => {
    const out = await runPeer(edge.address()!.port, "perl", "pl");
    expect(out).toEqual([
      "bind status=0",
      "gsm status=0",
      "ucs2 status=0",
      "packed status=0",
      "part2 status=0",
      "part1 status=0",
      "receipt status=0",
      "unrouted status=11",
      "unbind status=0",
    ]);
    expect(messages.map((m) => [m.text, m.encoding, m.parts])).toEqual([
      ["Hello from Net::SMPP", "gsm7", 1],
      ["perl 😀 é", "ucs2", 1],
      ["Packed GSM septets", "gsm7", 1],
      ["hello world", "gsm7", 2],
      ["nobody", "gsm7", 1],
    ]);
    expect(receipts).toHaveLength(1);
    expect(receipts[0]).toMatchObject({ message_id: "42", stat: "DELIVRD", peer: "perl" });
  });

  it("is refused with a wrong password", async () => {
    const out = await runPeer(edge.address()!.port, "perl", "nope");
    expect(out).toEqual(["bind status=13"]);
  });
});
