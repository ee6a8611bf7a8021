import { describe, expect, it } from "vitest";
import fc from "fast-check";
import { CMD, STATUS, TLV } from "../../src/smpp/constants.js";
import { Pdu, PduError, decodePdu, encodeHeader, encodePdu, encodeSmResp } from "../../src/smpp/codec.js";

function deliverSm(): Pdu {
  const p = new Pdu(CMD.deliver_sm, 7);
  p.service_type = "CMT";
  p.source_addr_ton = 1;
  p.source_addr_npi = 1;
  p.source_addr = "447700900123";
  p.dest_addr_ton = 1;
  p.dest_addr_npi = 1;
  p.destination_addr = "15125550100";
  p.esm_class = 0x40;
  p.data_coding = 8;
  p.short_message = Buffer.from("050003aa0201", "hex");
  p.tlvs = [
    { tag: TLV.source_port, value: Buffer.from([0x0b, 0x84]) },
    { tag: 0x1401, value: Buffer.from("vendor") }, // unknown, kept
  ];
  return p;
}

function decodeAll(b: Buffer): Pdu | PduError {
  return decodePdu(b, 0, b.length);
}

describe("codec", () => {
  it("round-trips a deliver_sm and keeps unknown TLVs", () => {
    const p = deliverSm();
    const b = encodePdu(p);
    expect(b.readUInt32BE(0)).toBe(b.length);
    const d = decodeAll(b) as Pdu;
    expect(d).toBeInstanceOf(Pdu);
    expect(d.source_addr).toBe("447700900123");
    expect(d.destination_addr).toBe("15125550100");
    expect(d.short_message.toString("hex")).toBe("050003aa0201");
    expect(d.tlvs.map((t) => t.tag)).toEqual([TLV.source_port, 0x1401]);
    expect(d.tlv(0x1401)!.toString()).toBe("vendor");
    expect(encodePdu(d).equals(b)).toBe(true);
  });

  it("round-trips binds, responses, data_sm and header-only PDUs", () => {
    const bind = new Pdu(CMD.bind_transceiver, 1);
    bind.system_id = "smsc-a";
    bind.password = "secret";
    bind.interface_version = 0x34;
    const d = decodeAll(encodePdu(bind)) as Pdu;
    expect([d.system_id, d.password, d.interface_version]).toEqual(["smsc-a", "secret", 0x34]);
    const resp = decodeAll(encodeSmResp(CMD.submit_sm_resp, 0, 9, "abc123")) as Pdu;
    expect([resp.command_id, resp.sequence_number, resp.message_id]).toEqual([CMD.submit_sm_resp, 9, "abc123"]);
    // every error response carries an empty message_id: exactly one NUL octet of body
    for (const id of [CMD.submit_sm_resp, CMD.deliver_sm_resp, CMD.data_sm_resp]) {
      const b = encodeSmResp(id, 0x64, 1, "x");
      expect([b.length, b.readUInt32BE(0), b[16]]).toEqual([17, 17, 0]);
      const viaPdu = new Pdu(id, 1, 0x0b);
      viaPdu.message_id = "ignored";
      expect(encodePdu(viaPdu)).toEqual(Buffer.from([0, 0, 0, 17, ...b.subarray(4, 8), 0, 0, 0, 0x0b, 0, 0, 0, 1, 0]));
    }
    const el = decodeAll(encodeHeader(CMD.enquire_link, 0, 5)) as Pdu;
    expect(el.command_id).toBe(CMD.enquire_link);
    const ds = new Pdu(CMD.data_sm, 3);
    ds.source_addr = "1";
    ds.destination_addr = "2";
    ds.tlvs = [{ tag: TLV.message_payload, value: Buffer.alloc(1000, 0x41) }];
    const dd = decodeAll(encodePdu(ds)) as Pdu;
    expect(dd.tlv(TLV.message_payload)!.length).toBe(1000);
  });

  it("gives the right status for malformed PDUs", () => {
    const good = encodePdu(deliverSm());
    // unknown command id
    const unk = Buffer.from(good);
    unk.writeUInt32BE(0x00000777, 4);
    expect((decodeAll(unk) as PduError).status).toBe(STATUS.ESME_RINVCMDID);
    // sm_length beyond the PDU
    const p = deliverSm();
    p.tlvs = [];
    const b = encodePdu(p);
    b[b.length - 7] = 200; // sm_length octet (6 octets of short_message follow)
    expect((decodeAll(b) as PduError).status).toBe(STATUS.ESME_RINVMSGLEN);
    // unterminated source_addr
    const bad = Buffer.concat([encodeHeader(CMD.submit_sm, 0, 1), Buffer.from("\0\x01\x01" + "9".repeat(80))]);
    bad.writeUInt32BE(bad.length, 0);
    expect((decodeAll(bad) as PduError).status).toBe(STATUS.ESME_RINVSRCADR);
    // TLV overrunning the PDU
    const t = Buffer.concat([good, Buffer.from([0x14, 0x01, 0x00, 0x20, 0x01])]);
    t.writeUInt32BE(t.length, 0);
    expect((decodeAll(t) as PduError).status).toBe(STATUS.ESME_RINVTLVSTREAM);
    // known TLV with the wrong length
    const w = Buffer.concat([good, Buffer.from([0x02, 0x0e, 0x00, 0x02, 0x01, 0x02])]);
    w.writeUInt32BE(w.length, 0);
    expect((decodeAll(w) as PduError).status).toBe(STATUS.ESME_RINVTLVLEN);
    // truncated body
    const tr = good.subarray(0, 30);
    const tb = Buffer.from(tr);
    tb.writeUInt32BE(tb.length, 0);
    expect(decodeAll(tb)).toBeInstanceOf(PduError);
  });

  it("accepts a bodiless error response", () => {
    const r = decodeAll(encodeHeader(CMD.submit_sm_resp, 0x45, 2)) as Pdu;
    expect([r.command_status, r.message_id]).toEqual([0x45, ""]);
  });
});

