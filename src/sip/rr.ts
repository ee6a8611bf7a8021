/**
 * Record-routing without dialog state (RFC 3261 16.6 step 4, 16.7 step 9, 16.4 and 16.12 loose
 * routing), and loop detection (16.3 step 4, 16.6 step 8).
 *
 * The proxy's Record-Route URI carries what an in-dialog request needs, signed so that nobody
 * can invent it:
 *
 *   <sip:HOST:PORT;lr[;transport=tcp];ftag=FROMTAG;dgc=T~ADDR~PORT;dgu=HOPS;dgd=HOPS[;dgm=+E164];dgs=MAC>
 *
 *   ftag  the caller's From tag: a request whose From tag equals it goes towards the callee
 *         ("downstream"), one whose To tag equals it towards the caller ("upstream").
 *   dgc   the caller-side flow (transport, source address, port of the initial INVITE), so a
 *         request towards the caller reuses its TCP/TLS connection.
 *   dgu   next hops allowed towards the caller: the first Record-Route below ours in the INVITE
 *         (else its Contact) and the flow's address.
 *   dgd   next hops allowed towards the callee: the target the INVITE was sent to and, once a
 *         response carries them, the Record-Route above ours (else its Contact).
 *   dgm   a masked call's proxy number (docs/masking.md): requests towards the callee present it.
 *   dgs   HMAC-SHA256 (truncated to 128 bits) over the Call-ID and every value above, with a
 *         secret shared by the proxies of one edge group.
 *
 * The callee builds its route set from the INVITE, the caller from the 2xx (or a reliable 1xx),
 * so the proxy rewrites its value in responses (RFC 3261 16.7 step 9 allows it) once the callee's
 * Contact is known. A HOP is "host~port" (host lower-cased, IPv6 in brackets, default port
 * filled in), several joined by "*". Nothing is kept per dialog: a restarted proxy with the same
 * secret routes a BYE like before.
 */
import { createHmac, createSecretKey, timingSafeEqual, type KeyObject } from "node:crypto";
import type { SipMessage } from "./message.js";
import type { Listener, TransportKind } from "./transport.js";
import { formatParams, type Param } from "./syntax.js";
import { parseNameAddr, SipUri } from "./uri.js";
import { FifoCache } from "../util/fifo-cache.js";
import { HmacSha256 } from "../util/hmac-sha256.js";

/** A transport flow: transport, address and port of a peer. */
export interface Flow {
  readonly transport: TransportKind;
  readonly address: string;
  readonly port: number;
}

function bracket(address: string): string {
  return address.indexOf(":") >= 0 ? "[" + address + "]" : address;
}

/** The caller-side flow token for the dgc Record-Route parameter. */
export function flowToken(transport: TransportKind, address: string, port: number): string {
  return transport + "~" + bracket(address) + "~" + port;
}

export function parseFlowToken(s: string): Flow | null {
  const a = s.indexOf("~");
  const b = s.lastIndexOf("~");
  if (a <= 0 || b <= a) return null;
  const t = s.slice(0, a);
  if (t !== "udp" && t !== "tcp" && t !== "tls") return null;
  let address = s.slice(a + 1, b);
  if (address.startsWith("[") && address.endsWith("]")) address = address.slice(1, -1);
  const port = Number(s.slice(b + 1));
  if (!Number.isInteger(port) || port <= 0 || port > 65535 || address.length === 0) return null;
  return { transport: t, address, port };
}

/** "host~port" of an address and port. */
export function hopOfAddress(address: string, port: number): string {
  return bracket(address.toLowerCase()) + "~" + port;
}

/**
 * "host~port" of a SIP URI as a next hop: maddr or host (lower-cased, IPv6 in brackets), the
 * port as written or the default of its transport (5061 for sips: and transport=tls).
 */
export function hopOfUri(u: SipUri): string {
  const maddr = u.param("maddr");
  let host = typeof maddr === "string" && maddr.length > 0 ? maddr.toLowerCase() : u.host.toLowerCase();
  if (host.charCodeAt(0) !== 91 && host.indexOf(":") >= 0) host = "[" + host + "]";
  let port = u.port;
  if (port === undefined) {
    const tp = u.param("transport");
    port = u.scheme === "sips" || (typeof tp === "string" && tp.toLowerCase() === "tls") ? 5061 : 5060;
  }
  return host + "~" + port;
}

