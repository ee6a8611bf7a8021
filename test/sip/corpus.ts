/**
 * Real-world and torture messages in the spirit of RFC 4475 (written for didgate, not copied).
 * Lines are joined with CRLF unless a case builds its own bytes.
 */

export function crlf(lines: string[]): string {
  return lines.join("\r\n");
}

export interface ValidCase {
  name: string;
  raw: Buffer;
  check: Record<string, unknown>;
}

export interface InvalidCase {
  name: string;
  raw: Buffer;
  /** expected ParseErrorReason */
  reason: string;
  /** true when a 400 can still be formed (partial message with Via/From/To/Call-ID/CSeq) */
  respondable: boolean;
  /** only rejected with { strict: true } */
  strictOnly?: boolean;
}

const b = (s: string): Buffer => Buffer.from(s, "utf8");

export const VALID: ValidCase[] = [
  {
    name: "plain INVITE with SDP",
    raw: b(
      crlf([
        "INVITE sip:bob@biloxi.example.com SIP/2.0",
        "Via: SIP/2.0/UDP pc33.atlanta.example.com;branch=z9hG4bK776asdhds",
        "Max-Forwards: 70",
        'To: Bob <sip:bob@biloxi.example.com>',
        'From: Alice <sip:alice@atlanta.example.com>;tag=1928301774',
        "Call-ID: a84b4c76e66710@pc33.atlanta.example.com",
        "CSeq: 314159 INVITE",
        "Contact: <sip:alice@pc33.atlanta.example.com>",
        "Content-Type: application/sdp",
        "Content-Length: 4",
        "",
        "v=0\r\n",
      ]).slice(0, -1),
    ),
    check: {
      method: "INVITE",
      uri: "sip:bob@biloxi.example.com",
      callId: "a84b4c76e66710@pc33.atlanta.example.com",
      cseq: [314159, "INVITE"],
      fromTag: "1928301774",
      toTag: undefined,
      branch: "z9hG4bK776asdhds",
      viaHost: "pc33.atlanta.example.com",
      viaPort: undefined,
      maxForwards: 70,
      body: "v=0\r",
    },
  },
  {
    name: "compact headers, odd case, tabs and no space after colon",
    raw: b(
      crlf([
        "OPTIONS sip:user@example.com SIP/2.0",
        "v:SIP/2.0/TCP 192.0.2.1:5070;branch=z9hG4bKcompact1",
        "f: <sip:a@example.com>;tag=f1",
        "T:\t<sip:user@example.com>",
        "I: compact-1@192.0.2.1",
        "cseq:   7   OPTIONS",
        "M: <sip:a@192.0.2.1:5070;transport=tcp>",
        "MAX-FORWARDS: 10",
        "k: path, timer",
        "l: 0",
        "",
        "",
      ]),
    ),
    check: {
      method: "OPTIONS",
      callId: "compact-1@192.0.2.1",
      cseq: [7, "OPTIONS"],
      fromTag: "f1",
      branch: "z9hG4bKcompact1",
      viaTransport: "TCP",
      viaPort: 5070,
      maxForwards: 10,
      contact: "<sip:a@192.0.2.1:5070;transport=tcp>",
      supported: "path, timer",
      body: "",
    },
  },
  {
    name: "line folding in several headers and whitespace around separators",
    raw: b(
      crlf([
        "INVITE sip:vivekg@chair-dnrc.example.com;unknownparam SIP/2.0",
        "TO :",
        " sip:vivekg@chair-dnrc.example.com ;   tag    = 1918181833n",
        "from   : \"J Rosenberg \\\\\\\"\"       <sip:jdrosen@example.com>",
        "  ;",
        "  tag = 98asjd8",
        "MaX-fOrWaRdS: 0068",
        "Call-ID: wsinv.ndaksdj@192.0.2.1",
        "Content-Length   : 0",
        "cseq: 0009",
        "  INVITE",
        "Via  : SIP  /   2.0",
        " /UDP",
        "    192.0.2.2;rport;branch=390skdjuw",
        "s :",
        "NewFangledHeader:   newfangled value",
        " continued newfangled value",
        "UnknownHeaderWithUnusualValue: ;;,,;;,;",
        "",
        "",
      ]),
    ),
    check: {
      method: "INVITE",
      cseq: [9, "INVITE"],
      maxForwards: 68,
      toTag: "1918181833n",
      fromTag: "98asjd8",
      fromDisplay: 'J Rosenberg \\"',
      branch: "390skdjuw",
      viaHost: "192.0.2.2",
      rport: null,
      newfangled: "newfangled value continued newfangled value",
      subject: "",
    },
  },
  {
    name: "multiple Vias on one line and on several lines, Route list with quoted commas",
    raw: b(
      crlf([
        "BYE sip:bob@192.0.2.4 SIP/2.0",
        "Via: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bKtop;received=192.0.2.99, SIP/2.0/TCP [2001:db8::1]:5080;branch=z9hG4bKmid",
        "v: SIP/2.0/UDP 192.0.2.12;branch=z9hG4bKlast",
        'Route: <sip:p1.example.com;lr>, "a, b" <sip:p2.example.com;lr>',
        "Route: <sip:p3.example.com;lr>",
        "From: <sip:a@example.com>;tag=a",
        "To: <sip:bob@example.com>;tag=b",
        "Call-ID: multi@x",
        "CSeq: 2 BYE",
        "Max-Forwards: 70",
        "Content-Length: 0",
        "",
        "",
      ]),
    ),
    check: {
      branch: "z9hG4bKtop",
      received: "192.0.2.99",
      vias: 3,
      routes: ["<sip:p1.example.com;lr>", '"a, b" <sip:p2.example.com;lr>', "<sip:p3.example.com;lr>"],
    },
  },
  {
    name: "escaped characters in the Request-URI user part and unknown URI scheme in To",
    raw: b(
      crlf([
        "INVITE sip:sips%3Auser%40example.com@example.net SIP/2.0",
        "To: <urn:service:sos>",
        "From: <sip:caller@example.net>;tag=938",
        "Max-Forwards: 87",
        "i: esc01.239409asdfakjkn23onasd0-3234",
        "CSeq: 234234 INVITE",
        "Via: SIP/2.0/UDP host5.example.net;branch=z9hG4bKkdjuw",
        "l: 0",
        "",
        "",
      ]),
    ),
    check: {
      uriUser: "sips%3Auser%40example.com",
      uriUserUnescaped: "sips:user@example.com",
      uriHost: "example.net",
      toUri: "urn:service:sos",
    },
  },
  {
    name: "escaped NUL in user part is valid (%00)",
    raw: b(
      crlf([
        "REGISTER sip:example.com SIP/2.0",
        "To: sip:null-%00-null@example.com",
        "From: sip:null-%00-null@example.com;tag=839923423",
        "Max-Forwards: 70",
        "Call-ID: escnull.39203ndfvkjdasfkq3w4otrq0adsfdfnavd",
        "CSeq: 14398234 REGISTER",
        "Via: SIP/2.0/UDP host5.example.com;branch=z9hG4bKkdjuw",
        "Contact: <sip:%00@host5.example.com>",
        "Contact: <sip:%00%00@host5.example.com>",
        "L:0",
        "",
        "",
      ]),
    ),
    check: { method: "REGISTER", fromTag: "839923423", contacts: 2 },
  },
  {
    name: "IPv6 Via and Request-URI, rport with value",
    raw: b(
      crlf([
        "OPTIONS sip:[2001:db8::10]:5062;transport=udp SIP/2.0",
        "Via: SIP/2.0/UDP [2001:db8::9:1];branch=z9hG4bKas3-111;rport=5099",
        "To: <sip:[2001:db8::10]>",
        "From: <sip:[2001:db8::9:1]>;tag=v6",
        "Call-ID: v6@2001:db8::9:1",
        "CSeq: 1 OPTIONS",
        "Max-Forwards: 70",
        "Content-Length: 0",
        "",
        "",
      ]),
    ),
    check: { viaHost: "[2001:db8::9:1]", viaHostname: "2001:db8::9:1", rport: 5099, uriHost: "[2001:db8::10]", uriPort: 5062 },
  },
  {
    name: "response with reason phrase containing UTF-8, two Vias",
    raw: b(
      crlf([
        "SIP/2.0 486 Occupé, rappelez plus tard",
        "Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKr1, SIP/2.0/UDP 192.0.2.2;branch=z9hG4bKr2",
        "From: <sip:a@example.com>;tag=a",
        "To: <sip:b@example.com>;tag=b",
        "Call-ID: r@x",
        "CSeq: 5 INVITE",
        "Content-Length: 0",
        "",
        "",
      ]),
    ),
    check: { status: 486, reason: "Occupé, rappelez plus tard", cseq: [5, "INVITE"], vias: 2 },
  },
  {
    name: "bare LF line endings are tolerated",
    raw: b(
      [
        "MESSAGE sip:x@example.com SIP/2.0",
        "Via: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bKlf",
        "From: <sip:a@example.com>;tag=a",
        "To: <sip:x@example.com>",
        "Call-ID: lf@x",
        "CSeq: 1 MESSAGE",
        "Content-Type: text/plain",
        "Content-Length: 5",
        "",
        "hello",
      ].join("\n"),
    ),
    check: { method: "MESSAGE", body: "hello" },
  },
  {
    name: "no Content-Length on a datagram: body is the rest",
    raw: b(
      crlf([
        "MESSAGE sip:x@example.com SIP/2.0",
        "Via: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bKnocl",
        "From: <sip:a@example.com>;tag=a",
        "To: <sip:x@example.com>",
        "Call-ID: nocl@x",
        "CSeq: 1 MESSAGE",
        "",
        "rest of datagram",
      ]),
    ),
    check: { body: "rest of datagram" },
  },
  {
    name: "Content-Length shorter than the datagram: extra bytes dropped",
    raw: b(
      crlf([
        "MESSAGE sip:x@example.com SIP/2.0",
        "Via: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bKshort",
        "From: <sip:a@example.com>;tag=a",
        "To: <sip:x@example.com>",
        "Call-ID: short@x",
        "CSeq: 1 MESSAGE",
        "Content-Length: 3",
        "",
        "abcdef",
      ]),
    ),
    check: { body: "abc" },
  },
  {
    name: "leading CRLFs before the start line are ignored; unknown method",
    raw: b(
      "\r\n\r\n" +
        crlf([
          "NEWMETHOD sip:x@example.com SIP/2.0",
          "Via: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bKnew",
          "From: <sip:a@example.com>;tag=a",
          "To: <sip:x@example.com>",
          "Call-ID: new@x",
          "CSeq: 8 NEWMETHOD",
          "Content-Length: 0",
          "",
          "",
        ]),
    ),
    check: { method: "NEWMETHOD", cseq: [8, "NEWMETHOD"] },
  },
  {
    name: "tel URI Request-URI and quoted display names with escapes",
    raw: b(
      crlf([
        "INVITE tel:+1-512-555-0100;phone-context=+1 SIP/2.0",
        "Via: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bKtel",
        'From: "Sm\\"ith, J" <sip:j@example.com>;tag=q',
        "To: <tel:+15125550100>",
        "Call-ID: tel@x",
        "CSeq: 1 INVITE",
        "Max-Forwards: 1",
        "Content-Length: 0",
        "",
        "",
      ]),
    ),
    check: { uriScheme: "tel", fromDisplay: 'Sm"ith, J', maxForwards: 1 },
  },
];

