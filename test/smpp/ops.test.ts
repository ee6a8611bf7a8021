/**
 * query_sm / cancel_sm / replace_sm bodies taken apart (truncated or overlong fields refused) and
 * query_sm_resp as the npm smpp package reads it.
 */
import smpp from "smpp";
import { describe, expect, it } from "vitest";
import { CMD } from "../../src/smpp/constants.js";
import { encodeQueryResp, parseOp, smppTime } from "../../src/smpp/ops.js";
import { parseSmppTime as parseTime } from "../../src/smpp/time.js";

const z = (s: string): Buffer => Buffer.from(s + "\0", "latin1");
const b = (...n: number[]): Buffer => Buffer.from(n);

describe("parseOp", () => {
  it("reads the message id of query_sm and cancel_sm, the id and new text of replace_sm", () => {
    expect(parseOp(CMD.query_sm, Buffer.concat([z("abc"), b(1, 1), z("15125550100")]))).toEqual({ message_id: "abc" });
    expect(parseOp(CMD.cancel_sm, Buffer.concat([z(""), z("abc"), b(1, 1), z("15125550100"), b(1, 1), z("447700900001")]))).toEqual({
      message_id: "abc",
      service_type: "",
      source_addr: "15125550100",
      destination_addr: "447700900001",
    });
    const r = parseOp(CMD.replace_sm, Buffer.concat([z("abc"), b(1, 1), z("1512"), z("000000010000000R"), z(""), b(1, 0, 3), Buffer.from("new")]));
    expect(r).toEqual({ message_id: "abc", short_message: Buffer.from("new"), schedule_delivery_time: "000000010000000R", validity_period: "", registered_delivery: 1, sm_default_msg_id: 0 });
  });

  it("cancel_sm by address (empty message_id) needs the destination; by id it does not", () => {
    expect(parseOp(CMD.cancel_sm, Buffer.concat([z("CMT"), z(""), b(1, 1), z("ACME"), b(1, 1), z("447700900001")]))).toEqual({
      message_id: "",
      service_type: "CMT",
      source_addr: "ACME",
      destination_addr: "447700900001",
    });
    expect(parseOp(CMD.cancel_sm, Buffer.concat([z(""), z(""), b(1, 1), z("ACME"), b(1)]))).toBeNull();
    expect(parseOp(CMD.cancel_sm, Buffer.concat([z(""), z("abc"), b(1, 1), z("ACME")]))).toEqual({ message_id: "abc" });
    expect(parseOp(CMD.cancel_sm, Buffer.concat([z("x".repeat(6)), z(""), b(1, 1), z("ACME"), b(1, 1), z("1")]))).toBeNull();
  });

  it("refuses truncated bodies, missing NULs and overlong ids (null, never a throw)", () => {
    const full = Buffer.concat([z("abc"), b(1, 1), z("1512"), z(""), z(""), b(0, 0, 3), Buffer.from("new")]);
    for (let n = 0; n < full.length; n++) expect(parseOp(CMD.replace_sm, full.subarray(0, n))).toBeNull();
    expect(parseOp(CMD.query_sm, Buffer.from("abc"))).toBeNull();
    expect(parseOp(CMD.query_sm, Buffer.concat([z("x".repeat(65)), b(1, 1), z("1")]))).toBeNull();
    expect(parseOp(CMD.replace_sm, Buffer.concat([z("abc"), b(1, 1), z("1512"), z(""), z(""), b(0, 0, 200), Buffer.from("short")]))).toBeNull();
  });
});

describe("query_sm_resp", () => {
  it("SMPP absolute time in UTC", () => {
    expect(smppTime(new Date("2026-12-05T08:45:07.350Z"))).toBe("261205084507300+");
  });

  it("the npm smpp package reads message_id, final_date, message_state, error_code", () => {
    const buf = encodeQueryResp(7, "id-1", { status: 0, message_state: 2, final_date: new Date("2026-12-05T08:45:07Z"), error_code: 3 });
    const p = smpp.PDU.fromBuffer(buf) as Record<string, unknown>;
    expect(p.command).toBe("query_sm_resp");
    expect(p.sequence_number).toBe(7);
    expect(p.message_id).toBe("id-1");
    expect(p.message_state).toBe(2);
    expect(p.error_code).toBe(3);
    expect((p.final_date as Date).toISOString()).toBe("2026-12-05T08:45:07.000Z");
    const err = encodeQueryResp(8, "id-1", { status: 0x67 });
    expect(err.length).toBe(16);
    expect((smpp.PDU.fromBuffer(err) as Record<string, unknown>).command_status).toBe(0x67);
  });
});

describe("SMPP times as the outbound path reads them", () => {
  const now = Date.parse("2026-12-05T08:00:00.000Z");
  // epoch ms, or undefined when the text is not an SMPP time
  const parseSmppTime = (s: string, nowMs: number): number | null | undefined => {
    const r = parseTime(s, nowMs);
    return r.ok ? r.at : undefined;
  };
  it("reads absolute times in UTC and with a zone offset (quarter hours ahead or behind)", () => {
    expect(parseSmppTime("261205084507300+", now)).toBe(Date.parse("2026-12-05T08:45:07.300Z"));
    expect(parseSmppTime(smppTime(new Date("2027-01-31T23:59:59.900Z")), now)).toBe(Date.parse("2027-01-31T23:59:59.900Z"));
    // 09:45 local, one hour ahead of UTC (04 quarter hours): 08:45 UTC
    expect(parseSmppTime("261205094500004+", now)).toBe(Date.parse("2026-12-05T08:45:00.000Z"));
    // 03:15 local, five hours and a half behind UTC (22 quarter hours): 08:45 UTC
    expect(parseSmppTime("261205031500022-", now)).toBe(Date.parse("2026-12-05T08:45:00.000Z"));
  });

  it("adds relative times to now", () => {
    expect(parseSmppTime("000000000030000R", now)).toBe(now + 30_000);
    expect(parseSmppTime("000001020304000R", now)).toBe(now + (((24 + 2) * 60 + 3) * 60 + 4) * 1000);
    expect(parseSmppTime("000100000000000R", now)).toBe(Date.parse("2027-01-05T08:00:00.000Z"));
  });

  it("refuses what is not an SMPP time", () => {
    expect(parseSmppTime("", now)).toBeNull(); // empty: none given
    for (const s of ["tomorrow", "26120508450730+", "2612050845073000", "261305084507300+", "261205254507300+", "261205084507349+", "261205084507300R0"]) expect(parseSmppTime(s, now)).toBeUndefined();
  });
});
