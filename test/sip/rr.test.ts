/** Unit tests of the record-routing helpers (src/sip/rr.ts): tokens, hops, rewriting, loop hash. */
import { createHmac } from "node:crypto";
import { describe, expect, it, vi } from "vitest";
import { Listener, parseNameAddr, parseOrThrow, parseUri, type SipUri } from "../../src/sip/index.js";
import {
  DialogSigner,
  hopOfUri,
  inviteBinding,
  isLooped,
  loopBranch,
  loopHash,
  recordRouteFor,
  rewriteRecordRoute,
  routeInDialog,
  type DialogBinding,
} from "../../src/sip/rr.js";

const local = { isLocalUri: (u: SipUri) => u.hostname === "10.0.0.1" && (u.port ?? 5060) === 5060 };
const b: DialogBinding = { callId: "c1@x", ftag: "F", flow: "udp~192.0.2.1~5060", up: ["192.0.2.1~5060"], down: ["198.51.100.5~5070"] };

function req(lines: string[]): ReturnType<typeof parseOrThrow> {
  return parseOrThrow([...lines, "Content-Length: 0", "", ""].join("\r\n"));
}

describe("dialog tokens", () => {
  it("verify with the signing secret and with a previous one, not with another; any field change breaks it", () => {
    const s = new DialogSigner(["new-secret-0123456789"]);
    const sig = s.sign(b);
    expect(sig).toMatch(/^[A-Za-z0-9_-]{22}$/);
    expect(s.verify(b, sig)).toBe(true);
    expect(new DialogSigner(["newer-one-0123456789", "new-secret-0123456789"]).verify(b, sig)).toBe(true);
    expect(new DialogSigner(["other-secret-0123456789"]).verify(b, sig)).toBe(false);
    for (const changed of [{ ...b, callId: "c2@x" }, { ...b, ftag: "G" }, { ...b, flow: "udp~192.0.2.2~5060" }, { ...b, up: [] }, { ...b, down: ["203.0.113.9~5060", ...b.down] }]) {
      expect(s.verify(changed, sig)).toBe(false);
    }
    expect(s.verify(b, "short")).toBe(false);
  });

  it("keeps the token format: HMAC-SHA256 over the binding, first 128 bits, base64url (tokens from earlier versions verify)", () => {
    const secret = "new-secret-0123456789";
    const masked = { ...b, callId: "ç1@x", mask: "+15125550100" };
    for (const x of [b, masked]) {
      const input = "dg1\n" + x.callId + "\n" + x.ftag + "\n" + x.flow + "\n" + x.up.join("*") + "\n" + x.down.join("*") + (x.mask !== undefined ? "\nm" + x.mask : "");
      const expected = createHmac("sha256", secret).update(input).digest().subarray(0, 16).toString("base64url");
      expect(new DialogSigner([secret]).sign(x)).toBe(expected);
      expect(new DialogSigner(["other-0123456789", secret]).verify(x, expected)).toBe(true);
    }
  });

  it("remembers each Record-Route value it writes as the parser and the verifier would read it", () => {
    const s = new DialogSigner(["k".repeat(32)]);
    const listeners = [
      new Listener("udp", "127.0.0.1", 5060, undefined),
      new Listener("tcp", "10.0.0.1", 5060, "Edge.Example.com:5080"),
      new Listener("tls", "::1", 5061, undefined),
    ];
    const bindings: DialogBinding[] = [b, { ...b, ftag: "", flow: "", up: [] }, { ...b, flow: "tcp~[2001:db8::1]~5060", mask: "+15125550100" }];
    for (const l of listeners) {
      for (const x of bindings) {
        const value = recordRouteFor(l, x, s);
        // the token passed in (a double Record-Route signs once) gives the same value
        expect(recordRouteFor(l, x, s, s.sign(x))).toBe(value);
        const own = s.ownValue(x.callId, value);
        expect(own).toBeDefined();
        const parsed = parseNameAddr(value)!.parsedUri!;
        expect({ ...own!.uri }).toEqual({ ...parsed });
        expect(own!.uri.toString()).toBe(value.slice(1, -1));
        // what a fresh signer reads from the value and verifies: the same binding
        const fresh = new DialogSigner(["k".repeat(32)]);
        const res = parseOrThrow(["SIP/2.0 200 OK", "Via: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK1", "Record-Route: " + value, `Call-ID: ${x.callId}`, "From: <sip:a@x>;tag=F", "To: <sip:b@y>;tag=T", "CSeq: 1 INVITE", "Content-Length: 0", "", ""].join("\r\n"));
        const isLocal = { isLocalUri: (u: SipUri) => u.host === l.advertisedHost && u.port === l.advertisedPort };
        expect(rewriteRecordRoute(isLocal, res, fresh)).toBe(true);
        expect(fresh.ownValue(x.callId, value)!.b).toEqual(own!.b);
        expect(s.ownValue("another-call", value)).toBeUndefined();
      }
    }
  });

  it("remembers the value it rewrites for the callee's Contact, as the parser reads it", () => {
    const s = new DialogSigner(["k".repeat(32)]);
    const value = recordRouteFor(new Listener("udp", "10.0.0.1", 5060, undefined), b, s);
    const res = parseOrThrow(
      ["SIP/2.0 200 OK", "Via: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK1", "Record-Route: " + value, `Call-ID: ${b.callId}`, "From: <sip:a@x>;tag=F", "To: <sip:b@y>;tag=T", "Contact: <sip:pbx@203.0.113.7:5080>", "CSeq: 1 INVITE", "Content-Length: 0", "", ""].join("\r\n"),
    );
    expect(rewriteRecordRoute(local, res, s)).toBe(true);
    const rewritten = res.recordRoutes[0]!;
    expect(rewritten).not.toBe(value);
    const own = s.ownValue(b.callId, rewritten)!;
    expect(own.b.down).toEqual(["203.0.113.7~5080", ...b.down]);
    expect({ ...own.uri }).toEqual({ ...parseNameAddr(rewritten)!.parsedUri! });
    expect(new DialogSigner(["k".repeat(32)]).verify(own.b, /dgs=([^;>]+)/.exec(rewritten)![1]!)).toBe(true);
    // the 200 after the 180: the same value and Contact, the same rewrite without signing again;
    // another Contact (a forked response) is signed for its own hop
    const again = (contact: string) =>
      parseOrThrow(
        ["SIP/2.0 200 OK", "Via: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK1", "Record-Route: " + value, `Call-ID: ${b.callId}`, "From: <sip:a@x>;tag=F", "To: <sip:b@y>;tag=T2", `Contact: <${contact}>`, "CSeq: 1 INVITE", "Content-Length: 0", "", ""].join("\r\n"),
      );
    const sign = vi.spyOn(s, "sign");
    const second = again("sip:pbx@203.0.113.7:5080");
    expect(rewriteRecordRoute(local, second, s)).toBe(true);
    expect(second.recordRoutes[0]).toBe(rewritten);
    expect(sign).not.toHaveBeenCalled();
    const forked = again("sip:other@203.0.113.8");
    expect(rewriteRecordRoute(local, forked, s)).toBe(true);
    expect(sign).toHaveBeenCalledTimes(1);
    expect(s.ownValue(b.callId, forked.recordRoutes[0]!)!.b.down).toEqual(["203.0.113.8~5060", ...b.down]);
  });

  it("remembers the values of ours in a bounded map; a forgotten value is parsed and verified again, a forged one never enters", () => {
    const s = new DialogSigner(["k".repeat(32), "o".repeat(32)], 4);
    const l = new Listener("udp", "10.0.0.1", 5060, undefined);
    const value = recordRouteFor(l, b, s);
    expect(s.ownValue(b.callId, value)).toBeDefined();
    // bounded: 50 dialogs later the map holds 4 values and the first is forgotten
    for (let i = 0; i < 50; i++) recordRouteFor(l, { ...b, callId: "call-" + i }, s);
    const inner = s as unknown as { own: { size: number } };
    expect(inner.own.size).toBe(4);
    expect(s.ownValue(b.callId, value)).toBeUndefined();
    const res = (rr: string, callId = b.callId) =>
      parseOrThrow(["SIP/2.0 200 OK", "Via: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK1", "Record-Route: " + rr, `Call-ID: ${callId}`, "From: <sip:a@x>;tag=F", "To: <sip:b@y>;tag=T", "CSeq: 1 INVITE", "Content-Length: 0", "", ""].join("\r\n"));
    // the forgotten value: parsed, verified, remembered again
    expect(rewriteRecordRoute(local, res(value), s)).toBe(true);
    expect(s.ownValue(b.callId, value)!.b).toEqual(b);
    // a token of the previous secret verifies (not with another Call-ID, nor by a signer without that secret)
    const old = recordRouteFor(l, { ...b, callId: "old" }, new DialogSigner(["o".repeat(32)]));
    expect(rewriteRecordRoute(local, res(old, "other"), s)).toBe(false);
    expect(rewriteRecordRoute(local, res(old, "old"), new DialogSigner(["k".repeat(32)]))).toBe(false);
    expect(rewriteRecordRoute(local, res(old, "old"), s)).toBe(true);
    expect(s.ownValue("old", old)).toBeDefined();
    // one character of the token changed: refused, and not remembered
    const sig = /dgs=([^;>]+)/.exec(value)![1]!;
    const forged = value.replace(sig, sig.slice(0, 21) + (sig[21] === "A" ? "Q" : "A"));
    expect(rewriteRecordRoute(local, res(forged), s)).toBe(false);
    expect(s.ownValue(b.callId, forged)).toBeUndefined();
    // every field still binds: a token verified once does not verify for another binding
    const tok = s.sign(b);
    for (const changed of [{ ...b, callId: "c2@x" }, { ...b, ftag: "G" }, { ...b, up: [] }, { ...b, mask: "+15125550100" }]) expect(s.verify(changed, tok)).toBe(false);
    expect(s.verify(b, tok)).toBe(true);
  });

  it("hops: lower-case host, IPv6 in brackets, default port by transport, maddr wins", () => {
    const h = (u: string) => hopOfUri(parseUri(u)!);
    expect(h("sip:a@Host.Example.NET")).toBe("host.example.net~5060");
    expect(h("sips:a@host")).toBe("host~5061");
    expect(h("sip:a@host;transport=TLS")).toBe("host~5061");
    expect(h("sip:[2001:DB8::1]:5080")).toBe("[2001:db8::1]~5080");
    expect(h("sip:a@host;maddr=10.9.9.9")).toBe("10.9.9.9~5060");
  });

  it("the INVITE binding: first Record-Route (else Contact) and the flow towards the caller", () => {
    const inv = req([
      "INVITE sip:+1@10.0.0.1 SIP/2.0",
      "Via: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK1",
      "Record-Route: <sip:sbc.carrier.example;lr>",
      "From: <sip:a@x>;tag=F",
      "To: <sip:b@y>",
      "Call-ID: c1@x",
      "CSeq: 1 INVITE",
      "Contact: <sip:a@192.0.2.50>",
    ]);
    const x = inviteBinding(inv, { transport: "udp", address: "192.0.2.1", port: 5060 }, ["t~1"]);
    expect(x).toEqual({ callId: "c1@x", ftag: "F", flow: "udp~192.0.2.1~5060", up: ["sbc.carrier.example~5060", "192.0.2.1~5060"], down: ["t~1"] });
  });

  it("rewriting in a 2xx adds the hop above ours (a callee-side proxy) and keeps other values", () => {
    const s = new DialogSigner(["k".repeat(32)]);
    const ours = `<sip:10.0.0.1:5060;lr;ftag=F;dgc=udp~192.0.2.1~5060;dgu=192.0.2.1~5060;dgd=198.51.100.5~5070;dgs=${s.sign(b)}>`;
    const ok = req([
      "SIP/2.0 200 OK",
      "Via: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK1",
      `Record-Route: <sip:pbx-proxy.example:5090;lr>, ${ours}`,
      "Record-Route: <sip:sbc.carrier.example;lr>",
      "From: <sip:a@x>;tag=F",
      "To: <sip:b@y>;tag=T",
      "Call-ID: c1@x",
      "CSeq: 1 INVITE",
      "Contact: <sip:callee@198.51.100.77>",
    ]);
    expect(rewriteRecordRoute(local, ok, s)).toBe(true);
    const rr = ok.recordRoutes;
    expect(rr[0]).toBe("<sip:pbx-proxy.example:5090;lr>");
    expect(rr[1]).toContain("dgd=pbx-proxy.example~5090*198.51.100.5~5070");
    expect(rr[2]).toBe("<sip:sbc.carrier.example;lr>");
    // the caller's BYE through that route set verifies and may go to the proxy
    const bye = req([
      "BYE sip:callee@198.51.100.77 SIP/2.0",
      "Via: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK2",
      `Route: ${rr[1]}, <sip:pbx-proxy.example:5090;lr>`,
      "From: <sip:a@x>;tag=F",
      "To: <sip:b@y>;tag=T",
      "Call-ID: c1@x",
      "CSeq: 2 BYE",
    ]);
    const r = routeInDialog(local, bye, s);
    expect("forged" in r).toBe(false);
    if ("forged" in r) return;
    expect(r.upstream).toBe(false);
    expect(r.nextHop).toBe("pbx-proxy.example~5090");
    expect(r.hopAllowed).toBe(true);
    // a forged value of ours is left alone (and the caller's requests will fail)
    const bad = req(["SIP/2.0 200 OK", "Via: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK1", `Record-Route: ${ours.replace("dgs=", "dgs=x")}`, "From: <sip:a@x>;tag=F", "To: <sip:b@y>;tag=T", "Call-ID: c1@x", "CSeq: 1 INVITE"]);
    expect(rewriteRecordRoute(local, bad, s)).toBe(false);
  });

  it("a value of ours seen before is taken from memory only for the same Call-ID: the same route as parsing it, the value with another Call-ID or changed still refused", () => {
    const s = new DialogSigner(["k".repeat(32)], 4);
    const ours = `<sip:10.0.0.1:5060;lr;ftag=F;dgc=udp~192.0.2.1~5060;dgu=192.0.2.1~5060;dgd=198.51.100.5~5070;dgs=${s.sign(b)}>`;
    const bye = (callId: string, route: string) =>
      req(["BYE sip:callee@198.51.100.5:5070 SIP/2.0", "Via: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK2", `Route: ${route}`, "From: <sip:a@x>;tag=F", "To: <sip:b@y>;tag=T", `Call-ID: ${callId}`, "CSeq: 2 BYE"]);
    const first = routeInDialog(local, bye("c1@x", ours), s);
    const inner = s as unknown as { own: Map<string, unknown> };
    expect(inner.own.size).toBe(1);
    const again = routeInDialog(local, bye("c1@x", ours), s);
    expect(again).toEqual(first);
    if ("forged" in again) throw new Error(again.forged);
    expect(again.upstream).toBe(false);
    expect(again.hopAllowed).toBe(true);
    expect(again.nextHop).toBe("198.51.100.5~5070");
    // the same value in another dialog, or with a hop added, is checked afresh and refused
    expect(routeInDialog(local, bye("c2@x", ours), s)).toEqual({ forged: "bad_token" });
    expect(routeInDialog(local, bye("c1@x", ours.replace("dgd=", "dgd=203.0.113.9~5060*")), s)).toEqual({ forged: "bad_token" });
    // a 2xx echoing the value: the same rewrite from memory as from parsing
    const ok = () => req(["SIP/2.0 200 OK", "Via: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK1", `Record-Route: ${ours}`, "From: <sip:a@x>;tag=F", "To: <sip:b@y>;tag=T", "Call-ID: c1@x", "CSeq: 1 INVITE", "Contact: <sip:callee@198.51.100.77>"]);
    const fresh = ok();
    expect(rewriteRecordRoute(local, fresh, new DialogSigner(["k".repeat(32)]))).toBe(true);
    const remembered = ok();
    expect(rewriteRecordRoute(local, remembered, s)).toBe(true);
    expect(remembered.recordRoutes).toEqual(fresh.recordRoutes);
    // bounded like the other maps
    for (let i = 0; i < 20; i++) {
      const x = { ...b, callId: "call-" + i };
      expect("forged" in routeInDialog(local, bye(x.callId, ours.replace(/dgs=[^>]*/, "dgs=" + s.sign(x))), s)).toBe(false);
    }
    expect(inner.own.size).toBe(4);
    expect(routeInDialog(local, bye("c1@x", ours), s)).toEqual(first);
  });

  it("a masked dialog's proxy number (dgm) is signed: changed, added or dropped it breaks the token; unmasked tokens are unchanged", () => {
    const s = new DialogSigner(["k".repeat(32)]);
    const m: DialogBinding = { ...b, mask: "+15125550200" };
    const sig = s.sign(m);
    expect(s.verify(m, sig)).toBe(true);
    expect(s.verify({ ...m, mask: "+15125550201" }, sig)).toBe(false);
    expect(s.verify(b, sig)).toBe(false);
    expect(s.verify(m, s.sign(b))).toBe(false);
    // the dialog token of an unmasked call did not change (tokens of calls set up before still verify)
    expect(s.sign(b)).toBe(new DialogSigner(["k".repeat(32)]).sign({ callId: b.callId, ftag: b.ftag, flow: b.flow, up: b.up, down: b.down }));
    // carried through a 2xx rewrite and back in the caller's BYE
    const ours = `<sip:10.0.0.1:5060;lr;ftag=F;dgc=udp~192.0.2.1~5060;dgu=192.0.2.1~5060;dgd=198.51.100.5~5070;dgm=+15125550200;dgs=${sig}>`;
    const ok = req(["SIP/2.0 200 OK", "Via: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK1", `Record-Route: ${ours}`, "From: <sip:a@x>;tag=F", "To: <sip:b@y>;tag=T", "Call-ID: c1@x", "CSeq: 1 INVITE", "Contact: <sip:callee@198.51.100.77>"]);
    expect(rewriteRecordRoute(local, ok, s)).toBe(true);
    expect(ok.recordRoutes[0]).toContain(";dgm=+15125550200;");
    const bye = req(["BYE sip:callee@198.51.100.77 SIP/2.0", "Via: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK2", `Route: ${ok.recordRoutes[0]}`, "From: <sip:a@x>;tag=F", "To: <sip:b@y>;tag=T", "Call-ID: c1@x", "CSeq: 2 BYE"]);
    const r = routeInDialog(local, bye, s);
    if ("forged" in r) throw new Error(r.forged);
    expect(r.binding.mask).toBe("+15125550200");
  });
});

