/**
 * fast-check properties: round trip, no input throws, mutated messages re-serialise stably,
 * and a TCP connection fed garbage never stalls (it answers or closes).
 */
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { StreamFramer } from "../../src/sip/framer.js";
import { SipMessage, SipParseError, parseMessage } from "../../src/sip/index.js";
import { SipStack } from "../../src/sip/stack.js";
import { INVITE_BUF, RESPONSE_200 } from "../../bench/sip-parse.js";
import { INVALID, VALID } from "./corpus.js";
import { TcpPeer, request } from "./peers.js";

const TOKEN = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-.!%*_+`'~";
const VALUE_CHARS = [...(TOKEN + " \t\"<>;,=:@/?[]()\\{}|#$&^"), "é", "ñ", "☎", "日"];

const token = fc.string({ unit: fc.constantFrom(...TOKEN), minLength: 1, maxLength: 12 });
const value = fc
  .string({ unit: fc.constantFrom(...VALUE_CHARS), maxLength: 60 })
  .map((s) => s.replace(/^[ \t]+|[ \t]+$/g, ""));
const hostArb = fc.oneof(
  fc.ipV4(),
  fc.constantFrom("example.com", "a-b.example.net", "[2001:db8::1]", "[::1]"),
);
const uriArb = fc
  .tuple(fc.constantFrom("sip", "sips"), fc.option(token, { nil: undefined }), hostArb, fc.option(fc.integer({ min: 1, max: 65535 }), { nil: undefined }), fc.array(token, { maxLength: 3 }))
  .map(([s, user, host, port, params]) => `${s}:${user ? user.replace(/[%]/g, "") + "@" : ""}${host}${port ? ":" + port : ""}${params.map((p) => ";" + p.replace(/%/g, "")).join("")}`)
  .filter((u) => !u.includes("@;") && !u.includes(":@"));
const extraHeaders = fc.array(fc.tuple(token.map((t) => "X-" + t), value), { maxLength: 12 });
const bodyArb = fc.oneof(fc.constant(Buffer.alloc(0)), fc.uint8Array({ maxLength: 300 }).map((a) => Buffer.from(a)));

function required(method: string, seq: number): Array<[string, string]> {
  return [
    ["Via", "SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKprop;rport"],
    ["From", "<sip:a@example.com>;tag=1"],
    ["To", "<sip:b@example.com>"],
    ["Call-ID", "prop@x"],
    ["CSeq", `${seq} ${method}`],
  ];
}

function fieldsOf(m: SipMessage): Array<[string, string]> {
  return m.fields.filter((f) => f.lname !== "content-length").map((f) => [f.lname, f.value]);
}

function mustParse(b: Buffer): SipMessage {
  const r = parseMessage(b);
  if (r instanceof SipParseError) throw new Error(r.toString() + "\n" + b.toString());
  return r;
}

describe("round trip: parse(serialise(m)) == m", () => {
  it("requests", () => {
    fc.assert(
      fc.property(token, uriArb, fc.integer({ min: 0, max: 0x7fffffff }), extraHeaders, bodyArb, (method, uri, seq, extra, body) => {
        const m = SipMessage.request(method, uri, [...required(method, seq), ...extra], body);
        const back = mustParse(m.toBuffer());
        expect(back.method).toBe(method);
        expect(back.requestUri).toBe(uri);
        expect(fieldsOf(back)).toEqual(fieldsOf(m));
        expect(back.body.equals(m.body)).toBe(true);
        expect(back.cseq).toEqual({ seq, method });
        // and once more, from the parsed form (raw copy path)
        const again = mustParse(back.toBuffer());
        expect(again.toBuffer().equals(back.toBuffer())).toBe(true);
      }),
      { numRuns: 300 },
    );
  });

  it("responses", () => {
    fc.assert(
      fc.property(fc.integer({ min: 100, max: 699 }), value, extraHeaders, bodyArb, (status, reason, extra, body) => {
        const m = SipMessage.response(status, reason, [...required("INVITE", 1), ...extra], body);
        const back = mustParse(m.toBuffer());
        expect([back.status, back.reason]).toEqual([status, reason]);
        expect(fieldsOf(back)).toEqual(fieldsOf(m));
        expect(back.body.equals(m.body)).toBe(true);
      }),
      { numRuns: 200 },
    );
  });

  it("proxy edits on parsed messages survive a round trip", () => {
    fc.assert(
      fc.property(uriArb, fc.array(fc.constantFrom("via", "rr", "route", "mf", "ruri", "popvia"), { maxLength: 6 }), (uri, ops) => {
        const m = mustParse(INVITE_BUF);
        let vias = m.vias.length;
        for (const op of ops) {
          if (op === "via") (m.pushVia("SIP/2.0/TCP 10.0.0.1:5060;branch=z9hG4bKx"), vias++);
          else if (op === "popvia" && vias > 1) (m.popVia(), vias--);
          else if (op === "rr") m.pushRecordRoute("<sip:10.0.0.1;lr>");
          else if (op === "route") m.popRoute();
          else if (op === "mf") m.decrementMaxForwards();
          else if (op === "ruri") m.requestUri = uri;
        }
        const back = mustParse(m.toBuffer());
        expect(fieldsOf(back)).toEqual(fieldsOf(m));
        expect(back.requestUri).toBe(m.requestUri);
        expect(back.vias.length).toBe(vias);
        expect(back.body.equals(m.body)).toBe(true);
      }),
      { numRuns: 300 },
    );
  });
});

type Mutation = { kind: "flip" | "insert" | "delete" | "truncate" | "dup" | "crlf"; pos: number; byte: number; len: number };
const mutation: fc.Arbitrary<Mutation> = fc.record({
  kind: fc.constantFrom("flip", "insert", "delete", "truncate", "dup", "crlf"),
  pos: fc.nat(),
  byte: fc.integer({ min: 0, max: 255 }),
  len: fc.integer({ min: 1, max: 40 }),
});
function mutate(src: Buffer, muts: Mutation[]): Buffer {
  let b = Buffer.from(src);
  for (const m of muts) {
    if (b.length === 0) break;
    const p = m.pos % b.length;
    switch (m.kind) {
      case "flip":
        b[p] = m.byte;
        break;
      case "insert":
        b = Buffer.concat([b.subarray(0, p), Buffer.from([m.byte]), b.subarray(p)]);
        break;
      case "delete":
        b = Buffer.concat([b.subarray(0, p), b.subarray(p + m.len)]);
        break;
      case "truncate":
        b = b.subarray(0, p);
        break;
      case "dup":
        b = Buffer.concat([b.subarray(0, p + m.len), b.subarray(p)]);
        break;
      case "crlf":
        b = Buffer.concat([b.subarray(0, p), Buffer.from("\r\n "), b.subarray(p)]);
        break;
    }
  }
  return b;
}
const seeds = [INVITE_BUF, RESPONSE_200, ...VALID.map((v) => v.raw), ...INVALID.map((v) => v.raw)];
const mutated = fc.tuple(fc.constantFrom(...seeds), fc.array(mutation, { minLength: 1, maxLength: 8 })).map(([s, m]) => mutate(s, m));

describe("viaCount agrees with vias.length", () => {
  // Via lines of values, empty values, spaces, tabs, quotes, angle brackets, folding, compact "v"
  // and non-ASCII, parsed from bytes (the byte path) and after an edit (the string path)
  const piece = fc.constantFrom("SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKa", " ", "\t", ",", ", ", '"a,b"', "<sip:x,y>", "\u000b", "é", ";rport", "\r\n ");
  const line = fc.array(piece, { minLength: 1, maxLength: 8 }).map((ps) => ps.join(""));
  it("for any Via lines, and any max", () => {
    fc.assert(
      fc.property(fc.array(fc.tuple(fc.boolean(), line), { minLength: 1, maxLength: 4 }), fc.integer({ min: 1, max: 6 }), (lines, max) => {
        const head = ["SIP/2.0 200 OK", ...lines.map(([compact, l]) => (compact ? "v: " : "Via: ") + l.replace(/^\r\n /, "")), "From: <sip:a@example.com>;tag=1", "To: <sip:b@example.com>;tag=2", "Call-ID: vc@x", "CSeq: 1 INVITE", "Content-Length: 0", "", ""];
        const m = parseMessage(Buffer.from(head.join("\r\n"), "utf8"));
        if (m instanceof SipParseError) return;
        const n = m.vias.length;
        expect(m.viaCount()).toBe(n);
        expect(m.viaCount(max)).toBe(Math.min(n, max));
        m.pushVia("SIP/2.0/UDP 198.51.100.1;branch=z9hG4bKtop");
        expect(m.viaCount()).toBe(n + 1);
        expect(m.viaCount(max)).toBe(Math.min(n + 1, max));
      }),
      { numRuns: 2000 },
    );
  });
});

describe("never throws", () => {
  it("random bytes", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 2000 }), fc.boolean(), (a, stream) => {
        const r = parseMessage(Buffer.from(a), { stream, strict: true });
        expect(r instanceof SipMessage || r instanceof SipParseError).toBe(true);
      }),
      { numRuns: 2000 },
    );
  });

  it("mutated valid messages: parse never throws, and anything accepted re-serialises to an equal message", () => {
    fc.assert(
      fc.property(mutated, (b) => {
        const r = parseMessage(b, { strict: true });
        if (r instanceof SipParseError) {
          if (r.partial) r.partial.toBuffer(); // building a 400 from a partial must work too
          return;
        }
        // every accessor works on whatever was accepted
        void [r.topVia, r.cseq, r.from, r.to, r.vias, r.routes, r.maxForwards, r.parsedRequestUri, r.callId];
        const back = mustParse(r.toBuffer());
        expect(fieldsOf(back)).toEqual(fieldsOf(r));
        expect(back.body.equals(r.body)).toBe(true);
        expect(back.startLine).toBe(r.startLine);
      }),
      { numRuns: 3000 },
    );
  });

  it("the stream framer never throws and frames every byte or fails the stream", () => {
    fc.assert(
      fc.property(fc.array(fc.oneof(mutated, fc.uint8Array({ maxLength: 300 }).map((a) => Buffer.from(a))), { maxLength: 5 }), fc.integer({ min: 1, max: 64 }), (parts, chunk) => {
        const all = Buffer.concat(parts);
        let framed = 0;
        let failed = false;
        const f = new StreamFramer({ onFrame: (m) => (framed += m.length), onPing: () => {}, onFramingError: () => (failed = true) }, 65535);
        for (let i = 0; i < all.length; i += chunk) f.push(all.subarray(i, i + chunk));
        expect(framed + f.buffered).toBeLessThanOrEqual(all.length);
        if (!failed) expect(f.buffered).toBeLessThanOrEqual(65535 + 4);
      }),
      { numRuns: 500 },
    );
  });
});

describe("stream framer", () => {
  it("valid messages in chunks of any sizes come out whole, and a message framed earlier is not changed by later chunks", () => {
    fc.assert(
      fc.property(
        fc.array(fc.tuple(token, uriArb, extraHeaders, bodyArb), { minLength: 1, maxLength: 6 }),
        fc.array(fc.integer({ min: 1, max: 700 }), { minLength: 1, maxLength: 20 }),
        fc.boolean(),
        (msgs, sizes, pings) => {
          const sent = msgs.map(([method, uri, extra, body], i) => SipMessage.request(method, uri, [...required(method, i + 1), ...extra], body).toBuffer());
          const all = Buffer.concat(sent.flatMap((m) => (pings ? [Buffer.from("\r\n\r\n"), m] : [m])));
          const frames: Buffer[] = [];
          let failed = false;
          const f = new StreamFramer({ onFrame: (m) => frames.push(m), onPing: () => {}, onFramingError: () => (failed = true) }, 65535);
          // the socket's buffers are reused by nobody here, but each chunk is its own copy
          for (let i = 0, k = 0; i < all.length; k++) {
            const n = sizes[k % sizes.length]!;
            f.push(Buffer.from(all.subarray(i, i + n)));
            i += n;
          }
          expect(failed).toBe(false);
          expect(frames.map((b) => b.toString("latin1"))).toEqual(sent.map((b) => b.toString("latin1")));
          expect(f.buffered).toBe(0);
          // gathering chunks copies each byte a bounded number of times
          expect(f.copied).toBeLessThanOrEqual(4 * all.length);
        },
      ),
      { numRuns: 500 },
    );
  });

  it("a 60 KB message trickled a byte at a time is copied a bounded number of times, not once per byte", () => {
    const big = SipMessage.request("MESSAGE", "sip:a@example.com", [...required("MESSAGE", 1), ["X-Pad", "p".repeat(1000)]], Buffer.alloc(58_000, 97)).toBuffer();
    const frames: Buffer[] = [];
    const f = new StreamFramer({ onFrame: (m) => frames.push(m), onPing: () => {}, onFramingError: () => undefined }, 65535);
    for (let i = 0; i < big.length; i++) f.push(big.subarray(i, i + 1));
    expect(frames).toHaveLength(1);
    expect(frames[0]!.equals(big)).toBe(true);
    // a concatenation per chunk copied about big.length^2 / 2 bytes (1.8 GB here)
    expect(f.copied).toBeLessThanOrEqual(4 * big.length);
  });
});

describe("a TCP connection fed garbage never stalls", () => {
  let stack: SipStack;
  beforeAll(async () => {
    stack = await SipStack.create({ listen: ["tcp://127.0.0.1:0"], limits: { maxMessageSize: 8192 } }, { onRequest: (tx) => tx.reply(200) });
  });
  afterAll(async () => {
    await stack.close();
  });

  it("after any garbage, valid requests are answered or the connection is closed", async () => {
    const port = stack.listeners[0]!.port;
    const probe = Buffer.from(request("OPTIONS", { via: "SIP/2.0/TCP 127.0.0.1:1;branch=z9hG4bKprobe" }));
    const batch = Buffer.concat(Array.from({ length: 10 }, () => probe));
    await fc.assert(
      fc.asyncProperty(fc.oneof(mutated, fc.uint8Array({ maxLength: 3000 }).map((a) => Buffer.from(a))), async (garbage) => {
        const peer = await TcpPeer.connect(port);
        try {
          peer.write(garbage);
          const deadline = Date.now() + 5000;
          let sent = 0;
          while (Date.now() < deadline) {
            if (peer.closed) return;
            if (peer.msgs.some((m) => m.status === 200)) return;
            if (sent < 12_000) {
              peer.write(batch);
              sent += batch.length;
            }
            await new Promise((r) => setTimeout(r, 5));
          }
          throw new Error("connection stalled: no answer and not closed; garbage=" + JSON.stringify(garbage.toString("latin1").slice(0, 200)));
        } finally {
          await peer.close();
        }
      }),
      { numRuns: 60 },
    );
    // still serving
    const p = await TcpPeer.connect(port);
    p.write(probe);
    expect((await p.next()).status).toBe(200);
    await p.close();
  });
});
