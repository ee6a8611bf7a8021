/**
 * Calls through a masking session (docs/masking.md): what changes on the messages of a masked call
 * so that neither party learns the other's number.
 *
 *   - The INVITE towards the other party presents the proxy number: From becomes
 *     <sip:PROXY@HOST;user=phone> (the caller's tag kept), P-Asserted-Identity <tel:PROXY>; every
 *     header that may name the caller (MASK_STRIPPED) is removed.
 *   - In-dialog requests towards the callee get the same From (the proxy number travels in our
 *     signed Record-Route, src/sip/rr.ts), and lose the same headers; requests towards the caller
 *     lose them too (the callee's network may add its own identity).
 *   - Responses going back to the party that sent the request get that request's own From again
 *     (its UA keeps the number it sent) and lose the identity headers of the other side (a
 *     connected-party P-Asserted-Identity, RFC 4916, names the callee).
 *
 * Contact and Via name addresses, not numbers, and are passed as they are; carriers that put the
 * subscriber's number in Contact need topology hiding in front (see docs/masking.md).
 */
import { defaultReason, type SipMessage } from "../sip/index.js";
import { rewriteRecordRoute, type DialogSigner, type LocalCheck } from "../sip/rr.js";
import { parseNameAddr } from "../sip/uri.js";
import type { MaskRoute, SessionStore } from "../masking/sessions.js";
import { errMessage } from "../util/errors.js";
import type { Leg, Originator } from "./originate.js";

/**
 * The only headers a masked message keeps on its way to the other side (lower-case long names;
 * compact forms count as their long name): what SIP needs to route, match, negotiate and describe
 * the body. Everything else is removed: identities (P-Asserted-Identity, Remote-Party-ID,
 * History-Info, Diversion, Identity…), and anything a carrier may fill with a number or a name
 * (P-Served-User, P-Charging-Vector, P-Called-Party-ID, P-Associated-URI, Reply-To, Call-Info,
 * Subject, Organization, User-Agent, Server, Warning, Alert-Info, User-to-User, X- headers,
 * credentials and challenges…). Reason keeps its protocol and cause only, Retry-After its seconds.
 */
export const MASK_KEPT: ReadonlySet<string> = new Set([
  "via", "route", "record-route", "max-forwards", "call-id", "cseq", "from", "to", "contact",
  "content-type", "content-length", "content-encoding", "content-disposition", "content-language", "mime-version",
  "allow", "allow-events", "supported", "require", "proxy-require", "unsupported",
  "session-expires", "min-se", "rseq", "rack", "event", "subscription-state",
  "accept", "accept-encoding", "accept-language", "expires", "min-expires", "retry-after", "timestamp",
  "privacy", "reason", "p-early-media", "recv-info", "info-package", "priority", "max-breadth",
]);

/** One Reason value with its protocol and cause only (its text may name a party), or null. */
function reasonCause(v: string): string | null {
  const m = /^\s*([A-Za-z][A-Za-z0-9.\-]*)\s*(?:;(?:[^;]*;)*?\s*cause\s*=\s*(\d{1,5}))?/.exec(v);
  if (m === null) return null;
  return m[1]! + (m[2] !== undefined ? ";cause=" + m[2] : "");
}

/**
 * The only in-dialog requests a masked dialog passes (its Allow when refusing others with 405):
 * what a call needs. REFER and NOTIFY (a sipfrag names the parties), SUBSCRIBE, PUBLISH, MESSAGE
 * and anything else are answered by didgate and never reach the other side.
 */
export const MASKED_DIALOG_METHODS: readonly string[] = ["INVITE", "ACK", "BYE", "CANCEL", "PRACK", "UPDATE", "INFO", "OPTIONS"];

export function maskedDialogAllows(method: string): boolean {
  return MASKED_DIALOG_METHODS.includes(method);
}

/** What a call through a session looks like on its first leg (routing, metrics, records). */
export interface MaskedCall {
  /** The session's id (records). */
  session: string;
  /** The proxy number presented to the callee. */
  proxy: string;
  /** The party called (records) and the pool's tenant. */
  other: string;
  tenant: string | undefined;
}

/** Why an INVITE to a pool number was not routed through a session (closed set: metric labels). */
export type MaskResult = "routed" | "own_route" | "no_session" | "no_outbound" | "store_error" | "loop";
export const MASK_RESULTS: readonly MaskResult[] = ["routed", "own_route", "no_session", "no_outbound", "store_error", "loop"];

/**
 * An SDP body (application/sdp) without the sender's names: the o= username and the s= session
 * name become "-" (both free text a UA may fill with its number; RFC 4566 allows "-" for both).
 * The rest (addresses, ports, session id and version) is what the media needs and stays.
 */
