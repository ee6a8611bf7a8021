import { describe, expect, it } from "vitest";
import {
  SipMessage,
  SipParseError,
  canRespond,
  createResponse,
  parseMessage,
  parseOrThrow,
} from "../../src/sip/index.js";
import { parseVia, parseCSeq } from "../../src/sip/headers.js";
import { parseNameAddr, parseUri } from "../../src/sip/uri.js";
import { splitList } from "../../src/sip/syntax.js";
import { INVALID, VALID } from "./corpus.js";
import { INVITE_BUF, RESPONSE_200, forwardRewrite } from "../../bench/sip-parse.js";

function must(buf: Buffer, strict = true): SipMessage {
  const r = parseMessage(buf, { strict });
  if (r instanceof SipParseError) throw new Error(r.toString());
  return r;
}

describe("corpus: valid messages", () => {
  for (const c of VALID) {
    it(c.name, () => {
      const m = must(c.raw);
      const k = c.check;
      const via = m.topVia!;
      const got: Record<string, unknown> = {};
      for (const key of Object.keys(k)) {
        switch (key) {
          case "method": got[key] = m.method; break;
          case "uri": got[key] = m.requestUri; break;
          case "status": got[key] = m.status; break;
          case "reason": got[key] = m.reason; break;
          case "callId": got[key] = m.callId; break;
          case "cseq": got[key] = [m.cseq!.seq, m.cseq!.method]; break;
          case "fromTag": got[key] = m.fromTag; break;
          case "toTag": got[key] = m.toTag; break;
          case "fromDisplay": got[key] = m.from!.displayName; break;
          case "toUri": got[key] = m.to!.uri; break;
          case "branch": got[key] = via.branch; break;
          case "received": got[key] = via.received; break;
          case "rport": got[key] = via.rport; break;
          case "viaHost": got[key] = via.host; break;
          case "viaHostname": got[key] = via.hostname; break;
          case "viaPort": got[key] = via.port; break;
          case "viaTransport": got[key] = via.transport; break;
          case "vias": got[key] = m.vias.length; break;
          case "routes": got[key] = m.routes; break;
          case "maxForwards": got[key] = m.maxForwards; break;
          case "contact": got[key] = m.get("contact"); break;
          case "contacts": got[key] = m.getAll("m").length; break;
          case "supported": got[key] = m.get("Supported"); break;
          case "subject": got[key] = m.get("subject"); break;
          case "newfangled": got[key] = m.get("newfangledheader"); break;
          case "body": got[key] = m.body.toString("utf8"); break;
          case "uriUser": got[key] = m.parsedRequestUri!.user; break;
          case "uriUserUnescaped": got[key] = m.parsedRequestUri!.userUnescaped; break;
          case "uriHost": got[key] = m.parsedRequestUri!.host; break;
          case "uriPort": got[key] = m.parsedRequestUri!.port; break;
          case "uriScheme": got[key] = m.parsedRequestUri!.scheme; break;
          default: throw new Error("unknown check " + key);
        }
      }
      expect(got).toEqual(k);
      // an untouched message re-serialises byte-exact (apart from leading CRLFs and a missing
      // Content-Length, which the serialiser adds)
      const out = m.toBuffer();
      const again = must(out);
      expect(again.fields.map((f) => [f.name, f.value]).filter(([n]) => n !== "Content-Length")).toEqual(
        m.fields.map((f) => [f.name, f.value]).filter(([n]) => n !== "Content-Length"),
      );
      expect(again.body.equals(m.body)).toBe(true);
    });
  }
});

