/**
 * SIP digest authentication for a server (RFC 3261 section 22, RFC 8760 for SHA-256, RFC 7616 for
 * the qop/nc rules).
 *
 * Nonces are stateless and self-checking: base64url(issue time ms (8 bytes) | 8 random bytes |
 * first 16 bytes of HMAC-SHA256(secret, time | random | realm)). Any edge holding the same secret
 * accepts a nonce another edge issued, and a forged or expired nonce is recognised without a
 * lookup. Replays are refused with a bounded per-nonce record of the highest nonce-count seen:
 * with qop=auth a request must carry a larger nc than the last accepted one; without qop (RFC 2069
 * clients) a nonce is good for one request.
 *
 * The caller decides what to answer: `challenge()` gives the WWW-Authenticate / Proxy-Authenticate
 * values (SHA-256 first, then MD5, as RFC 8760 section 2.4 asks), `verify()` an explicit outcome.
 * An unknown user and a wrong password take the same work and give the same outcome, so accounts
 * cannot be told apart.
 */
import { createHash, createHmac, randomBytes, timingSafeEqual } from "node:crypto";
import { LRUCache } from "lru-cache";
import { quote, unquote } from "./syntax.js";

export type DigestAlgorithm = "MD5" | "SHA-256";

export interface DigestOptions {
  realm: string;
  /** HMAC key for nonces; the same on every edge that must accept another's nonces. */
  secret: Buffer;
  /** A nonce is accepted this long after it was issued (then the answer is `stale`). */
  nonceTtlMs?: number;
  /** Offered algorithms, in order of preference. */
  algorithms?: readonly DigestAlgorithm[];
  /** Bound on the replay record (nonces in use at once). */
  maxNonces?: number;
  /** Epoch ms. */
  now?: () => number;
}

/** Credentials from an Authorization / Proxy-Authorization header. */
export interface DigestCredentials {
  username: string;
  realm: string;
  nonce: string;
  uri: string;
  response: string;
  algorithm: DigestAlgorithm;
  qop: "auth" | null;
  nc: number;
  cnonce: string;
}

export type DigestFailure =
  /** No credentials for our realm: challenge. */
  | "missing"
  /** Credentials that cannot be parsed or use something we do not offer. */
  | "malformed"
  /** Our nonce, but too old: challenge again with stale=true. */
  | "stale"
  /** Not a nonce we issued (forged, or another secret). */
  | "bad_nonce"
  /** A nonce-count not above the last accepted one, or a second use without qop. */
  | "replay"
  /** Unknown user or wrong password (deliberately one outcome). */
  | "bad_credentials";

/**
 * What a user's credentials are checked against: the password, or its HA1 per algorithm
 * (H(username:realm:password), RFC 7616 3.4.2) so that no password needs to be stored.
 */
export type DigestSecret = string | { readonly ha1: Partial<Record<DigestAlgorithm, string>> };

/** H(username:realm:password) in lower-case hex, what a stored user keeps instead of its password. */
export function digestHa1(alg: DigestAlgorithm, username: string, realm: string, password: string): string {
  return hashHex(alg, username + ":" + realm + ":" + password);
}

export type DigestResult = { ok: true; username: string } | { ok: false; reason: DigestFailure };

const NONCE_BYTES = 32;
const DUMMY_PASSWORD = "\u0000didgate-no-such-user\u0000";

function hashHex(alg: DigestAlgorithm, s: string): string {
  return createHash(alg === "MD5" ? "md5" : "sha256").update(s, "utf8").digest("hex");
}

/** The expected `response` value (RFC 3261 22.4 / RFC 7616 3.4.1). */
export function digestResponse(
  alg: DigestAlgorithm,
  username: string,
  realm: string,
  password: string,
  method: string,
  uri: string,
  nonce: string,
  qop: "auth" | null,
  nc: number,
  cnonce: string,
): string {
  return digestResponseHa1(alg, hashHex(alg, username + ":" + realm + ":" + password), method, uri, nonce, qop, nc, cnonce);
}

/** The expected `response` from a stored HA1. */
export function digestResponseHa1(alg: DigestAlgorithm, ha1: string, method: string, uri: string, nonce: string, qop: "auth" | null, nc: number, cnonce: string): string {
  const ha2 = hashHex(alg, method + ":" + uri);
  if (qop === null) return hashHex(alg, ha1 + ":" + nonce + ":" + ha2);
  return hashHex(alg, ha1 + ":" + nonce + ":" + ncHex(nc) + ":" + cnonce + ":" + qop + ":" + ha2);
}