function req(lines: string[], body = ""): Buffer {
  return b(crlf(lines) + "\r\n\r\n" + body);
}

const BASE = [
  "Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKbad",
  "From: <sip:a@example.com>;tag=a",
  "To: <sip:b@example.com>",
  "Call-ID: bad@x",
];

export const INVALID: InvalidCase[] = [
  { name: "empty", raw: b(""), reason: "empty", respondable: false },
  { name: "only CRLFs", raw: b("\r\n\r\n\r\n"), reason: "empty", respondable: false },
  { name: "garbage start line", raw: b("HELLO WORLD\r\n\r\n"), reason: "bad_start_line", respondable: false },
  {
    name: "unsupported SIP version",
    raw: req(["INVITE sip:b@example.com SIP/7.0", ...BASE, "CSeq: 1 INVITE", "Content-Length: 0"]),
    reason: "bad_version",
    respondable: false,
  },
  {
    name: "spaces inside the Request-URI",
    raw: req(["INVITE sip:b@example.com; lr SIP/2.0", ...BASE, "CSeq: 1 INVITE", "Content-Length: 0"]),
    reason: "bad_request_uri",
    respondable: false,
  },
  {
    name: "negative Content-Length",
    raw: req(["INVITE sip:b@example.com SIP/2.0", ...BASE, "CSeq: 1 INVITE", "Content-Length: -999"]),
    reason: "bad_content_length",
    respondable: true,
  },
  {
    name: "huge Content-Length",
    raw: req(["INVITE sip:b@example.com SIP/2.0", ...BASE, "CSeq: 1 INVITE", "Content-Length: 99999999999999999999999"]),
    reason: "bad_content_length",
    respondable: true,
  },
  {
    name: "Content-Length larger than the datagram",
    raw: req(["MESSAGE sip:b@example.com SIP/2.0", ...BASE, "CSeq: 1 MESSAGE", "Content-Length: 5000"], "short body"),
    reason: "truncated_body",
    respondable: true,
  },
  {
    name: "two different Content-Length values",
    raw: req(["MESSAGE sip:b@example.com SIP/2.0", ...BASE, "CSeq: 1 MESSAGE", "Content-Length: 3", "l: 4"], "abcd"),
    reason: "bad_content_length",
    respondable: true,
  },
  {
    name: "CSeq with non-numeric sequence",
    raw: req(["INVITE sip:b@example.com SIP/2.0", ...BASE, "CSeq: 1x INVITE", "Content-Length: 0"]),
    reason: "bad_cseq",
    respondable: true,
  },
  {
    name: "CSeq sequence above 2**31-1",
    raw: req(["INVITE sip:b@example.com SIP/2.0", ...BASE, "CSeq: 36893488147419103232 INVITE", "Content-Length: 0"]),
    reason: "bad_cseq",
    respondable: true,
  },
  {
    name: "CSeq method differs from request method",
    raw: req(["INVITE sip:b@example.com SIP/2.0", ...BASE, "CSeq: 1 OPTIONS", "Content-Length: 0"]),
    reason: "cseq_method_mismatch",
    respondable: true,
  },
  {
    name: "missing Call-ID",
    raw: req(["INVITE sip:b@example.com SIP/2.0", BASE[0]!, BASE[1]!, BASE[2]!, "CSeq: 1 INVITE", "Content-Length: 0"]),
    reason: "missing_header",
    respondable: false,
  },
  {
    name: "missing Via",
    raw: req(["OPTIONS sip:b@example.com SIP/2.0", BASE[1]!, BASE[2]!, BASE[3]!, "CSeq: 1 OPTIONS", "Content-Length: 0"]),
    reason: "missing_header",
    respondable: false,
  },
  {
    name: "two Call-IDs",
    raw: req(["INVITE sip:b@example.com SIP/2.0", ...BASE, "Call-ID: other@x", "CSeq: 1 INVITE", "Content-Length: 0"]),
    reason: "duplicate_header",
    respondable: true,
  },
  {
    name: "NUL byte in a header value",
    raw: req(["INVITE sip:b@example.com SIP/2.0", ...BASE, "CSeq: 1 INVITE", "Subject: a\u0000b", "Content-Length: 0"]),
    reason: "nul_byte",
    respondable: true,
  },
  {
    name: "header line without colon",
    raw: req(["INVITE sip:b@example.com SIP/2.0", ...BASE, "CSeq: 1 INVITE", "This is not a header", "Content-Length: 0"]),
    reason: "bad_header",
    respondable: true,
  },
  {
    name: "header name with illegal characters",
    raw: req(["INVITE sip:b@example.com SIP/2.0", ...BASE, "CSeq: 1 INVITE", "Bad<Name>: x", "Content-Length: 0"]),
    reason: "bad_header",
    respondable: true,
  },
  {
    name: "garbage Via",
    raw: req(["INVITE sip:b@example.com SIP/2.0", "Via: this is not a via", ...BASE.slice(1), "CSeq: 1 INVITE", "Content-Length: 0"]),
    reason: "bad_via",
    respondable: false,
  },
  {
    name: "non-numeric Max-Forwards",
    raw: req(["INVITE sip:b@example.com SIP/2.0", ...BASE, "CSeq: 1 INVITE", "Max-Forwards: many", "Content-Length: 0"]),
    reason: "bad_max_forwards",
    respondable: true,
  },
  {
    name: "status code out of range",
    raw: req(["SIP/2.0 999 Nope", ...BASE, "CSeq: 1 INVITE", "Content-Length: 0"]),
    reason: "bad_start_line",
    respondable: false,
  },
  {
    name: "unterminated quoted display name in From (strict)",
    raw: req(["INVITE sip:b@example.com SIP/2.0", BASE[0]!, 'From: "Alice <sip:a@example.com>;tag=a', BASE[2]!, BASE[3]!, "CSeq: 1 INVITE", "Content-Length: 0"]),
    reason: "bad_from_to",
    respondable: true,
    strictOnly: true,
  },
  {
    name: "Request-URI with a bad host (strict)",
    raw: req(["INVITE sip:b@exa<mple>.com SIP/2.0", ...BASE, "CSeq: 1 INVITE", "Content-Length: 0"]),
    reason: "bad_request_uri",
    respondable: true,
    strictOnly: true,
  },
  {
    name: "Request-URI port out of range (strict)",
    raw: req(["INVITE sip:b@example.com:70000 SIP/2.0", ...BASE, "CSeq: 1 INVITE", "Content-Length: 0"]),
    reason: "bad_request_uri",
    respondable: true,
    strictOnly: true,
  },
];