describe("corpus: invalid messages", () => {
  for (const c of INVALID) {
    it(c.name, () => {
      const r = parseMessage(c.raw, { strict: true });
      expect(r).toBeInstanceOf(SipParseError);
      const e = r as SipParseError;
      expect(e.reason).toBe(c.reason);
      expect(canRespond(e.partial)).toBe(c.respondable);
      if (c.respondable) {
        const res = createResponse(e.partial!, e.status);
        const text = res.toString();
        expect(text.startsWith("SIP/2.0 400 Bad Request\r\n")).toBe(true);
        expect(text).toContain("\r\nCall-ID: bad@x\r\n");
        expect(text).toContain("\r\nVia: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKbad\r\n");
      }
      if (c.strictOnly) expect(parseMessage(c.raw)).toBeInstanceOf(SipMessage);
    });
  }
  it("rejects messages over the size limit and too many / too long headers", () => {
    const big = Buffer.alloc(70000, 65);
    expect((parseMessage(big) as SipParseError).reason).toBe("too_large");
    const many = Buffer.from(
      "OPTIONS sip:a@b SIP/2.0\r\n" + "X-A: 1\r\n".repeat(101) + "\r\n",
    );
    expect((parseMessage(many) as SipParseError).reason).toBe("too_many_headers");
    const long = Buffer.from("OPTIONS sip:a@b SIP/2.0\r\nX-A: " + "y".repeat(9000) + "\r\n\r\n");
    expect((parseMessage(long) as SipParseError).reason).toBe("header_too_long");
    const custom = parseMessage(INVITE_BUF, { limits: { maxMessageSize: 2000, maxHeaders: 10, maxHeaderLength: 1000 } });
    expect((custom as SipParseError).reason).toBe("too_many_headers");
  });
  it("answers the right status for version errors", () => {
    const r = parseMessage(Buffer.from("SIP/3.0 200 OK\r\n\r\n")) as SipParseError;
    expect(r.reason).toBe("bad_version");
    expect(r.status).toBe(505);
  });
});