export function maskSdp(m: SipMessage): void {
  const ct = m.get("content-type");
  if (ct === undefined) return;
  if (/^\s*application\/isup\s*(;|$)/i.test(ct)) {
    // an ISUP message carries the calling and called numbers
    m.setBody("");
    m.remove("content-type");
    return;
  }
  if (/^\s*multipart\//i.test(ct)) {
    // Only its SDP goes on (masked): the other parts (ISUP with the calling number, a SIPREC
    // metadata document, anything a UA attaches) may name a party, and cannot be read for it
    const sdp = sdpPartOf(ct, m.body);
    if (sdp === null) {
      m.setBody("");
      m.remove("content-type");
      return;
    }
    m.setBody(maskSdpText(sdp), "application/sdp");
    return;
  }
  if (!/^\s*application\/sdp\s*(;|$)/i.test(ct)) return;
  const body = m.body;
  if (body.length === 0) return;
  const text = body.toString("utf8");
  const out = maskSdpText(text);
  if (out !== text) m.setBody(out);
}

/**
 * An SDP without the fields where a UA may write who it is: the origin's username and the session
 * name become "-"; phone (p=), e-mail (e=), URI (u=), information (i=) and a=tool lines go.
 */
function maskSdpText(text: string): string {
  return text
    .replace(/^o=[^ \r\n]+ /gm, "o=- ")
    .replace(/^s=[^\r\n]*/gm, "s=-")
    .replace(/^(?:[peui]=|a=tool:)[^\r\n]*(?:\r?\n|$)/gm, "");
}

/** The first application/sdp part of a multipart body, or null. */
function sdpPartOf(contentType: string, body: Buffer): string | null {
  const b = /;\s*boundary\s*=\s*(?:"([^"]+)"|([^;\s]+))/i.exec(contentType);
  const boundary = b?.[1] ?? b?.[2];
  if (boundary === undefined) return null;
  const parts = body.toString("utf8").split("--" + boundary);
  for (const p of parts.slice(1)) {
    if (p.startsWith("--")) break;
    const sep = /\r?\n\r?\n/.exec(p);
    if (sep === null) continue;
    const head = p.slice(0, sep.index);
    if (!/(^|\n)content-type\s*:\s*application\/sdp\s*(;|\r|\n|$)/im.test(head)) continue;
    return p.slice(sep.index + sep[0].length).replace(/\r?\n$/, "");
  }
  return null;
}

/** Keep only MASK_KEPT headers; Reason without its text, Retry-After without its comment. */
export function stripIdentity(m: SipMessage): void {
  m.retainHeaders((n) => MASK_KEPT.has(n));
  const reasons = m.getList("reason");
  if (reasons.length > 0) {
    const out: string[] = [];
    for (const r of reasons) {
      const c = reasonCause(r);
      if (c !== null) out.push(c);
    }
    if (out.length > 0) m.set("Reason", out.join(", "));
    else m.remove("Reason");
  }
  maskSdp(m);
  const ra = m.get("retry-after");
  if (ra !== undefined) {
    const d = /^\s*(\d{1,10})/.exec(ra);
    if (d !== null) m.set("Retry-After", d[1]!);
    else m.remove("Retry-After");
  }
}

/** The From a masked request carries: the proxy number at our host, with the sender's tag. */
export function maskedFrom(proxy: string, host: string, tag: string | undefined): string {
  return "<sip:" + proxy + "@" + host + ";user=phone>" + (tag !== undefined && tag.length > 0 ? ";tag=" + tag : "");
}

/** A request towards the callee of a masked call: the proxy number as caller, no identity of the caller. */
export function maskRequest(m: SipMessage, proxy: string, host: string, initial: boolean): void {
  const tag = m.fromTag;
  stripIdentity(m);
  m.set("From", maskedFrom(proxy, host, tag));
  if (initial) m.set("P-Asserted-Identity", "<tel:" + proxy + ">");
}

/**
 * An in-dialog request towards the caller of a masked call: its From (the callee's side) and To
 * become the proxy number too, with their tags (a callee's network may write its subscriber's
 * number there), and only MASK_KEPT headers pass.
 */
export function maskTowardsCaller(m: SipMessage, proxy: string, host: string): void {
  const from = m.fromTag;
  const to = m.toTag;
  stripIdentity(m);
  m.set("From", maskedFrom(proxy, host, from));
  m.set("To", maskedFrom(proxy, host, to));
}

/**
 * A response going back to the party whose request was masked: that request's From and To again
 * (with the response's To tag: the other side may write its own number in To), only MASK_KEPT
 * headers, and the standard reason phrase of its status (a phrase can carry anything).
 */
export function unmaskResponse(res: SipMessage, req: SipMessage): void {
  const tag = res.toTag;
  stripIdentity(res);
  const from = req.get("from");
  if (from !== undefined) res.set("From", from);
  const to = req.get("to");
  if (to !== undefined) res.set("To", req.toTag === undefined && tag !== undefined ? to + ";tag=" + tag : to);
  res.setStatus(res.status, defaultReason(res.status));
}

/**
 * A 2xx retransmission of a masked call relayed without its transaction (the request is not at
 * hand): only MASK_KEPT headers, the standard reason phrase, and its To the proxy number with the
 * callee's tag.
 */
export function maskStrayResponse(res: SipMessage, proxy: string, host: string): void {
  const tag = res.toTag;
  stripIdentity(res);
  res.set("To", maskedFrom(proxy, host, tag));
  res.setStatus(res.status, defaultReason(res.status));
}

