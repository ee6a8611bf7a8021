import { randomBytes } from "node:crypto";
import dgram from "node:dgram";
import fc from "fast-check";
import { afterEach, describe, expect, it } from "vitest";
import { branchTag, branchWorker, callIdWorker, METHOD_LABELS, methodLabelIndex, ownerOf, ownerShares, ownerTable, OWNER_SLOTS, READ_COST, readsUdp, udpReaders, SCAN_MAX_BYTES, SCAN_MAX_LINES, SCAN_MAX_PHYSICAL_LINES, scanMessage, scanStats } from "../../src/workers/steer.js";
import { decodeFrame, encodeFrame, Handoff, MAX_FRAME, parseToken } from "../../src/workers/handoff.js";
import { parseMessage } from "../../src/sip/parse.js";
import { setUdpReading } from "../../src/sip/udp-reading.js";
import { SipParseError } from "../../src/sip/index.js";

const crlf = (lines: string[]): Buffer => Buffer.from(lines.join("\r\n") + "\r\n\r\n", "latin1");

describe("steer: branch tags", () => {
  it("reads the worker index a stack put in its branches, plain and with a loop hash", () => {
    // the stack's prefix is "z9hG4bK" + random hex + tag + "-", then its counter in base 36
    expect(branchWorker("z9hG4bK0a1b2c3d4e" + branchTag(3) + "-1w", 4)).toBe(3);
    expect(branchWorker("z9hG4bKdg1k2jx9zz.0a1b2c3d4e" + branchTag(0) + "-a", 2)).toBe(0);
    expect(branchWorker("z9hG4bK0a1b2c3d4e-w12-5", 16)).toBe(12);
  });
  it("no tag, a tag not below N, or a look-alike: -1", () => {
    expect(branchWorker("z9hG4bK0a1b2c3d4e-5", 2)).toBe(-1);
    expect(branchWorker("z9hG4bK0a1b2c3d4e-w2-5", 2)).toBe(-1);
    expect(branchWorker("z9hG4bK-w-5", 2)).toBe(-1);
    expect(branchWorker("z9hG4bK-w1", 2)).toBe(-1);
    expect(branchWorker("z9hG4bK-w12345-1", 2)).toBe(-1);
    expect(branchWorker("", 2)).toBe(-1);
  });
});

describe("steer: Call-ID hash", () => {
  it("is stable, within range and spreads Call-IDs over the workers in their shares", () => {
    for (const n of [2, 3, 4, 5, 8]) {
      const shares = ownerShares(n);
      const counts = new Array<number>(n).fill(0);
      const calls = 20000;
      for (let i = 0; i < calls; i++) {
        const w = callIdWorker(`${i}-${n}@10.0.0.1`, n);
        expect(w).toBe(callIdWorker(`${i}-${n}@10.0.0.1`, n));
        counts[w]!++;
      }
      for (let w = 0; w < n; w++) {
        expect(counts[w]! / calls, `worker ${w} of ${n}`).toBeGreaterThan(shares[w]! * 0.85);
        expect(counts[w]! / calls, `worker ${w} of ${n}`).toBeLessThan(shares[w]! * 1.15);
      }
    }
    expect(callIdWorker("x", 1)).toBe(0);
  });

  it("gives the readers of the socket fewer calls, so that their load and the others' are equal", () => {
    expect(ownerShares(1)).toEqual([1]);
    const two = ownerShares(2);
    // worker 1 reads: (1 + READ_COST) / 2 - READ_COST of the calls, worker 0 the rest
    expect(two[0]).toBeCloseTo((1 + READ_COST) / 2, 9);
    expect(two[1]).toBeCloseTo((1 - READ_COST) / 2, 9);
    expect(two[1]).toBeLessThan(two[0]!);
    for (let n = 2; n <= 32; n++) {
      const shares = ownerShares(n);
      const readers = udpReaders(n);
      expect(shares.reduce((a, b) => a + b, 0)).toBeCloseTo(1, 9);
      // a reader's load: its calls plus READ_COST of the calls' work for each datagram it reads
      // (1/k of them); everyone else's: its calls
      const load = shares.map((x, i) => x + (readers.includes(i) ? READ_COST / readers.length : 0));
      for (const l of load) expect(l).toBeCloseTo(load[0]!, 9);
      for (const r of readers) expect(shares[r]).toBeGreaterThan(0);
    }
  });

  it("lays the shares over the slots interleaved, the same table every time", () => {
    for (const n of [2, 3, 4, 7]) {
      const t = ownerTable(n);
      expect(t.length).toBe(OWNER_SLOTS);
      const shares = ownerShares(n);
      for (let w = 0; w < n; w++) {
        const slots = t.filter((x) => x === w).length;
        expect(Math.abs(slots - shares[w]! * OWNER_SLOTS), `worker ${w} of ${n}`).toBeLessThanOrEqual(1);
      }
      // no worker holds a long run of slots
      let run = 1;
      for (let s = 1; s < t.length; s++) {
        run = t[s] === t[s - 1] ? run + 1 : 1;
        expect(run).toBeLessThanOrEqual(Math.ceil(Math.max(...shares) / Math.min(...shares)) + 1);
      }
      // computed again (after another count), the same table: every worker computes it alone
      ownerTable(n + 1);
      expect([...ownerTable(n)]).toEqual([...t]);
    }
  });
});