describe("proxy edits", () => {
  it("forward rewrite keeps untouched headers byte-exact", () => {
    const m = must(INVITE_BUF);
    const out = forwardRewrite(m).toString("latin1");
    const lines = out.split("\r\n");
    expect(lines[0]).toBe("INVITE sip:+15125550100@10.1.2.3:5060;transport=udp SIP/2.0");
    expect(lines[1]).toMatch(/^Via: SIP\/2.0\/UDP 203.0.113.10:5060;branch=z9hG4bK-didgate/);
    expect(lines[2]).toBe("Via: SIP/2.0/UDP 198.51.100.20:5060;branch=z9hG4bK-524287-1---7f3c9a1e4b2d8c60;rport");
    expect(lines[3]).toBe("Record-Route: <sip:203.0.113.10;lr>");
    expect(lines[4]).toBe("Max-Forwards: 68");
    expect(lines[5]).toBe("Route: <sip:203.0.113.11;lr;transport=udp>");
    // every original line except the edited ones appears verbatim
    const orig = INVITE_BUF.toString("latin1").split("\r\n");
    for (const l of orig.slice(1)) {
      if (/^(Max-Forwards|Route):/.test(l)) continue;
      expect(lines).toContain(l);
    }
    const back = must(Buffer.from(out, "latin1"));
    expect(back.vias.length).toBe(2);
    expect(back.body.equals(m.body)).toBe(true);
    expect(back.maxForwards).toBe(68);
  });

  it("serialised messages never share bytes (small ones are cut from shared slabs, large ones are not)", () => {
    const outs: Buffer[] = [];
    const want: string[] = [];
    for (let i = 0; i < 300; i++) {
      const m = must(INVITE_BUF);
      m.requestUri = "sip:+1512555" + String(i).padStart(4, "0") + "@10.1.2.3";
      if (i % 50 === 7) m.setBody("x".repeat(5000 + i)); // above the slab piece size
      const b = m.toBuffer();
      outs.push(b);
      want.push(b.toString("latin1"));
    }
    // every earlier buffer still holds its own message after all later ones were written
    for (let i = 0; i < outs.length; i++) {
      expect(outs[i]!.toString("latin1")).toBe(want[i]);
      expect(want[i]!.startsWith("INVITE sip:+1512555" + String(i).padStart(4, "0") + "@10.1.2.3 SIP/2.0\r\n")).toBe(true);
    }
    for (let i = 1; i < outs.length; i++) {
      const a = outs[i - 1]!;
      const b = outs[i]!;
      if (a.buffer === b.buffer) expect(b.byteOffset).toBeGreaterThanOrEqual(a.byteOffset + a.length);
    }
  });

  it("pops the only Route line and the top Via of a response", () => {
    const m = must(INVITE_BUF);
    expect(m.popRoute()).toBe("<sip:203.0.113.10;lr>");
    expect(m.popRoute()).toBe("<sip:203.0.113.11;lr;transport=udp>");
    expect(m.popRoute()).toBeUndefined();
    expect(m.has("route")).toBe(false);
    const r = must(RESPONSE_200);
    expect(r.popVia()).toContain("didgate");
    expect(r.topVia!.received).toBe("198.51.100.20");
    const back = must(r.toBuffer());
    expect(back.vias.length).toBe(1);
    expect(back.body.equals(r.body)).toBe(true);
  });

  it("decrementMaxForwards stops at zero and adds the header when absent", () => {
    const m = SipMessage.request("OPTIONS", "sip:a@b", [["Max-Forwards", "1"]]);
    expect(m.decrementMaxForwards()).toBe(0);
    expect(m.decrementMaxForwards()).toBe(-1);
    const n = SipMessage.request("OPTIONS", "sip:a@b");
    expect(n.decrementMaxForwards()).toBe(70);
    expect(n.get("max-forwards")).toBe("70");
  });

  it("replaceTopVia keeps the other values of a multi-value line", () => {
    const m = must(VALID[3]!.raw);
    m.replaceTopVia("SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bKtop;received=192.0.2.99;rport=7");
    expect(m.vias.length).toBe(3);
    expect(m.topVia!.rport).toBe(7);
    expect(must(m.toBuffer()).topVia!.rport).toBe(7);
  });

  it("clone is independent", () => {
    const m = must(INVITE_BUF);
    const c = m.clone();
    c.pushVia("SIP/2.0/TCP x.example;branch=z9hG4bKc");
    c.requestUri = "sip:other@example.com";
    expect(m.vias.length).toBe(1);
    expect(m.requestUri).toBe("sip:+15125550100@203.0.113.10:5060;user=phone");
    expect(c.vias.length).toBe(2);
  });

  it("set / append / prepend / remove", () => {
    const m = must(INVITE_BUF);
    m.set("x-test", "1");
    m.append("X-Test", "2");
    expect(m.getAll("x-test")).toEqual(["1", "2"]);
    m.set("X-TEST", "3");
    expect(m.getAll("x-test")).toEqual(["3"]);
    m.prepend("Supported", "path");
    expect(m.getAll("k")).toEqual(["path", "replaces, timer, 100rel"]);
    expect(m.getList("supported")).toEqual(["path", "replaces", "timer", "100rel"]);
    expect(m.remove("supported")).toBe(2);
    expect(m.get("supported")).toBeUndefined();
    m.setBody("hello", "text/plain");
    const back = must(m.toBuffer());
    expect(back.body.toString()).toBe("hello");
    expect(back.get("content-type")).toBe("text/plain");
    expect(back.get("content-length")).toBe("5");
  });
});

describe("createResponse", () => {
  it("copies Via/From/To/Call-ID/CSeq and adds a To tag", () => {
    const m = must(VALID[3]!.raw);
    const r = createResponse(m, 486, undefined, { toTag: "tt", headers: [["Retry-After", "30"]] });
    const back = must(r.toBuffer());
    expect(back.status).toBe(486);
    expect(back.reason).toBe("Busy Here");
    expect(back.vias).toEqual(m.vias);
    expect(back.toTag).toBe("b"); // request already had one
    expect(back.get("retry-after")).toBe("30");
    const inv = must(INVITE_BUF);
    const t = must(createResponse(inv, 180, undefined, { toTag: "x1" }).toBuffer());
    expect(t.toTag).toBe("x1");
    const trying = must(createResponse(inv, 100).toBuffer());
    expect(trying.toTag).toBeUndefined();
    expect(trying.cseq).toEqual({ seq: 102, method: "INVITE" });
  });
});