/**
 * Record-Route of a response of a masked call going back to the caller (a 2xx, or a 1xx with a To
 * tag: the caller's route set is built from it): the values above our first one (the callee's
 * proxies) as they are, then `ours` (our signed values as sent in the INVITE, so a missing,
 * altered or forged value of ours is replaced), then exactly `callerSide` (the caller's own
 * Record-Route of its INVITE); anything the callee's side put below ours is dropped. Our values
 * then get the callee's next hop (rewriteRecordRoute). Without a value of ours in the response
 * every value it has counts as the callee's. So every in-dialog request of the caller reaches
 * didgate before anything of the callee's side.
 */
export function rebuildMaskedRecordRoute(local: LocalCheck, res: SipMessage, ours: readonly string[], callerSide: readonly string[], signer: DialogSigner): boolean {
  const list = res.recordRoutes;
  let first = list.length;
  for (let i = 0; i < list.length; i++) {
    const u = parseNameAddr(list[i]!)?.parsedUri;
    if (u !== null && u !== undefined && u.isSip && local.isLocalUri(u)) {
      first = i;
      break;
    }
  }
  const out = list.slice(0, first);
  for (const v of ours) out.push(v);
  for (const v of callerSide) out.push(v);
  if (out.length === 0) res.remove("Record-Route");
  else res.set("Record-Route", out.join(", "));
  return rewriteRecordRoute(local, res, signer);
}

/**
 * Longest wait for the session of a call (one Redis GET): a store that stalls (Redis stopped, a
 * network partition with the connection still open) answers store_error after this, so the carrier
 * gets 503 with Retry-After instead of a 100 Trying that lasts as long as the stall.
 */
export const MASK_LOOKUP_TIMEOUT_MS = 1000;

function withTimeout<T>(p: Promise<T>, ms: number): Promise<T> {
  let t: NodeJS.Timeout | undefined;
  const timer = new Promise<never>((_, reject) => {
    t = setTimeout(() => reject(new Error(`no answer in ${ms} ms`)), ms);
  });
  // the late answer (or error) of a lookup given up is dropped
  p.catch(() => undefined);
  return Promise.race([p, timer]).finally(() => clearTimeout(t));
}

/**
 * The session of `party` on the proxy number, or null; throws when the store fails or does not
 * answer within `timeoutMs` (calls and messages alike: a stalled store is an error, not "no session",
 * so the sender retries instead of reaching the number's own route).
 */
export function lookupSession(store: SessionStore, proxy: string, party: string, timeoutMs = MASK_LOOKUP_TIMEOUT_MS): Promise<MaskRoute | null> {
  return withTimeout(store.route(proxy, party), timeoutMs);
}

/**
 * Record-Route of a masked call's 2xx relayed without its transaction (a retransmission, or a
 * late 2xx of another To tag once the INVITE transaction is gone): our values must be there and
 * valid (else false: not relayed), and everything below them is removed, so the route set the
 * caller may build from it starts at didgate.
 */
export function cutMaskedRecordRoute(local: LocalCheck, res: SipMessage, signer: DialogSigner): boolean {
  if (!rewriteRecordRoute(local, res, signer)) return false;
  const list = res.recordRoutes;
  let end = -1;
  for (let i = 0; i < list.length; i++) {
    const u = parseNameAddr(list[i]!)?.parsedUri;
    const mine = u !== null && u !== undefined && u.isSip && local.isLocalUri(u);
    if (mine) end = i;
    else if (end >= 0) break;
  }
  if (end < list.length - 1) res.set("Record-Route", list.slice(0, end + 1).join(", "));
  return true;
}

/** What a call to a pool number does. */
export type MaskDecision =
  | { result: "routed"; call: MaskedCall; legs: Leg[] }
  | { result: "own_route" | "no_session" | "no_outbound" | "loop" }
  | { result: "store_error"; error: string };

/**
 * A call from `caller` to the pool number `proxy`: through the caller's session to the other
 * party (off-net, through the outbound table), else the number's own route when it has one, else
 * no_session. A caller without a number (anonymous) has no session. A caller that is itself a
 * pool number is a loop (a session's party that is a proxy number: the call came back).
 */
export async function decideMasked(store: SessionStore, originator: Originator, proxy: string, caller: string | undefined, tenant: string | undefined, timeoutMs = MASK_LOOKUP_TIMEOUT_MS): Promise<MaskDecision> {
  if (caller !== undefined && store.isPoolNumber(caller)) return { result: "loop" };
  let r;
  try {
    r = caller === undefined ? null : await lookupSession(store, proxy, caller, timeoutMs);
  } catch (err) {
    return { result: "store_error", error: errMessage(err) };
  }
  if (r === null) return { result: originator.onNet(proxy) !== undefined ? "own_route" : "no_session" };
  const legs = originator.carrierLegs(r.other, 1, [], []);
  if (legs.length === 0) return { result: "no_outbound" };
  return { result: "routed", call: { session: r.id, proxy, other: r.other, tenant }, legs };
}
