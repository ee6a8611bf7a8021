import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pino from "pino";
import { afterAll, describe, expect, it } from "vitest";
import { CallRecords } from "../../src/edge/cdr.js";
import { RecordWriter } from "../../src/records/writer.js";

const dirs: string[] = [];
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

function setup(maxCallMs = 60_000) {
  const dir = mkdtempSync(join(tmpdir(), "didgate-cdr-"));
  dirs.push(dir);
  let now = Date.parse("2026-12-04T10:00:00Z");
  const writer = new RecordWriter({ stateDir: dir, stream: "x", logger: pino({ level: "silent" }), jsonl: { path: join(dir, "cdr.jsonl"), maxBytes: 1e9, keep: 1 } });
  const cdr = new CallRecords({ writer, edge: "edge-1", now: () => now, maxCallMs });
  const read = async () => {
    await writer.close();
    return readFileSync(join(dir, "cdr.jsonl"), "utf8").trim().split("\n").filter(Boolean).map((l) => JSON.parse(l));
  };
  return { cdr, read, advance: (ms: number) => (now += ms), at: () => now };
}

describe("call detail records", () => {
  it("an answered call is written at its BYE with billable time and who hung up", async () => {
    const s = setup();
    const t0 = s.at();
    s.cdr.finished({ callId: "c1", direction: "inbound", trunk: "carrier-a", tenant: "acme", did: "+15125550100", caller: "+447700900123", routeKey: "+15125550100", inviteAt: t0 }, { targets: ["sip:pbx@10.0.0.1=503", "sip:pbx2@10.0.0.2=200"], code: 200, outcome: "routed", provisionalAt: t0 + 100, answerAt: t0 + 2000, finalAt: t0 + 2000 });
    expect(s.cdr.activeCount).toBe(1);
    s.advance(62_000);
    s.cdr.bye("c1", true);
    const [r] = await s.read();
    expect(r).toMatchObject({ type: "call", direction: "inbound", trunk: "carrier-a", tenant: "acme", did: "+15125550100", final_code: 200, setup_ms: 2000, billable_ms: 60_000, hangup: "callee", end_reason: "bye", call_id: "c1", edge: "edge-1" });
    expect(r.targets).toEqual([{ uri: "sip:pbx@10.0.0.1", result: "503" }, { uri: "sip:pbx2@10.0.0.2", result: "200" }]);
    expect(r.answer_at).toBe(new Date(t0 + 2000).toISOString());
  });

  it("failed and cancelled calls are written at once; a lost BYE is closed by the maximum call length", async () => {
    const s = setup(10_000);
    const t0 = s.at();
    s.cdr.finished({ callId: "f", direction: "outbound", customer: "acme-pbx", inviteAt: t0 }, { targets: ["sip:x=486"], code: 486, outcome: "failed", finalAt: t0 + 500 });
    s.cdr.finished({ callId: "k", direction: "inbound", inviteAt: t0 }, { targets: ["sip:x=cancelled"], code: 487, outcome: "cancelled", provisionalAt: t0 + 10, finalAt: t0 + 3000 });
    s.cdr.finished({ callId: "lost", direction: "inbound", inviteAt: t0 }, { targets: ["sip:x=200"], code: 200, outcome: "routed", answerAt: t0 + 1000, finalAt: t0 + 1000 });
    s.advance(12_000);
    s.cdr.sweep();
    const rs = await s.read();
    expect(rs.map((r) => [r.call_id, r.final_code, r.hangup, r.end_reason, r.billable_ms])).toEqual([
      ["f", 486, "none", "failed", 0],
      ["k", 487, "none", "cancelled", 0],
      ["lost", 200, "timeout", "max_call_length", 11_000],
    ]);
  });
});
