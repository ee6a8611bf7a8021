/** The queue of receipts waiting for their submitter's bind: order, bound, parsing stored entries. */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { MemoryPendingReceipts, parseWaiting, type Waiting } from "../../src/edge/receipt-queue.js";
import { buildReceipts, wanted } from "../../src/edge/sms-receipts.js";

const w = (at: number, id: string): Waiting => ({
  at,
  r: { source: { addr: "1", ton: 1, npi: 1 }, destination: { addr: "2", ton: 1, npi: 1 }, text: `id:${id}`, message_id: id, message_state: 2 },
});

describe("receipt queue", () => {
  it("keeps order per account, puts back at the head, and drops the oldest beyond its bound", async () => {
    const q = new MemoryPendingReceipts(3);
    await q.push("a", w(1, "a1"));
    await q.push("b", w(2, "b1"));
    await q.push("a", w(3, "a2"));
    await q.push("a", w(4, "a3")); // over the bound: a1 goes
    expect(q.size).toBe(3);
    const got = await q.take("a", 1);
    expect(got.map((x) => x.r.message_id)).toEqual(["a2"]);
    await q.putBack("a", got);
    expect((await q.take("a", 10)).map((x) => x.r.message_id)).toEqual(["a2", "a3"]);
    expect(await q.take("a", 10)).toEqual([]);
  });

  it("parsing a stored entry never throws and refuses what is not a receipt (property)", () => {
    fc.assert(
      fc.property(fc.oneof(fc.string(), fc.json()), (s) => {
        const r = parseWaiting(s);
        if (r !== undefined) expect(typeof r.r.text).toBe("string");
      }),
    );
    expect(parseWaiting(JSON.stringify(w(5, "x")))).toEqual(w(5, "x"));
  });

  it("registered_delivery: 1 always, 2 failure only, 3 success only, 0 never", () => {
    expect([1, 2, 3, 0].map((x) => [wanted(x, true), wanted(x, false)])).toEqual([[true, true], [false, true], [true, false], [false, false]]);
  });

  it("one receipt per part id, from the recipient back to the sender, in the Appendix B format", () => {
    const req = { peer: "c", ids: ["p1", "p2"], when: 1, source: { addr: "44770", ton: 1, npi: 1 }, destination: { addr: "1512", ton: 1, npi: 1 }, submitted_at: Date.UTC(2026, 11, 4, 10, 5), text: "héllo wörld, this is longer than twenty" };
    const rs = buildReceipts(req, "EXPIRED", "", Date.UTC(2026, 11, 5, 11, 6));
    expect(rs.map((r) => r.message_id)).toEqual(["p1", "p2"]);
    expect(rs[0]).toMatchObject({ source: req.destination, destination: req.source, message_state: 3 });
    expect(rs[0]!.text).toBe("id:p1 sub:001 dlvrd:000 submit date:2612041005 done date:2612051106 stat:EXPIRED err:000 text:h?llo w?rld, this is");
  });
});
