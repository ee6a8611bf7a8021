/** The dedup table behind stable message ids: the window, what makes two PDUs one message, the bound. */
import { describe, expect, it } from "vitest";
import { MessageIds, messageKey } from "../../src/edge/sms-dedup.js";
import type { InboundSms } from "../../src/smpp/types.js";

let n = 0;
function sms(over: Partial<InboundSms> = {}): InboundSms {
  return {
    peer: "smsc-a",
    peer_kind: "account",
    command: "deliver_sm",
    source: { addr: "447700900123", ton: 1, npi: 1 },
    destination: { addr: "5125550100", ton: 0, npi: 1 },
    text: "hello",
    encoding: "gsm7",
    data_coding: 0,
    dcs: {} as InboundSms["dcs"],
    esm_class: 0,
    protocol_id: 0,
    registered_delivery: 0,
    service_type: "",
    parts: 1,
    total_parts: 1,
    partial: false,
    message_id: `pdu-${++n}`,
    received_at: new Date(0),
    tlvs: [],
    ...over,
  };
}

describe("MessageIds", () => {
  it("a copy within the window (from the previous copy) keeps the id; after it, a new id", () => {
    let now = 0;
    const ids = new MessageIds({ windowMs: 1000, max: 10, now: () => now });
    const a = ids.idFor(sms());
    expect(a.duplicate).toBe(false);
    now = 900;
    const b = ids.idFor(sms());
    expect(b).toMatchObject({ id: a.id, duplicate: true, accepted: false });
    b.settle(true);
    now = 1800; // within the window of the second copy
    expect(ids.idFor(sms())).toMatchObject({ id: a.id, duplicate: true, accepted: true });
    now = 3000;
    const c = ids.idFor(sms());
    expect(c.duplicate).toBe(false);
    expect(c.id).not.toBe(a.id);
  });

  it("what differs makes another message: text, sender, recipient, data_coding, SMSC id, peer", () => {
    const base = messageKey(sms());
    for (const o of [
      { text: "hellO" },
      { source: { addr: "447700900124", ton: 1, npi: 1 } },
      { destination: { addr: "5125550101", ton: 0, npi: 1 } },
      { data_coding: 8 },
      { smsc_message_id: "abc" },
      { peer: "smsc-b" },
      { text: undefined, binary: Buffer.from("hello") },
    ] as Partial<InboundSms>[]) {
      expect(messageKey(sms(o))).not.toBe(base);
    }
    expect(messageKey(sms({ message_id: "another-pdu", received_at: new Date(5) }))).toBe(base);
  });

  it("stays within its cap", () => {
    const ids = new MessageIds({ windowMs: 60_000, max: 100, now: () => 0 });
    for (let i = 0; i < 1000; i++) ids.idFor(sms({ text: "t" + i }));
    expect(ids.size).toBe(100);
  });

  it("window 0 turns it off: every PDU its own id", () => {
    const ids = new MessageIds({ windowMs: 0, max: 100, now: () => 0 });
    const a = ids.idFor(sms());
    const b = ids.idFor(sms());
    expect(a.duplicate || b.duplicate).toBe(false);
    expect(a.id).not.toBe(b.id);
  });
});
