/**
 * The parser reads Via, CSeq, Max-Forwards and list values straight from the bytes of a parsed
 * buffer. Those byte readers must accept exactly what the string parsers accept (on the UTF-8
 * decoding of the same bytes) and build the same values: checked here on random input made of the
 * grammar's delimiters, tokens and non-ASCII characters, directly and through parsed messages.
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { canonicalName, parseCSeq, parseCSeqBytes, parseVia, parseViaBytes } from "../../src/sip/headers.js";
import { SipMessage, SipParseError, parseMessage } from "../../src/sip/index.js";
import {
  type ByteText,
  indexOfTopLevelComma,
  indexOfTopLevelCommaBytes,
  parseParams,
  parseParamsBytes,
  parseUint,
  parseUintBytes,
} from "../../src/sip/syntax.js";

const PIECES = [
  "SIP", "sip", "2.0", "/", " ", "\t", "UDP", "tcp", "Tls", "sctp", "ws", "WSS", "x-udp",
  "host.example.com", "192.0.2.1", "[2001:db8::1]", "[::1]", "[", "]", ":", "5060", "65536", "12345678901",
  ";", "branch", "BRANCH", "=", "z9hG4bK-1", "rport", "received", "maddr", "lr", "Tag", "\"", "\\", "\"a,b\"",
  ",", "<", ">", "<sip:a@b;lr>", "é", "日", "☎", "\r\n ", "\r", "0", "70", "2147483648", "INVITE", "ACK", "invite", "x",
];
const valueArb = fc.array(fc.constantFrom(...PIECES), { maxLength: 24 }).map((a) => a.join(""));

/** A Via-shaped value with a few random pieces spliced in, so that the accepting paths are hit too. */
const viaArb = fc
  .tuple(
    fc.constantFrom("SIP/2.0/UDP ", "SIP / 2.0 / tcp ", "sip/2.0/Tls\t", "X/1/WS "),
    fc.constantFrom("192.0.2.1", "host.example.com", "[2001:db8::1]", "h_x"),
    fc.constantFrom("", ":5060", " : 5061", ":65536", ":"),
    fc.array(fc.constantFrom(";branch=z9hG4bK-1", ";rport", ";RPort=5060", ";received=[::1]", ";x=\"q, \\\"r\"", " ; lr", ";é=1", ";ttl=日"), { maxLength: 4 }),
    fc.option(valueArb, { nil: undefined }),
  )
  .map(([p, h, port, params, junk]) => p + h + port + params.join("") + (junk ?? ""));

function src(s: string): ByteText & { n: number } {
  const buf = Buffer.from(s, "utf8");
  return { buf, n: buf.length, text: (a, b) => buf.toString("utf8", a, b) };
}