describe("value parsers", () => {
  it("Via", () => {
    const v = parseVia("SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK1;rport;received=10.0.0.1;maddr=224.2.0.1;ttl=1")!;
    expect([v.transport, v.host, v.port, v.branch, v.rport, v.received, v.maddr]).toEqual(["UDP", "192.0.2.1", 5060, "z9hG4bK1", null, "10.0.0.1", "224.2.0.1"]);
    expect(v.toString()).toBe("SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK1;rport;received=10.0.0.1;maddr=224.2.0.1;ttl=1");
    expect(parseVia("SIP/2.0/UDP")).toBeNull();
    expect(parseVia("SIP/2.0/UDP host:99999")).toBeNull();
    expect(parseVia("SIP/2.0/UDP ho st")).toBeNull();
    expect(parseVia("SIP/2.0/UDP [::1")).toBeNull();
  });
  it("CSeq", () => {
    expect(parseCSeq("  42   ACK ")).toEqual({ seq: 42, method: "ACK" });
    expect(parseCSeq("42ACK")).toBeNull();
    expect(parseCSeq("-1 ACK")).toBeNull();
    expect(parseCSeq("2147483648 ACK")).toBeNull();
    expect(parseCSeq("1 ACK extra")).toBeNull();
  });
  it("URIs", () => {
    const u = parseUri("sips:alice:secret@[2001:db8::1]:5061;transport=tls;lr?subject=hi")!;
    expect([u.scheme, u.user, u.password, u.host, u.hostname, u.port, u.param("transport"), u.param("lr"), u.headers]).toEqual([
      "sips", "alice", "secret", "[2001:db8::1]", "2001:db8::1", 5061, "tls", null, "subject=hi",
    ]);
    expect(u.toString()).toBe("sips:alice:secret@[2001:db8::1]:5061;transport=tls;lr?subject=hi");
    expect(parseUri("http://example.com/x")!.opaque).toBe("//example.com/x");
    expect(parseUri("sip:@example.com")).toBeNull();
    expect(parseUri("sip:a@example.com:0x1")).toBeNull();
    expect(parseUri("sip:a%zz@example.com")).toBeNull();
    expect(parseUri("nocolon")).toBeNull();
    expect(parseUri("1sip:x")).toBeNull();
  });
  it("name-addr", () => {
    const a = parseNameAddr('  Alice Smith <sip:alice@example.com;transport=tcp> ; tag = 9 ; x')!;
    expect([a.displayName, a.uri, a.tag, a.param("x")]).toEqual(["Alice Smith", "sip:alice@example.com;transport=tcp", "9", null]);
    const s = parseNameAddr("sip:bob@example.com;tag=t")!;
    expect([s.uri, s.tag]).toEqual(["sip:bob@example.com", "t"]);
    expect(parseNameAddr("<sip:x@y")).toBeNull();
    expect(parseNameAddr("Bad\"Name <sip:x@y>")).toBeNull();
    expect(parseNameAddr("<nocolon>")).toBeNull();
    expect(parseNameAddr('"x" <sip:a@b>')!.toString()).toBe('"x" <sip:a@b>');
  });
  it("splitList respects quotes and angle brackets", () => {
    expect(splitList('a, "b,c" <sip:x,y>;p="q,r" , d,,')).toEqual(['a', '"b,c" <sip:x,y>;p="q,r"', "d"]);
  });
  it("parseOrThrow throws a readable error", () => {
    expect(() => parseOrThrow("garbage")).toThrow(/bad_start_line/);
  });
});