/** Hop of a name-addr value (Contact, Record-Route), or null. */
export function hopOfNameAddr(value: string | undefined): string | null {
  if (value === undefined) return null;
  const u = parseNameAddr(value)?.parsedUri;
  return u === null || u === undefined || !u.isSip ? null : hopOfUri(u);
}

/** What a dialog token binds. */
export interface DialogBinding {
  readonly callId: string;
  /** The caller's From tag. */
  readonly ftag: string;
  /** dgc flow token ("" when none). */
  readonly flow: string;
  /** Allowed next hops towards the caller. */
  readonly up: readonly string[];
  /** Allowed next hops towards the callee. */
  readonly down: readonly string[];
  /**
   * dgm: a masked dialog (docs/masking.md) and the proxy number it presents; in-dialog requests
   * towards the callee get it as their From. Absent for other dialogs.
   */
  readonly mask?: string;
}

/** A value of ours as parsed and verified: the URI (read only) and the binding its token signs. */
export interface OwnValue {
  readonly uri: SipUri;
  readonly b: DialogBinding;
  /**
   * The binding and token this value was last rewritten to for a callee-side hop (the 180 and
   * the 200 echo the same value and Contact: the second is not signed again).
   */
  rewritten?: { readonly hop: string; readonly b: DialogBinding; readonly sig: string };
}

/** Values of ours a DialogSigner remembers (see ownValue). */
export const DIALOG_VALUE_CACHE = 16384;

/**
 * Signs and checks dialog bindings with HMAC-SHA256; the first secret signs, all verify.
 *
 * A dialog's Record-Route value comes back byte for byte in every response that sets it up and
 * in every in-dialog request. So the signer remembers, in a bounded map (oldest entry out first),
 * each value it wrote (and each it parsed and verified) with its URI and binding: a value found
 * there is neither parsed nor verified again. Only values it signed or verified enter the map.
 * MACs themselves are not cached: one costs a few microseconds (src/util/hmac-sha256.ts), about
 * what a lookup keyed by the MAC input cost.
 */
export class DialogSigner {
  private readonly keys: KeyObject[];
  /** The same secrets for the dialog MAC (src/util/hmac-sha256.ts says why not createHmac). */
  private readonly macs: HmacSha256[];
  private readonly own: FifoCache<string, OwnValue>;

  constructor(secrets: ReadonlyArray<string | Buffer>, cacheSize = DIALOG_VALUE_CACHE) {
    if (secrets.length === 0) throw new Error("DialogSigner needs a secret");
    this.own = new FifoCache(cacheSize);
    const raw = secrets.map((s) => (typeof s === "string" ? Buffer.from(s, "utf8") : Buffer.from(s)));
    this.keys = raw.map((k) => createSecretKey(k));
    this.macs = raw.map((k) => new HmacSha256(k));
  }

  private static input(b: DialogBinding): string {
    // a separator that cannot occur in any field (Call-ID and tags are tokens or words)
    const s = "dg1\n" + b.callId + "\n" + b.ftag + "\n" + b.flow + "\n" + b.up.join("*") + "\n" + b.down.join("*");
    return b.mask !== undefined ? s + "\nm" + b.mask : s;
  }

  sign(b: DialogBinding): string {
    return this.macs[0]!.mac(DialogSigner.input(b), 16).toString("base64url");
  }

  /**
   * A flow token for a request one edge sends through another (docs/registrar.md, "Several
   * edges"): the MAC binds the Call-ID, the flow and an expiry (epoch seconds), so a token seen on
   * the wire reaches the phone only with that call's INVITE, and not after it expires.
   */
  signFlow(callId: string, flow: string, exp: number): string {
    return this.flowMac(this.keys[0]!, callId, flow, exp).toString("base64url");
  }

  verifyFlow(callId: string, flow: string, exp: number, sig: string): boolean {
    if (sig.length !== 22) return false;
    const got = Buffer.from(sig, "base64url");
    if (got.length !== 16) return false;
    for (const k of this.keys) if (timingSafeEqual(this.flowMac(k, callId, flow, exp), got)) return true;
    return false;
  }

  private flowMac(key: KeyObject, callId: string, flow: string, exp: number): Buffer {
    // "dgf1": never equal to the start of a dialog binding's input ("dg1"): one never verifies as the other
    return createHmac("sha256", key).update("dgf1\n" + callId + "\n" + flow + "\n" + exp).digest().subarray(0, 16);
  }