/** nc as the 8 hex digits it travels as. */
export function ncHex(nc: number): string {
  return nc.toString(16).padStart(8, "0");
}

/**
 * Parses the value of an Authorization / Proxy-Authorization header. Returns null when it is not
 * a Digest credential we can check (another scheme, missing fields, an algorithm we do not offer).
 */
export function parseDigestCredentials(value: string): DigestCredentials | null {
  let i = 0;
  while (i < value.length && (value[i] === " " || value[i] === "\t")) i++;
  if (value.slice(i, i + 6).toLowerCase() !== "digest") return null;
  i += 6;
  if (i < value.length && value[i] !== " " && value[i] !== "\t") return null;
  // digest params are comma-separated (the URI parameter parser takes ';')
  const params: Array<[string, string]> = [];
  const body = value.slice(i);
  let j = 0;
  while (j < body.length) {
    while (j < body.length && (body[j] === " " || body[j] === "\t" || body[j] === ",")) j++;
    if (j >= body.length) break;
    const eq = body.indexOf("=", j);
    if (eq < 0) return null;
    const name = body.slice(j, eq).trim().toLowerCase();
    let k = eq + 1;
    while (k < body.length && (body[k] === " " || body[k] === "\t")) k++;
    let v: string;
    if (body[k] === '"') {
      let e = k + 1;
      while (e < body.length && body[e] !== '"') e += body[e] === "\\" ? 2 : 1;
      if (e >= body.length) return null;
      v = unquote(body.slice(k, e + 1));
      j = e + 1;
    } else {
      let e = k;
      while (e < body.length && body[e] !== ",") e++;
      v = body.slice(k, e).trim();
      j = e;
    }
    if (name.length === 0 || name.length > 32 || v.length > 1024 || params.length > 32) return null;
    params.push([name, v]);
  }
  const get = (n: string): string | undefined => {
    for (const p of params) if (p[0] === n) return p[1];
    return undefined;
  };
  const username = get("username");
  const realm = get("realm");
  const nonce = get("nonce");
  const uri = get("uri");
  const response = get("response");
  if (username === undefined || realm === undefined || nonce === undefined || uri === undefined || response === undefined) return null;
  const a = (get("algorithm") ?? "MD5").toUpperCase();
  if (a !== "MD5" && a !== "SHA-256") return null;
  const q = get("qop");
  let qop: "auth" | null = null;
  let nc = 0;
  let cnonce = "";
  if (q !== undefined) {
    if (q.toLowerCase() !== "auth") return null;
    qop = "auth";
    const n = get("nc");
    const c = get("cnonce");
    if (n === undefined || c === undefined || !/^[0-9a-fA-F]{1,8}$/.test(n) || c.length === 0) return null;
    nc = parseInt(n, 16);
    if (nc === 0) return null;
    cnonce = c;
  }
  return { username, realm, nonce, uri, response: response.toLowerCase(), algorithm: a, qop, nc, cnonce };
}

/** Digest authentication state for one realm. */
export class DigestAuth {
  readonly realm: string;
  private readonly secret: Buffer;
  private readonly ttl: number;
  private readonly algorithms: readonly DigestAlgorithm[];
  private readonly now: () => number;
  /** nonce -> highest nonce-count accepted (0: used once without qop). */
  private readonly seen: LRUCache<string, number>;

  constructor(opts: DigestOptions) {
    this.realm = opts.realm;
    this.secret = opts.secret;
    this.ttl = opts.nonceTtlMs ?? 300_000;
    this.algorithms = opts.algorithms ?? ["SHA-256", "MD5"];
    this.now = opts.now ?? Date.now;
    this.seen = new LRUCache<string, number>({ max: opts.maxNonces ?? 100_000 });
  }

  /**
   * A fresh nonce, good only for requests with the same `bind` (the client's address and the
   * Call-ID, as Kamailio's auth_checks can): credentials seen on the wire cannot be replayed from
   * another address, nor for another call, on any edge or worker that shares the secret (each
   * one keeps its own nonce-counts).
   */
  nonce(bind = ""): string {
    const b = Buffer.allocUnsafe(NONCE_BYTES);
    b.writeBigUInt64BE(BigInt(Math.max(0, Math.floor(this.now()))), 0);
    randomBytes(8).copy(b, 8);
    this.mac(b.subarray(0, 16), bind).copy(b, 16);
    return b.toString("base64url");
  }