describe("steer: scanning a datagram", () => {
  const invite = crlf([
    "INVITE sip:+15125550100@10.0.0.2 SIP/2.0",
    "Via: SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bK-abc;rport, SIP/2.0/UDP 10.0.0.9;branch=z9hG4bK-w1-9",
    "Via: SIP/2.0/UDP 10.0.0.8;branch=z9hG4bK-w0-1",
    "Call-ID: abc@10.0.0.1",
    "CSeq: 1 INVITE",
    "Content-Length: 0",
  ]);
  it("a request: method, the top Via's branch, Call-ID; owned by the Call-ID's worker", () => {
    const i = scanMessage(invite)!;
    expect(i).toEqual({ response: false, method: "INVITE", branch: "z9hG4bK-abc", callId: "abc@10.0.0.1" });
    expect(ownerOf(i, 2)).toBe(callIdWorker("abc@10.0.0.1", 2));
  });
  it("every request of a dialog (ACK, BYE, CANCEL, re-INVITE) has the INVITE's owner, whatever its branch", () => {
    for (let k = 0; k < 50; k++) {
      const cid = `dlg-${k}@host`;
      const owner = ownerOf(scanMessage(crlf(["INVITE sip:a@b SIP/2.0", "Via: SIP/2.0/UDP h;branch=z9hG4bK-1", `Call-ID: ${cid}`, "CSeq: 1 INVITE"]))!, 3);
      for (const m of ["ACK", "BYE", "CANCEL", "INVITE", "INFO"]) {
        const b = scanMessage(crlf([`${m} sip:a@b SIP/2.0`, `Via: SIP/2.0/UDP h;branch=z9hG4bK-w2-${m}`, `i: ${cid}`, "CSeq: 2 " + m]))!;
        expect(ownerOf(b, 3), m).toBe(owner);
      }
    }
  });
  it("a response: the worker of its top Via's tag (not the Call-ID's), the CSeq method", () => {
    const res = crlf(["SIP/2.0 200 OK", "v: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKdg1x2.0a0b0c0d0e-w1-3;rport=5060", "Via: SIP/2.0/UDP 10.0.0.1;branch=z9hG4bK-w0-x", "Call-ID: zz", "CSeq: 7 INVITE"]);
    const i = scanMessage(res)!;
    expect(i.response).toBe(true);
    expect(i.method).toBe("INVITE");
    expect(ownerOf(i, 2)).toBe(1);
    // a response without our tag (not ours, or a 2543 peer) goes by Call-ID
    const other = scanMessage(crlf(["SIP/2.0 180 Ringing", "Via: SIP/2.0/UDP 10.0.0.1;branch=z9hG4bK77", "Call-ID: zz", "CSeq: 1 INVITE"]))!;
    expect(ownerOf(other, 2)).toBe(callIdWorker("zz", 2));
  });
  it("header names in any case, LF line ends, a body that is not scanned", () => {
    const b = Buffer.from("BYE sip:a@b SIP/2.0\nVIA: SIP/2.0/UDP h;BRANCH=z9hG4bK-1\nCALL-ID: q\n\nCall-ID: not-this\r\n", "latin1");
    expect(scanMessage(b)).toMatchObject({ method: "BYE", callId: "q", branch: "z9hG4bK-1" });
  });
  it("not SIP, or no Call-ID: no owner (the worker that got it handles it)", () => {
    expect(scanMessage(Buffer.from("\x00\x01garbage"))).toBeNull();
    expect(scanMessage(Buffer.from("GET / HTTP/1.1\r\n\r\n"))).toBeNull();
    expect(scanMessage(Buffer.alloc(0))).toBeNull();
    const noCid = scanMessage(crlf(["OPTIONS sip:a@b SIP/2.0", "Via: SIP/2.0/UDP h;branch=z9hG4bK-1"]))!;
    expect(ownerOf(noCid, 2)).toBe(-1);
  });
  it("random and truncated bytes never throw; an owner is always -1 or a worker", () => {
    let seed = 7;
    const rnd = () => ((seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) / 2 ** 32);
    const base = crlf(["BYE sip:a@b SIP/2.0", "Via: SIP/2.0/UDP h;branch=z9hG4bK-w1-2", "Call-ID: c@h", "CSeq: 2 BYE"]);
    for (let i = 0; i < 3000; i++) {
      const b = i % 2 === 0 ? Buffer.from(Array.from({ length: Math.floor(rnd() * 300) }, () => Math.floor(rnd() * 256))) : Buffer.from(base.subarray(0, Math.floor(rnd() * base.length)));
      if (i % 3 === 0 && b.length > 0) b[Math.floor(rnd() * b.length)] = Math.floor(rnd() * 256);
      const info = scanMessage(b);
      if (info !== null) expect([-1, 0, 1, 2]).toContain(ownerOf(info, 3));
    }
  });
  it("method labels are a closed set", () => {
    expect(METHOD_LABELS[methodLabelIndex("BYE")]).toBe("BYE");
    expect(METHOD_LABELS[methodLabelIndex("X-EVIL-" + "A".repeat(100))]).toBe("other");
    for (const m of METHOD_LABELS) expect(METHOD_LABELS[methodLabelIndex(m)]).toBe(m);
  });
});