  /**
   * A Record-Route/Route value of ours seen before with this Call-ID, its URI parsed and its token
   * verified (the same value comes back in every response and in-dialog request of the dialog).
   */
  ownValue(callId: string, value: string): OwnValue | undefined {
    const v = this.own.get(value);
    return v !== undefined && v.b.callId === callId ? v : undefined;
  }

  /** Remember a value whose URI is ours and whose token verified over this Call-ID (v.b.callId). */
  rememberOwnValue(value: string, v: OwnValue): void {
    this.own.set(value, v);
  }

  verify(b: DialogBinding, sig: string): boolean {
    if (sig.length !== 22) return false;
    const got = Buffer.from(sig, "base64url");
    if (got.length !== 16) return false;
    const input = DialogSigner.input(b);
    for (const k of this.macs) if (timingSafeEqual(k.mac(input, 16), got)) return true;
    return false;
  }
}

/**
 * Record-Route value of a listener, signed for a dialog. The signer remembers it as a value of
 * ours with its binding: the callee echoes it in every response and the caller and callee in
 * every in-dialog request, which then find it without parsing or verifying it again. `sig`: the
 * token of b when the caller has it (a double Record-Route writes two values for one binding).
 */
export function recordRouteFor(l: Listener, b: DialogBinding, signer: DialogSigner, sig: string = signer.sign(b)): string {
  return ownRecordRoute(l.advertisedHost, l.advertisedPort, l.transport, b, sig, signer);
}

/**
 * A Record-Route value of ours at host[:port], signed for b, remembered by the signer with its
 * URI built as the parser would read the value.
 */
function ownRecordRoute(host: string, port: number | undefined, transport: string | null, b: DialogBinding, sig: string, signer: DialogSigner): string {
  const params: Param[] = [["lr", null]];
  if (transport !== null && transport !== "udp") params.push(["transport", transport]);
  if (b.ftag.length > 0) params.push(["ftag", b.ftag]);
  if (b.flow.length > 0) params.push(["dgc", b.flow]);
  if (b.up.length > 0) params.push(["dgu", b.up.join("*")]);
  if (b.down.length > 0) params.push(["dgd", b.down.join("*")]);
  if (b.mask !== undefined) params.push(["dgm", b.mask]);
  params.push(["dgs", sig]);
  const value = "<sip:" + host + (port !== undefined ? ":" + port : "") + formatParams(params) + ">";
  const uri = new SipUri("sip");
  uri.host = host;
  uri.port = port;
  uri.params = params;
  signer.rememberOwnValue(value, { uri, b });
  return value;
}

/** The stack as far as record-routing needs it. */
export interface LocalCheck {
  isLocalUri(u: SipUri): boolean;
}

/** Why an in-dialog request was refused (a closed set: metric label values). */
export type ForgedReason = "no_route" | "no_token" | "bad_token" | "tag" | "next_hop" | "direction";
export const FORGED_REASONS: readonly ForgedReason[] = ["no_route", "no_token", "bad_token", "tag", "next_hop", "direction"];

/** Result of loose-routing an in-dialog request. */
export interface DialogRoute {
  /** Towards the caller (true) or the callee (false). */
  readonly upstream: boolean;
  /** Caller-side flow recorded in our Record-Route, if any. */
  readonly flow: Flow | null;
  /** The next hop URI: the first remaining Route or the Request-URI. */
  readonly next: SipUri;
  /** hopOfUri(next). */
  readonly nextHop: string;
  /** What the token binds (verified). */
  readonly binding: DialogBinding;
  /** nextHop is one of the hops the token allows in this direction. */
  readonly hopAllowed: boolean;
}

function split(v: string | null | undefined): string[] {
  return typeof v === "string" && v.length > 0 ? v.split("*") : [];
}

/** The binding a Record-Route/Route URI of ours carries, and its signature. */
function bindingOf(u: SipUri, callId: string): { b: DialogBinding; sig: string } | null {
  const sig = u.param("dgs");
  if (typeof sig !== "string") return null;
  const ftag = u.param("ftag");
  const flow = u.param("dgc");
  const mask = u.param("dgm");
  return {
    b: {
      callId, ftag: typeof ftag === "string" ? ftag : "", flow: typeof flow === "string" ? flow : "", up: split(u.param("dgu")), down: split(u.param("dgd")),
      ...(typeof mask === "string" ? { mask } : {}),
    },
    sig,
  };
}