describe("byte readers agree with the string parsers", () => {
  it("Via", () => {
    fc.assert(
      fc.property(fc.oneof(viaArb, valueArb), (s) => {
        const t = src(s);
        expect(parseViaBytes(t, 0, t.n)).toEqual(parseVia(s));
      }),
      { numRuns: 3000 },
    );
  });

  it("CSeq", () => {
    const cseqArb = fc.oneof(
      valueArb,
      fc.tuple(fc.constantFrom("", " "), fc.constantFrom("0", "1", "2147483647", "2147483648", "01234567890"), fc.constantFrom(" ", "\t", ""), fc.constantFrom("INVITE", "invite", "ACK", "X-Y", "é"), fc.constantFrom("", " ", " x")).map((a) => a.join("")),
    );
    fc.assert(
      fc.property(cseqArb, fc.constantFrom("", "INVITE", "ACK"), (s, hint) => {
        const t = src(s);
        expect(parseCSeqBytes(t, 0, t.n, hint)).toEqual(parseCSeq(s));
      }),
      { numRuns: 2000 },
    );
  });

  it("parameters, top-level comma and integers", () => {
    fc.assert(
      fc.property(valueArb, (s) => {
        const t = src(s);
        expect(parseParamsBytes(t, 0, t.n, [])).toEqual(parseParams(s, 0, []));
        const cb = indexOfTopLevelCommaBytes(t.buf, 0, t.n);
        const cs = indexOfTopLevelComma(s, 0);
        expect(cb < 0).toBe(cs < 0);
        if (cb >= 0) expect(t.text(0, cb)).toBe(s.slice(0, cs));
        expect(parseUintBytes(t.buf, 0, t.n, 0x7fffffff)).toBe(parseUint(s, 0x7fffffff));
      }),
      { numRuns: 2000 },
    );
  });

  it("through a parsed message: top Via, CSeq, Max-Forwards, popRoute and popVia", () => {
    fc.assert(
      fc.property(fc.oneof(viaArb, valueArb), valueArb, valueArb, fc.constantFrom("70", "0", " 69 ", "x", "99999999999"), (via, route, extra, mf) => {
        const text =
          "INVITE sip:a@example.com SIP/2.0\r\n" +
          "Via: " + via + "\r\n" +
          "Via: SIP/2.0/UDP 192.0.2.9;branch=z9hG4bK-2\r\n" +
          "Route: " + route + "\r\n" +
          "Max-Forwards: " + mf + "\r\n" +
          "From: <sip:a@example.com>;tag=1\r\nTo: <sip:b@example.com>\r\nCall-ID: c@x\r\n" +
          "CSeq: 1 INVITE" + extra + "\r\n\r\n";
        const r = parseMessage(Buffer.from(text, "utf8"));
        const m = r instanceof SipParseError ? r.partial : r;
        if (m === null) return;
        // the same message with every header built from its value string (string readers)
        const built = SipMessage.request(m.method, m.requestUri, m.fields.map((f) => [f.name, f.value] as const));
        expect(m.topVia).toEqual(built.topVia);
        expect(m.cseq).toEqual(built.cseq);
        expect(m.maxForwards).toBe(built.maxForwards);
        expect(m.popRoute()).toBe(built.popRoute());
        expect(m.popVia()).toBe(built.popVia());
        expect(m.fields.map((f) => [f.name, f.value])).toEqual(built.fields.map((f) => [f.name, f.value]).filter(([n]) => n !== "Content-Length" || m.has("content-length")));
      }),
      { numRuns: 1500 },
    );
  });
});

describe("header names on the parse path", () => {
  const NAMES = [
    "Via", "v", "From", "f", "To", "t", "Call-ID", "i", "CSeq", "Contact", "m", "Content-Length", "l", "Content-Type", "c",
    "Max-Forwards", "Route", "Record-Route", "Supported", "k", "Subject", "s", "Content-Encoding", "e", "Event", "o",
    "Refer-To", "r", "Referred-By", "b", "Session-Expires", "x", "Allow-Events", "u", "Identity", "y", "Accept-Contact", "a",
    "Reject-Contact", "j", "Request-Disposition", "d", "Identity-Info", "n", "Timestamp", "Retry-After", "Proxy-Require",
    "Require", "Allow", "User-Agent", "Server", "Unsupported", "WWW-Authenticate", "Proxy-Authenticate", "Authorization",
    "Proxy-Authorization", "Reason",
  ];
  // a name as written -> what the parser should call it: canonical when known, else as written
  const nameArb = fc.oneof(
    fc.tuple(fc.constantFrom(...NAMES), fc.array(fc.boolean(), { minLength: 20, maxLength: 20 })).map(([n, up]) =>
      [...n].map((ch, i) => (up[i] ? ch.toUpperCase() : ch.toLowerCase())).join(""),
    ),
    fc.tuple(fc.constantFrom(...NAMES), fc.constantFrom("x", "-", "_", "1", "s", "a"), fc.boolean()).map(([n, ch, front]) => (front ? ch + n : n + ch)),
    fc.constantFrom(...NAMES).map((n) => n.slice(0, -1)).filter((n) => n.length > 0),
    fc.constantFrom("Call_ID", "Cseq", "Max.Forwards", "Rout", "Vias", "X-Via", "P-Asserted-Identity", "g", "Record-Routes"),
  );

  it("known names in any case and compact forms get their canonical name; others stay as written", () => {
    fc.assert(
      fc.property(nameArb, (name) => {
        const text =
          "OPTIONS sip:a@example.com SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK-1\r\n" +
          "From: <sip:a@example.com>;tag=1\r\nTo: <sip:b@example.com>\r\nCall-ID: c@x\r\nCSeq: 1 OPTIONS\r\n" +
          name + ": 1\r\n\r\n";
        const r = parseMessage(Buffer.from(text, "latin1"));
        const m = r instanceof SipParseError ? r.partial : r;
        expect(m).not.toBeNull();
        const f = m!.fields[5]!;
        expect(f.name).toBe(canonicalName(name));
        expect(f.value).toBe("1");
      }),
      { numRuns: 2000 },
    );
  });
});
