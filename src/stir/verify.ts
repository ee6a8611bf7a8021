/**
 * Verification of an inbound call's Identity (RFC 8224 section 6.2, RFC 8588, ATIS-1000074).
 *
 * Outcome per call: a `verstat` for the target (ATIS-1000074 5.3.1: TN-Validation-Passed,
 * TN-Validation-Failed, No-TN-Validation), the attestation level, a reason from a closed set (the
 * metric label) and the SIP status a route that refuses failed calls answers:
 *
 * | reason                         | verstat               | status                       |
 * |--------------------------------|-----------------------|------------------------------|
 * | passed                         | TN-Validation-Passed  | -                            |
 * | missing                        | No-TN-Validation      | 428 Use Identity Header      |
 * | timeout (cert not in budget)   | No-TN-Validation      | - (the call goes on)         |
 * | malformed, bad_info, cert_fetch| TN-Validation-Failed  | 436 Bad Identity Info        |
 * | unsupported, cert_untrusted    | TN-Validation-Failed  | 437 Unsupported Credential   |
 * | bad_signature, stale, orig_mismatch, dest_mismatch, cert_expired | TN-Validation-Failed | 438 Invalid Identity Header |
 *
 * A certificate in the cache is checked synchronously; a miss waits at most `budgetMs` for the
 * fetch (which goes on and fills the cache for the next call).
 */
import type { CertCache, CertResult } from "./certs.js";
import { canonicalTn, decodePassport, destTns, origTn, parseIdentity, verifySignature, type Attestation, type Passport } from "./passport.js";

export type Verstat = "TN-Validation-Passed" | "TN-Validation-Failed" | "No-TN-Validation";

export const VERIFY_REASONS = [
  "passed",
  "missing",
  "timeout",
  "malformed",
  "bad_info",
  "cert_fetch",
  "unsupported",
  "cert_untrusted",
  "cert_expired",
  "bad_signature",
  "stale",
  "orig_mismatch",
  "dest_mismatch",
] as const;
export type VerifyReason = (typeof VERIFY_REASONS)[number];

export interface VerifyResult {
  verstat: Verstat;
  attest: Attestation | null;
  reason: VerifyReason;
  /** What a route with on_fail: reject answers; 0 when the call goes on. */
  status: 0 | 428 | 436 | 437 | 438;
  /** Human detail for logs (never secrets). */
  detail?: string;
  origid?: string;
}

export const STATUS_REASON: Record<number, string> = {
  428: "Use Identity Header",
  436: "Bad Identity Info",
  437: "Unsupported Credential",
  438: "Invalid Identity Header",
};

export interface VerifierOptions {
  certs: CertCache;
  /** iat may be at most this old (or this far in the future). */
  maxAgeS?: number;
  now?: () => number;
}

function result(reason: VerifyReason, attest: Attestation | null = null, detail?: string): VerifyResult {
  let verstat: Verstat = "TN-Validation-Failed";
  let status: VerifyResult["status"] = 438;
  switch (reason) {
    case "passed":
      verstat = "TN-Validation-Passed";
      status = 0;
      break;
    case "missing":
      verstat = "No-TN-Validation";
      status = 428;
      break;
    case "timeout":
      verstat = "No-TN-Validation";
      status = 0;
      break;
    case "malformed":
    case "bad_info":
    case "cert_fetch":
      status = 436;
      break;
    case "unsupported":
    case "cert_untrusted":
      status = 437;
      break;
  }
  const r: VerifyResult = { verstat, attest, reason, status };
  if (detail !== undefined) r.detail = detail;
  return r;
}

/** What the header and claims checks found before the certificate is needed. */
type Prepared = { p: Passport; attest: Attestation; origid: string | undefined } | VerifyResult;

export class StirVerifier {
  private readonly certs: CertCache;
  private readonly maxAgeMs: number;
  private readonly now: () => number;

  constructor(opts: VerifierOptions) {
    this.certs = opts.certs;
    this.maxAgeMs = (opts.maxAgeS ?? 60) * 1000;
    this.now = opts.now ?? Date.now;
  }

  /**
   * Verifies a call. `identity` is every Identity header value of the INVITE; `caller` and `did`
   * are the normalised E.164 numbers. Returns synchronously when no fetch is needed.
   */
  verify(identity: readonly string[], caller: string | undefined, did: string, budgetMs: number): VerifyResult | Promise<VerifyResult> {
    const pr = this.prepare(identity, caller, did);
    if (!("p" in pr)) return pr;
    const url = pr.p.header.x5u;
    const cached = this.certs.peek(url);
    if (cached !== undefined) return this.finish(pr, cached);
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<VerifyResult>((resolve) => {
      timer = setTimeout(() => resolve(result("timeout", pr.attest, "certificate fetch over budget")), Math.max(0, budgetMs));
    });
    const fetched = this.certs.get(url).then((c) => this.finish(pr, c));
    return Promise.race([fetched, timeout]).finally(() => clearTimeout(timer));
  }