  private mac(head: Buffer, bind: string): Buffer {
    return createHmac("sha256", this.secret).update(head).update(this.realm).update("\u0000").update(bind).digest().subarray(0, 16);
  }

  /** A nonce's bytes when it has our form (its MAC not checked), else null. */
  private static decodeNonce(nonce: string): Buffer | null {
    if (nonce.length !== 43) return null;
    const b = Buffer.from(nonce, "base64url");
    return b.length === NONCE_BYTES ? b : null;
  }

  /** The challenge header values, one per offered algorithm, with a nonce for `bind` (see nonce()). */
  challenge(stale = false, bind = ""): string[] {
    const n = this.nonce(bind);
    return this.algorithms.map(
      (a) => "Digest realm=" + quote(this.realm) + ", nonce=" + quote(n) + ", algorithm=" + a + ', qop="auth"' + (stale ? ", stale=true" : ""),
    );
  }

  /**
   * Checks credentials for a request. `header` is every Authorization (or Proxy-Authorization)
   * value the request carries; the one for our realm is used. `password(username)` gives the
   * user's password (or its HA1s, which must be of this realm), or undefined for an unknown user.
   * `bind`: what the nonce was issued for (see nonce()); another one is "stale" (a new challenge).
   */
  verify(method: string, header: readonly string[] | string | undefined, password: (username: string) => DigestSecret | undefined, bind = ""): DigestResult {
    if (header === undefined) return { ok: false, reason: "missing" };
    const values = typeof header === "string" ? [header] : header;
    let cred: DigestCredentials | null = null;
    let malformed = false;
    for (const v of values) {
      const c = parseDigestCredentials(v);
      if (c === null) {
        malformed = true;
        continue;
      }
      if (c.realm === this.realm) {
        cred = c;
        break;
      }
    }
    if (cred === null) return { ok: false, reason: malformed ? "malformed" : "missing" };
    if (!this.algorithms.includes(cred.algorithm)) return { ok: false, reason: "malformed" };
    const nb = DigestAuth.decodeNonce(cred.nonce);
    if (nb === null) return { ok: false, reason: "bad_nonce" };
    // a nonce made for another address or call (a phone reusing its REGISTER nonce on an INVITE,
    // or a replay) is answered as stale (RFC 7616 3.3: a new nonce, no new password asked)
    if (!timingSafeEqual(this.mac(nb.subarray(0, 16), bind), nb.subarray(16))) return { ok: false, reason: "stale" };
    const issued = Number(nb.readBigUInt64BE(0));
    const age = this.now() - issued;
    if (age > this.ttl || age < -60_000) return { ok: false, reason: "stale" };
    let pw = password(cred.username);
    let expect: string;
    if (typeof pw === "object") {
      const h = pw.ha1[cred.algorithm];
      if (h === undefined || !/^[0-9a-f]+$/.test(h)) pw = undefined;
      expect = digestResponseHa1(cred.algorithm, h ?? "0", method, cred.uri, cred.nonce, cred.qop, cred.nc, cred.cnonce);
    } else expect = digestResponse(cred.algorithm, cred.username, this.realm, pw ?? DUMMY_PASSWORD, method, cred.uri, cred.nonce, cred.qop, cred.nc, cred.cnonce);
    const given = Buffer.from(cred.response, "latin1");
    const want = Buffer.from(expect, "latin1");
    const match = given.length === want.length && timingSafeEqual(given, want);
    if (!match || pw === undefined) return { ok: false, reason: "bad_credentials" };
    const last = this.seen.get(cred.nonce);
    if (last !== undefined && (cred.qop === null || cred.nc <= last)) return { ok: false, reason: "replay" };
    this.seen.set(cred.nonce, cred.nc, { ttl: this.ttl + 60_000 });
    return { ok: true, username: cred.username };
  }
}

/** What a nonce is bound to for a request: the client's address and the request's Call-ID (see DigestAuth.nonce). */
export function nonceBinding(sourceAddress: string, callId: string | undefined): string {
  return sourceAddress + "\n" + (callId ?? "");
}