describe("steer: the scan reads a Call-ID and top Via as the parser does", () => {
  // the worker a datagram is steered to must be the one its Call-ID (as the stack parses it) hashes
  // to: otherwise retransmissions of one INVITE are spread over the workers (each a new call),
  // and its CANCEL or ACK may miss the worker holding it
  const agree = (raw: string): void => {
    const buf = Buffer.from(raw, "latin1");
    const m = parseMessage(buf);
    if (m instanceof SipParseError) throw new Error("test message does not parse: " + m.detail);
    const s = scanMessage(buf)!;
    expect(s.callId, JSON.stringify(raw)).toBe(m.callId);
    expect(s.branch, JSON.stringify(raw)).toBe(m.topVia!.branch ?? "");
    for (const n of [2, 3, 4]) expect(ownerOf(s, n)).toBe(m.isRequest ? callIdWorker(m.callId!, n) : ownerOf({ ...s, callId: m.callId! }, n));
  };
  const inv = (headers: string[], eol = "\r\n"): string => ["INVITE sip:+15125550100@10.0.0.2 SIP/2.0", ...headers, "From: <sip:a@h>;tag=1", "To: <sip:b@h>", "CSeq: 1 INVITE", "Max-Forwards: 70", "Content-Length: 0", "", ""].join(eol);
  it("a folded Call-ID (its value on the next line)", () => {
    agree(inv(["Via: SIP/2.0/UDP 10.0.0.1;branch=z9hG4bK-1", "Call-ID:", "  fold-1@10.0.0.1"]));
    agree(inv(["Via: SIP/2.0/UDP 10.0.0.1;branch=z9hG4bK-1", "Call-ID:\t", "\tfold-2@10.0.0.1"], "\n"));
  });
  it("a continuation line that looks like a Call-ID header is part of the header before it", () => {
    agree(inv(["Via: SIP/2.0/UDP 10.0.0.1;branch=z9hG4bK-1", "Subject: hello", " Call-ID: evil@attacker", "Call-ID: real@10.0.0.1"]));
  });
  it("LF line ends: nothing after the blank line is a header", () => {
    agree(inv(["Via: SIP/2.0/UDP 10.0.0.1;branch=z9hG4bK-1", "Call-ID:", " lf-1@10.0.0.1"], "\n").replace(/\n\n$/, "\n\nCall-ID: body@x\n"));
  });
  it("a folded top Via: its branch", () => {
    agree(inv(["Via: SIP/2.0/UDP 10.0.0.1", " ;branch=z9hG4bK-w1-7;rport", "Call-ID: v@h"]));
    const res = ["SIP/2.0 200 OK", "Via: SIP/2.0/UDP 127.0.0.1:5060", " ;branch=z9hG4bKab-w1-3", "From: <sip:a@h>;tag=1", "To: <sip:b@h>;tag=2", "Call-ID: zz", "CSeq: 1 INVITE", "Content-Length: 0", "", ""].join("\r\n");
    agree(res);
    expect(ownerOf(scanMessage(Buffer.from(res, "latin1"))!, 2)).toBe(1);
  });
  it("space or tab around the branch's ';' and '=' (RFC 3261 SWS): a response still goes to the worker of its branch", () => {
    for (const via of ["Via: SIP/2.0/UDP 127.0.0.1:5060 ;branch = z9hG4bKab-w1-3", "Via: SIP/2.0/UDP 127.0.0.1:5060; BRANCH\t=\tz9hG4bKab-w1-3;rport", "Via: SIP/2.0/UDP 127.0.0.1:5060;branch\r\n =z9hG4bKab-w1-3"]) {
      const res = ["SIP/2.0 200 OK", via, "From: <sip:a@h>;tag=1", "To: <sip:b@h>;tag=2", "Call-ID: sws", "CSeq: 1 INVITE", "Content-Length: 0", "", ""].join("\r\n");
      agree(res);
      expect(ownerOf(scanMessage(Buffer.from(res, "latin1"))!, 2), via).toBe(1);
    }
  });
  it("CR and LF before the start line, the version in lower case: a response still goes to the worker of its branch", () => {
    const res = ["SIP/2.0 200 OK", "Via: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKab-w1-3", "From: <sip:a@h>;tag=1", "To: <sip:b@h>;tag=2", "Call-ID: zz0", "CSeq: 1 INVITE", "Content-Length: 0", "", ""].join("\r\n");
    for (const raw of ["\r\n" + res, "\r\n\r\n" + res, res.replace("SIP/2.0 200", "sip/2.0 200")]) {
      agree(raw);
      expect(ownerOf(scanMessage(Buffer.from(raw, "latin1"))!, 2)).toBe(1);
    }
    agree("\r\n" + inv(["Via: SIP/2.0/UDP 10.0.0.1;branch=z9hG4bK-1", "Call-ID: lead@h"]).replace(" SIP/2.0\r\n", " sip/2.0\r\n"));
  });
  it("a Call-ID after 8 KiB of headers the parser accepts", () => {
    agree(inv(["Via: SIP/2.0/UDP 10.0.0.1;branch=z9hG4bK-1", "X-A: " + "a".repeat(6000), "X-B: " + "b".repeat(6000), "Call-ID: late@10.0.0.1"]));
  });
  it("a Call-ID after more than 100 lines when some are continuations (the parser counts headers)", () => {
    const hs = ["Via: SIP/2.0/UDP 10.0.0.1;branch=z9hG4bK-1"];
    for (let i = 0; i < 40; i++) hs.push("X-" + i + ": a", " b", " c");
    hs.push("Call-ID: many@10.0.0.1");
    agree(inv(hs));
  });
  it("any mix of name case, compact forms, white space, folding and Via lists: the parser's Call-ID, branch and CSeq method (property)", () => {
    // white space as the parser trims it, and before a Call-ID a vertical tab, which the parser
    // keeps in the value; bytes beyond ASCII are out: the parser decodes UTF-8 and the scan
    // latin1 (a Call-ID is ASCII)
    const ws = fc.constantFrom(" ", "\t", "  ", "");
    const anyCase = (name: string) => fc.array(fc.boolean(), { minLength: name.length, maxLength: name.length }).map((up) => [...name].map((c, i) => (up[i] ? c.toUpperCase() : c)).join(""));
    const token = fc.stringMatching(/^[A-Za-z0-9.!%*_+`'~-]{1,12}$/);
    // a value, perhaps folded over two lines at a space (where the grammar allows white space)
    const fold = (v: string) =>
      fc.tuple(fc.boolean(), fc.constantFrom(" ", "\t"), fc.nat()).map(([f, c, k]) => {
        const at = [...v.matchAll(/[ ;=]/g)].map((x) => x.index!);
        if (!f || at.length === 0) return v;
        const i = at[k % at.length]!;
        return v.slice(0, i) + "\r\n" + c + v.slice(i);
      });
    const branchParam = fc.tuple(ws, anyCase("branch"), ws, ws, token).map(([a, b, c, d, t]) => `${a};${b}${c}=${d}${t}`);
    const viaValue = fc.tuple(fc.constantFrom("SIP/2.0/UDP 10.0.0.1", "SIP/2.0/UDP 10.0.0.1:5060", "SIP/2.0/TCP [::1]:5061"), fc.option(branchParam), fc.constantFrom("", ";rport", ";received=10.0.0.2"), fc.option(fc.constantFrom(", SIP/2.0/UDP 10.0.0.9;branch=z9hG4bK-w1-9", ",SIP/2.0/UDP h;branch=other"))).map(([h, b, p, more]) => h + p + (b ?? "") + (more ?? ""));
    const header = (names: string[], lead: fc.Arbitrary<string>, value: fc.Arbitrary<string>) => fc.tuple(fc.constantFrom(...names).chain(anyCase), ws, lead, value).chain(([n, a, b, v]) => fold(v).map((fv) => `${n}${a}:${b}${fv}`));
    const msg = fc.tuple(
      fc.boolean(),
      fc.constantFrom("INVITE", "ACK", "BYE", "CANCEL", "OPTIONS"),
      header(["Via", "v"], ws, viaValue),
      header(["Call-ID", "i"], fc.constantFrom(" ", "\t", "", "\x0b"), token.map((t) => t + "@10.0.0.1")),
      fc.tuple(fc.nat(99999), ws, fc.constantFrom("INVITE", "BYE", "ACK", "INFO")),
      fc.array(header(["Subject", "X-Via", "Call-Info"], ws, token), { maxLength: 3 }),
      fc.boolean(),
    );
    let parsed = 0;
    fc.assert(
      fc.property(msg, ([response, method, via, cid, [seq, sp, resMethod], extra, lf]) => {
        const start = response ? "SIP/2.0 200 OK" : `${method} sip:+15125550100@10.0.0.2 SIP/2.0`;
        // a request's CSeq names its method; a response's any
        const cseq = `CSeq: ${seq} ${sp}${response ? resMethod : method}`;
        const eol = lf ? "\n" : "\r\n";
        const lines = [start, ...extra, via, cid, cseq, "From: <sip:a@h>;tag=1", "To: <sip:b@h>;tag=2", "Max-Forwards: 70", "Content-Length: 0"].map((l) => (lf ? l.replace(/\r\n/g, "\n") : l));
        const buf = Buffer.from(lines.join(eol) + eol + eol, "latin1");
        const m = parseMessage(buf);
        if (m instanceof SipParseError || m.topVia === null) return;
        parsed++;
        const s = scanMessage(buf)!;
        expect(s.response).toBe(!m.isRequest);
        expect(s.callId).toBe(m.callId);
        expect(s.branch).toBe(m.topVia.branch ?? "");
        if (m.isRequest) expect(s.method).toBe(m.method);
        else expect(s.method).toBe(m.cseq!.method);
      }),
      { numRuns: 2000 },
    );
    // nearly all of them are messages the parser accepts: the comparison is not vacuous
    expect(parsed).toBeGreaterThan(1800);
  });
  it("the work stays bounded on 64 KB of continuation or colon-less lines", () => {
    for (const body of ["X: a\r\n" + " b\r\n".repeat(16000), "a\n".repeat(32000), "X: a\n" + " \n".repeat(32000)]) {
      const before = scanStats.lines;
      const s = scanMessage(Buffer.from("INVITE sip:a@b SIP/2.0\r\n" + body, "latin1"))!;
      expect(s.callId).toBe("");
      expect(scanStats.lines - before).toBeLessThanOrEqual(SCAN_MAX_PHYSICAL_LINES);
    }
    expect(SCAN_MAX_LINES).toBe(100);
    expect(SCAN_MAX_BYTES).toBeGreaterThanOrEqual(65507);
  });
});

describe("steer: who reads the shared UDP socket", () => {
  it("the last ceil(N/4) workers", () => {
    expect(udpReaders(2)).toEqual([1]);
    expect(udpReaders(4)).toEqual([3]);
    expect(udpReaders(5)).toEqual([3, 4]);
    expect(udpReaders(16)).toEqual([12, 13, 14, 15]);
  });
  it("a reader always; every worker while a reader is not serving", () => {
    expect(readsUdp(1, 2, [0, 1])).toBe(true);
    expect(readsUdp(0, 2, [0, 1])).toBe(false);
    // the reader starting, gone or not answering
    expect(readsUdp(0, 2, [0])).toBe(true);
    expect(readsUdp(0, 2, [])).toBe(true);
    expect(readsUdp(1, 2, [0])).toBe(true);
    expect(readsUdp(2, 5, [0, 1, 2, 3, 4])).toBe(false);
    expect(readsUdp(2, 5, [0, 1, 2, 4])).toBe(true);
  });
});

describe("pausing a UDP socket's reading (real sockets)", () => {
  it("a paused socket reads nothing and still sends; resumed, it reads what waited in the kernel", async () => {
    const sock = dgram.createSocket("udp4");
    const peer = dgram.createSocket("udp4");
    await Promise.all([new Promise<void>((r) => sock.bind(0, "127.0.0.1", () => r())), new Promise<void>((r) => peer.bind(0, "127.0.0.1", () => r()))]);
    try {
      const got: string[] = [];
      const peerGot: string[] = [];
      sock.on("message", (m) => got.push(m.toString()));
      peer.on("message", (m) => peerGot.push(m.toString()));
      expect(setUdpReading(sock, false)).toBe(true);
      peer.send("while paused", sock.address().port, "127.0.0.1");
      sock.send("from the paused socket", peer.address().port, "127.0.0.1");
      await waitFor(() => peerGot.length === 1);
      await new Promise((r) => setTimeout(r, 200));
      expect(got).toEqual([]);
      expect(setUdpReading(sock, true)).toBe(true);
      await waitFor(() => got.length === 1);
      expect(got).toEqual(["while paused"]);
      // resuming a socket that reads is harmless
      expect(setUdpReading(sock, true)).toBe(true);
      peer.send("after", sock.address().port, "127.0.0.1");
      await waitFor(() => got.length === 2);
    } finally {
      sock.close();
      peer.close();
    }
  });
});

describe("handoff frames", () => {
  const token = Buffer.from("0102030405060708", "hex");
  const one = (buf: Buffer, address: string, port: number, hops = 0): Buffer => encodeFrame([{ buf, address, port, hops }], token);
  it("carry the datagram and its real source unchanged", () => {
    const d = Buffer.from("SIP/2.0 200 OK\r\n\r\n");
    for (const [a, p] of [["127.0.0.1", 5060], ["2001:db8::1", 65535], ["10.1.2.3", 1]] as const) {
      const fs = decodeFrame(one(d, a, p), token)!;
      expect(fs).toHaveLength(1);
      const f = fs[0]!;
      expect(f.address).toBe(a);
      expect(f.port).toBe(p);
      expect(f.hops).toBe(0);
      expect(f.buf.equals(d)).toBe(true);
    }
    expect(decodeFrame(one(d, "127.0.0.1", 5060, 3), token)![0]!.hops).toBe(3);
  });
  it("carry several datagrams in order, an empty one among them", () => {
    const recs = [
      { buf: Buffer.from("INVITE sip:a@b SIP/2.0\r\n\r\n"), address: "192.0.2.1", port: 5060, hops: 0 },
      { buf: Buffer.alloc(0), address: "::1", port: 1, hops: 1 },
      { buf: Buffer.alloc(3000, 65), address: "198.51.100.7", port: 40000, hops: 2 },
    ];
    const got = decodeFrame(encodeFrame(recs, token), token)!;
    expect(got.map((r) => [r.buf.toString("latin1"), r.address, r.port, r.hops])).toEqual(recs.map((r) => [r.buf.toString("latin1"), r.address, r.port, r.hops]));
  });
  it("refuses what is not a frame: too short, a record cut short, bytes after the last record", () => {
    expect(decodeFrame(Buffer.from([4, 1, 2, 3, 4, 5, 6, 7, 8, 0, 1, 65, 0]), token)).toBeNull();
    expect(decodeFrame(Buffer.from([4, 1, 2, 3, 4, 5, 6, 7, 8, 0, 0, 0, 1, 0, 0, 65]), token)).toBeNull();
    expect(decodeFrame(Buffer.from([1, 0, 0, 0]), token)).toBeNull();
    const f = one(Buffer.from("BYE sip:a@b SIP/2.0\r\n\r\n"), "127.0.0.1", 5060);
    expect(decodeFrame(f.subarray(0, f.length - 1), token)).toBeNull();
    expect(decodeFrame(Buffer.concat([f, Buffer.from([0])]), token)).toBeNull();
    // any cut of a two-record frame is refused or decodes to whole records only
    const two = encodeFrame([{ buf: Buffer.from("a"), address: "127.0.0.1", port: 1, hops: 0 }, { buf: Buffer.from("bc"), address: "127.0.0.1", port: 2, hops: 0 }], token);
    for (let n = 0; n < two.length; n++) {
      const d = decodeFrame(two.subarray(0, n), token);
      if (d !== null) expect(d.map((r) => r.buf.toString())).toEqual(["a"]);
    }
  });
  it("refuses a frame with another token, or of an earlier version (1: no token; 2: no hops; 3: one datagram, no length)", () => {
    const d = Buffer.from("BYE sip:a@b SIP/2.0\r\n\r\n");
    const f = one(d, "127.0.0.1", 5060);
    expect(decodeFrame(f, Buffer.from("0102030405060709", "hex"))).toBeNull();
    const v1 = Buffer.concat([Buffer.from([1, 9]), Buffer.from("127.0.0.1"), Buffer.from([0x13, 0xc4]), d]);
    expect(decodeFrame(v1, token)).toBeNull();
    const v2 = Buffer.concat([Buffer.from([2]), token, Buffer.from([9]), Buffer.from("127.0.0.1"), Buffer.from([0x13, 0xc4]), d]);
    expect(decodeFrame(v2, token)).toBeNull();
    const v3 = Buffer.concat([Buffer.from([3]), token, Buffer.from([0, 9]), Buffer.from("127.0.0.1"), Buffer.from([0x13, 0xc4]), d]);
    expect(decodeFrame(v3, token)).toBeNull();
    expect(() => parseToken("0102")).toThrow();
  });
});

describe("handoff sockets (real UDP on loopback)", () => {
  const open: Handoff[] = [];
  afterEach(async () => {
    await Promise.all(open.splice(0).map((h) => h.close()));
  });
  /** Workers 0 and 1, each knowing the other's port and the token; what 1 receives goes in `got`. */
  const pair = async (): Promise<{ a: Handoff; b: Handoff; got: string[]; tok: string }> => {
    const a = await Handoff.open(0);
    const b = await Handoff.open(1);
    open.push(a, b);
    const got: string[] = [];
    b.setReceiver((buf, address, port) => got.push(`${buf.toString("latin1")}|${address}:${port}`));
    const tok = randomBytes(8).toString("hex");
    a.setPeers([a.port, b.port], tok);
    b.setPeers([a.port, b.port], tok);
    return { a, b, got, tok };
  };
  const sendRaw = (to: number, frame: Buffer, from: dgram.Socket): Promise<void> => new Promise((r) => from.send(frame, to, "127.0.0.1", () => r()));

  it("datagrams handed to one worker in one turn leave in one frame, in order; one too big for a frame is refused", async () => {
    const { a, b, got, tok } = await pair();
    for (let i = 0; i < 5; i++) expect(a.send(1, Buffer.from("m" + i), "192.0.2.1", 5000 + i)).toBe(true);
    // more than one frame holds: the first frame is sent when the next would overflow it
    expect(a.send(1, Buffer.alloc(40_000, 66), "192.0.2.1", 6000)).toBe(true);
    expect(a.send(1, Buffer.alloc(40_000, 67), "192.0.2.1", 6001)).toBe(true);
    expect(a.send(1, Buffer.alloc(MAX_FRAME, 68), "192.0.2.1", 6002)).toBe(false);
    // the first six left together when the seventh would have overflowed their frame; the
    // seventh waits for the end of the turn
    expect(a.frames).toBe(1);
    await waitFor(() => got.length === 7);
    expect(a.frames).toBe(2);
    expect(got.slice(0, 5)).toEqual([0, 1, 2, 3, 4].map((i) => `m${i}|192.0.2.1:${5000 + i}`));
    expect(got.slice(5).map((g) => g.slice(0, 1) + g.length)).toEqual(["B" + (40_000 + 15), "C" + (40_000 + 15)]);
  });

  it("datagrams queued for a worker that is gone by the end of the turn are not sent to its old port", async () => {
    const { a, b, got, tok } = await pair();
    expect(a.send(1, Buffer.from("before exit"), "192.0.2.1", 5060)).toBe(true);
    // the primary's list without worker 1 arrives in the same turn
    a.setPeers([a.port, 0], tok);
    await new Promise((r) => setTimeout(r, 200));
    expect(a.frames).toBe(0);
    expect(got).toEqual([]);
  });

  it("a frame with the right token from a live peer's port is delivered; a wrong token is dropped", async () => {
    const { a, b, got, tok } = await pair();
    expect(a.send(1, Buffer.from("ok"), "192.0.2.1", 5070)).toBe(true);
    await waitFor(() => got.length === 1);
    expect(got[0]).toBe("ok|192.0.2.1:5070");
    // a forger that holds a peer's port (as after that worker died) but not the token
    const forger = dgram.createSocket("udp4");
    await new Promise<void>((r) => forger.bind(0, "127.0.0.1", () => r()));
    try {
      const p = forger.address().port;
      b.setPeers([p, b.port], tok);
      await sendRaw(b.port, encodeFrame([{ buf: Buffer.from("forged"), address: "192.0.2.9", port: 5060, hops: 0 }], randomBytes(8)), forger);
      await sendRaw(b.port, encodeFrame([{ buf: Buffer.from("right"), address: "192.0.2.9", port: 5060, hops: 0 }], Buffer.from(tok, "hex")), forger);
      await waitFor(() => got.length === 2);
      expect(got[1]).toBe("right|192.0.2.9:5060");
      // the peer list without that worker (the primary sends it when a worker exits): dropped
      b.setPeers([0, b.port], tok);
      await sendRaw(b.port, encodeFrame([{ buf: Buffer.from("late"), address: "192.0.2.9", port: 5060, hops: 0 }], Buffer.from(tok, "hex")), forger);
      expect(b.send(0, Buffer.from("x"), "192.0.2.1", 1)).toBe(false);
      // a frame sent after it, from a live peer, arrives: the one before it was dropped, not delayed
      a.setPeers([a.port, b.port], tok);
      b.setPeers([a.port, b.port], tok);
      a.send(1, Buffer.from("after"), "192.0.2.1", 5070);
      await waitFor(() => got.length === 3);
      expect(got.slice(2)).toEqual(["after|192.0.2.1:5070"]);
    } finally {
      forger.close();
    }
  });
});

async function waitFor(cond: () => boolean, ms = 3000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error("timed out");
    await new Promise((r) => setTimeout(r, 10));
  }
}