const cstr = (max: number) => fc.string({ unit: fc.integer({ min: 1, max: 255 }).map((c) => String.fromCharCode(c)), maxLength: max });
const u8 = fc.integer({ min: 0, max: 255 });
const tlvArb = fc.record({ tag: fc.integer({ min: 0x1400, max: 0x3fff }), value: fc.uint8Array({ maxLength: 40 }).map((a) => Buffer.from(a)) });

const smArb = fc.record({
  command_id: fc.constantFrom(CMD.submit_sm, CMD.deliver_sm),
  sequence_number: fc.integer({ min: 1, max: 0x7fffffff }),
  service_type: cstr(5),
  source_addr_ton: u8,
  source_addr_npi: u8,
  source_addr: cstr(20),
  dest_addr_ton: u8,
  dest_addr_npi: u8,
  destination_addr: cstr(20),
  esm_class: u8,
  protocol_id: u8,
  priority_flag: u8,
  schedule_delivery_time: fc.constantFrom("", "261122100000000+"),
  validity_period: fc.constantFrom("", "000001000000000R"),
  registered_delivery: u8,
  replace_if_present_flag: u8,
  data_coding: u8,
  sm_default_msg_id: u8,
  short_message: fc.uint8Array({ maxLength: 254 }).map((a) => Buffer.from(a)),
  tlvs: fc.array(tlvArb, { maxLength: 4 }),
});

describe("codec properties", () => {
  it("encode/decode round-trips any submit_sm/deliver_sm", () => {
    fc.assert(
      fc.property(smArb, (fields) => {
        const p = Object.assign(new Pdu(), fields);
        const b = encodePdu(p);
        const d = decodeAll(b);
        expect(d).toBeInstanceOf(Pdu);
        const q = d as Pdu;
        for (const k of Object.keys(fields) as (keyof typeof fields)[]) {
          if (k === "short_message") expect(q.short_message.equals(p.short_message)).toBe(true);
          else if (k === "tlvs") expect(q.tlvs.map((t) => [t.tag, t.value.toString("hex")])).toEqual(p.tlvs.map((t) => [t.tag, t.value.toString("hex")]));
          else expect(q[k]).toEqual(p[k]);
        }
        expect(encodePdu(q).equals(b)).toBe(true);
      }),
      { numRuns: 500 },
    );
  });

  it("decoding random bytes never throws", () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 16, maxLength: 400 }), fc.integer({ min: 0, max: 0x140 }), (bytes, cmd) => {
        const b = Buffer.from(bytes);
        b.writeUInt32BE(b.length, 0);
        if (bytes[4]! & 1) b.writeUInt32BE(cmd, 4); // often a known command id
        const d = decodeAll(b);
        expect(d instanceof Pdu || d instanceof PduError).toBe(true);
      }),
      { numRuns: 2000 },
    );
  });

  it("decoding mutated valid PDUs never throws", () => {
    fc.assert(
      fc.property(smArb, fc.array(fc.tuple(fc.nat(), u8), { minLength: 1, maxLength: 6 }), fc.nat(), (fields, muts, cut) => {
        const b = Buffer.from(encodePdu(Object.assign(new Pdu(), fields)));
        for (const [i, v] of muts) b[16 + (i % (b.length - 16))] = v;
        const len = 16 + (cut % (b.length - 15));
        const m = b.subarray(0, len);
        m.writeUInt32BE(len, 0);
        const d = decodeAll(m);
        expect(d instanceof Pdu || d instanceof PduError).toBe(true);
      }),
      { numRuns: 2000 },
    );
  });
});