/**
 * Loose routing (16.4, 16.6 steps 6-7) of an in-dialog request (or ACK for a 2xx): pops every
 * Route that is ours (double Record-Route puts two) and checks the token of the last one popped:
 * its signature over this Call-ID, the direction from the tags, and the next hop. Returns the
 * route, or the reason to refuse (no_route: no Route of ours at all).
 */
export function routeInDialog(local: LocalCheck, req: SipMessage, signer: DialogSigner): DialogRoute | { forged: ForgedReason } {
  const callId = req.callId ?? "";
  let ours: SipUri | null = null;
  let oursValue = "";
  let known: OwnValue | undefined;
  for (;;) {
    const top = req.topRoute;
    if (top === undefined) break;
    const hit = signer.ownValue(callId, top);
    const u = hit !== undefined ? hit.uri : parseNameAddr(top)?.parsedUri;
    if (u === null || u === undefined || !local.isLocalUri(u)) break;
    ours = u;
    oursValue = top;
    known = hit;
    req.popRoute();
  }
  if (ours === null) return { forged: "no_route" };
  let b: DialogBinding;
  if (known !== undefined) b = known.b;
  else {
    const t = bindingOf(ours, callId);
    if (t === null) return { forged: "no_token" };
    if (!signer.verify(t.b, t.sig)) return { forged: "bad_token" };
    b = t.b;
    signer.rememberOwnValue(oursValue, { uri: ours, b });
  }
  let upstream: boolean;
  if (b.ftag.length > 0 && req.fromTag === b.ftag) upstream = false;
  else if (b.ftag.length > 0 && req.toTag === b.ftag) upstream = true;
  else return { forged: "tag" };
  const top = req.topRoute;
  const next = top !== undefined ? parseNameAddr(top)?.parsedUri ?? null : req.parsedRequestUri;
  if (next === null || !next.isSip) return { forged: "next_hop" };
  const nextHop = hopOfUri(next);
  const hopAllowed = (upstream ? b.up : b.down).includes(nextHop);
  return { upstream, flow: b.flow.length > 0 ? parseFlowToken(b.flow) : null, next, nextHop, binding: b, hopAllowed };
}

/**
 * The binding of an initial INVITE as received (before our Record-Route is added): towards the
 * caller its first Record-Route (the nearest caller-side proxy) else its Contact, plus the flow
 * it came from; towards the callee the targets given.
 */
export function inviteBinding(req: SipMessage, flow: Flow | null, down: readonly string[]): DialogBinding {
  const up: string[] = [];
  const rr = req.recordRoutes;
  const h = rr.length > 0 ? hopOfNameAddr(rr[0]) : hopOfNameAddr(req.getList("contact")[0]);
  if (h !== null) up.push(h);
  if (flow !== null) {
    const f = hopOfAddress(flow.address, flow.port);
    if (!up.includes(f)) up.push(f);
  }
  return { callId: req.callId ?? "", ftag: req.fromTag ?? "", flow: flow === null ? "" : flowToken(flow.transport, flow.address, flow.port), up, down };
}

/**
 * Rewrite our Record-Route values in a response that sets up a dialog (RFC 3261 16.7 step 9):
 * the callee-side next hop (the Record-Route above our first value, else the response's Contact)
 * joins the hops allowed towards the callee. The binding is taken from our own value as the callee
 * echoed it (and verified), so nothing needs to be kept per branch. Values of other proxies stay
 * as they are. Returns false when the response carries no valid value of ours.
 */