  private prepare(identity: readonly string[], caller: string | undefined, did: string): Prepared {
    if (identity.length === 0) return result("missing");
    // a call may carry several PASSporTs (div for forwarded calls): the shaken one is checked
    let chosen: { token: string; info: string | null; alg: string | null; ppt: string | null } | null = null;
    let parsedAny = false;
    for (const v of identity) {
      const h = parseIdentity(v);
      if (h === null) continue;
      parsedAny = true;
      if (h.ppt === null || h.ppt === "shaken") {
        chosen = h;
        break;
      }
    }
    if (chosen === null) return result(parsedAny ? "unsupported" : "malformed", null, parsedAny ? "no shaken PASSporT" : "Identity header unreadable");
    if (chosen.alg !== null && chosen.alg !== "ES256") return result("unsupported", null, "alg " + chosen.alg.slice(0, 16));
    const p = decodePassport(chosen.token);
    if (p === null) return result("malformed", null, "PASSporT not a compact JWS");
    if (p.header.alg !== "ES256") return result("unsupported", null, "alg " + p.header.alg.slice(0, 16));
    if (p.header.ppt !== undefined && p.header.ppt !== "shaken") return result("unsupported", null, "ppt " + p.header.ppt.slice(0, 16));
    if (p.header.typ !== undefined && p.header.typ !== "passport") return result("malformed", null, "typ");
    if (chosen.info !== null && chosen.info !== p.header.x5u) return result("bad_info", null, "info does not match x5u");
    const c = p.claims;
    const attest = c.attest;
    if (attest !== "A" && attest !== "B" && attest !== "C") return result("malformed", null, "attest");
    const origid = typeof c.origid === "string" ? c.origid : undefined;
    const iat = c.iat;
    if (typeof iat !== "number" || !Number.isFinite(iat)) return result("malformed", attest, "iat");
    if (Math.abs(this.now() - iat * 1000) > this.maxAgeMs) return result("stale", attest, `iat ${Math.round(this.now() / 1000 - iat)} s old`);
    const o = origTn(c);
    if (o === null) return result("malformed", attest, "orig.tn");
    if (caller === undefined || canonicalTn(o) !== canonicalTn(caller)) return result("orig_mismatch", attest);
    const d = destTns(c);
    if (d === null) return result("malformed", attest, "dest.tn");
    const want = canonicalTn(did);
    if (!d.some((x) => canonicalTn(x) === want)) return result("dest_mismatch", attest);
    return { p, attest, origid };
  }

  private finish(pr: { p: Passport; attest: Attestation; origid: string | undefined }, cert: CertResult): VerifyResult {
    if (!cert.ok) {
      const reason: VerifyReason = cert.reason === "untrusted" || cert.reason === "parse" ? "cert_untrusted" : "cert_fetch";
      return result(reason, pr.attest, cert.detail);
    }
    const now = this.now();
    if (now < cert.notBefore || now > cert.notAfter) return result("cert_expired", pr.attest);
    if (!verifySignature(pr.p, cert.key)) return result("bad_signature", pr.attest);
    const r = result("passed", pr.attest);
    if (pr.origid !== undefined) r.origid = pr.origid;
    return r;
  }
}

/**
 * Adds `;verstat=...` to the user part parameters of a tel/sip URI inside a name-addr
 * (ATIS-1000074 5.3.2: the parameter goes on the P-Asserted-Identity, else the From, URI).
 * "<sip:+15125550100@x;user=phone>;tag=1" becomes "<sip:+15125550100;verstat=V@x;user=phone>;tag=1";
 * "<tel:+15125550100>" becomes "<tel:+15125550100;verstat=V>". Any verstat already present is replaced.
 */
export function withVerstat(nameAddr: string, verstat: Verstat): string {
  const lt = nameAddr.indexOf("<");
  const gt = lt >= 0 ? nameAddr.indexOf(">", lt) : -1;
  const uriStart = lt >= 0 ? lt + 1 : 0;
  let uriEnd = gt >= 0 ? gt : nameAddr.length;
  if (lt < 0) {
    // addr-spec without brackets: header parameters start at the first ';' after the URI's host
    const semi = nameAddr.indexOf(";", nameAddr.indexOf("@") + 1);
    if (semi >= 0) uriEnd = semi;
  }
  let uri = nameAddr.slice(uriStart, uriEnd);
  uri = uri.replace(/;verstat=[^;@>]*/i, "");
  let out: string;
  if (/^tel:/i.test(uri)) out = uri + ";verstat=" + verstat;
  else {
    const at = uri.indexOf("@");
    if (at < 0) return nameAddr;
    out = uri.slice(0, at) + ";verstat=" + verstat + uri.slice(at);
  }
  if (lt < 0) return "<" + out + ">" + nameAddr.slice(uriEnd);
  return nameAddr.slice(0, uriStart) + out + nameAddr.slice(uriEnd);
}