describe("flow tokens (calls between edges)", () => {
  it("bind the Call-ID, the flow and the expiry; a previous secret verifies, another does not; a dialog token is no flow token", () => {
    const s = new DialogSigner(["new secret", "old secret"]);
    const old = new DialogSigner(["old secret"]);
    const flow = "tcp~198.51.100.7~40000";
    const sig = s.signFlow("call-1", flow, 1000);
    expect(sig).toHaveLength(22);
    expect(s.verifyFlow("call-1", flow, 1000, sig)).toBe(true);
    expect(s.verifyFlow("call-1", flow, 1000, old.signFlow("call-1", flow, 1000))).toBe(true);
    expect(s.verifyFlow("call-2", flow, 1000, sig)).toBe(false);
    expect(s.verifyFlow("call-1", "tcp~198.51.100.7~40001", 1000, sig)).toBe(false);
    expect(s.verifyFlow("call-1", flow, 1001, sig)).toBe(false);
    expect(s.verifyFlow("call-1", flow, 1000, new DialogSigner(["another"]).signFlow("call-1", flow, 1000))).toBe(false);
    expect(s.verifyFlow("call-1", flow, 1000, "short")).toBe(false);
    // the same fields signed as a dialog binding do not make a flow token
    const dialog = s.sign({ callId: "call-1", ftag: "", flow, up: [], down: [] });
    expect(s.verifyFlow("call-1", flow, 1000, dialog)).toBe(false);
  });
});