export function rewriteRecordRoute(local: LocalCheck, res: SipMessage, signer: DialogSigner): boolean {
  const list = res.recordRoutes;
  if (list.length === 0) return false;
  const callId = res.callId ?? "";
  let first = -1;
  let base: OwnValue | null = null;
  const uris: Array<SipUri | null> = [];
  for (let i = 0; i < list.length; i++) {
    const hit = signer.ownValue(callId, list[i]!);
    const u = hit !== undefined ? hit.uri : parseNameAddr(list[i]!)?.parsedUri ?? null;
    const mine = u !== null && u.isSip && local.isLocalUri(u) ? u : null;
    uris.push(mine);
    if (mine !== null && first < 0) {
      if (hit !== undefined) base = hit;
      else {
        const t = bindingOf(mine, callId);
        if (t === null || !signer.verify(t.b, t.sig)) return false;
        base = { uri: mine, b: t.b };
        signer.rememberOwnValue(list[i]!, base);
      }
      first = i;
    }
  }
  if (base === null) return false;
  const hop = first > 0 ? hopOfNameAddr(list[first - 1]) : hopOfNameAddr(res.getList("contact")[0]);
  if (hop === null || base.b.down.includes(hop)) return true;
  let next = base.rewritten;
  if (next === undefined || next.hop !== hop) {
    const b: DialogBinding = { ...base.b, down: [hop, ...base.b.down] };
    next = base.rewritten = { hop, b, sig: signer.sign(b) };
  }
  const out: string[] = [];
  for (let i = 0; i < list.length; i++) {
    const u = uris[i];
    if (u === null || u === undefined) out.push(list[i]!);
    else {
      const tp = u.param("transport");
      out.push(ownRecordRoute(u.host, u.port, typeof tp === "string" ? tp : null, next.b, next.sig, signer));
    }
  }
  res.set("Record-Route", out.join(", "));
  return true;
}

// ---------------------------------------------------------------- loop detection

/** Branch prefix of requests whose branch carries a loop-detection hash. */
const LOOP_MAGIC = "z9hG4bKdg";

/**
 * Loop hash of a request as received (RFC 3261 16.6 step 8): Request-URI, Call-ID, From and To
 * tags, CSeq number, Proxy-Require. The top Via is left out: a request that comes back to us
 * carries our own Via on top, so including it would never match.
 */
export function loopHash(req: SipMessage): string {
  // not a secret and not an authenticator (a forged Via can only make the sender's own request
  // look looped): two independent 32-bit FNV-1a style hashes are enough and cost far less than
  // a cryptographic digest on every INVITE
  const s = req.requestUri + "\n" + (req.callId ?? "") + "\n" + (req.fromTag ?? "") + "\n" + (req.toTag ?? "") + "\n" + (req.cseq?.seq ?? 0) + "\n" + (req.get("proxy-require") ?? "");
  let h1 = 0x811c9dc5;
  let h2 = 0x01000193 ^ s.length;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    h1 = Math.imul(h1 ^ c, 0x01000193);
    h2 = Math.imul(h2 ^ c, 0x5bd1e995);
    h2 ^= h2 >>> 15;
  }
  return (h1 >>> 0).toString(36) + "x" + (h2 >>> 0).toString(36);
}

/** A branch for forwarding `req` that carries its loop hash plus a unique part. */
export function loopBranch(hash: string, unique: string): string {
  return LOOP_MAGIC + hash + "." + unique;
}

/**
 * RFC 3261 16.3 step 4: true when a Via of ours (sent-by is one of our listeners) carries a loop
 * branch whose hash equals this request's: the request was forwarded by us before with the same
 * Request-URI and is back (a loop, not a spiral).
 */
export function isLooped(isLocal: (host: string, port: number | undefined) => boolean, req: SipMessage, viaList: readonly string[] = req.vias): boolean {
  let hash: string | null = null;
  for (const v of viaList) {
    const bi = v.indexOf("branch=" + LOOP_MAGIC);
    if (bi < 0) continue;
    // sent-by: after "SIP/2.0/XXX " up to ';'
    const sp = v.indexOf(" ");
    const semi = v.indexOf(";", sp);
    if (sp < 0 || semi < 0) continue;
    const sentBy = v.slice(sp + 1, semi).trim();
    let host = sentBy;
    let port: number | undefined;
    const close = sentBy.lastIndexOf("]");
    const colon = sentBy.lastIndexOf(":");
    if (colon > close && (close >= 0 || sentBy.indexOf(":") === colon)) {
      host = sentBy.slice(0, colon);
      port = Number(sentBy.slice(colon + 1));
    }
    if (!isLocal(host, port)) continue;
    const start = bi + 7 + LOOP_MAGIC.length;
    let end = start;
    while (end < v.length && v.charCodeAt(end) !== 46 /* . */ && v.charCodeAt(end) !== 59 /* ; */) end++;
    hash ??= loopHash(req);
    if (v.slice(start, end) === hash) return true;
  }
  return false;
}