describe("loop hash", () => {
  const inv = (ruri: string, vias: string[]) =>
    req([`INVITE ${ruri} SIP/2.0`, ...vias.map((v) => `Via: ${v}`), "From: <sip:a@x>;tag=F", "To: <sip:b@y>", "Call-ID: c9@x", "CSeq: 7 INVITE", "Max-Forwards: 60"]);
  const isLocal = (h: string, p: number | undefined) => h === "10.0.0.1" && (p ?? 5060) === 5060;

  it("our Via with the hash of the same request is a loop; another Request-URI is a spiral; another host's Via is not ours", () => {
    const first = inv("sip:+1@10.0.0.1", ["SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK1"]);
    const ourVia = `SIP/2.0/UDP 10.0.0.1:5060;branch=${loopBranch(loopHash(first), "abc-1")};rport`;
    expect(isLooped(isLocal, inv("sip:+1@10.0.0.1", ["SIP/2.0/UDP 10.0.0.7;branch=z9hG4bKx", ourVia, "SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK1"]))).toBe(true);
    expect(isLooped(isLocal, inv("sip:+2@10.0.0.1", [ourVia, "SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK1"]))).toBe(false);
    const theirs = ourVia.replace("10.0.0.1:5060", "10.0.0.2:5060");
    expect(isLooped(isLocal, inv("sip:+1@10.0.0.1", [theirs, "SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK1"]))).toBe(false);
    expect(isLooped(isLocal, first)).toBe(false);
  });
});
