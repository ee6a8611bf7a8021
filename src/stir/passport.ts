/**
 * SHAKEN PASSporTs (RFC 8225, RFC 8588) and the SIP Identity header (RFC 8224).
 *
 * A PASSporT is a compact JWS with header {alg: "ES256", ppt: "shaken", typ: "passport", x5u} and
 * claims {attest, dest: {tn: [..]}, iat, orig: {tn}, origid}. Telephone numbers are carried in
 * the canonical form of RFC 8224 section 8.3: digits only, no "+". The ES256 signature is the
 * JOSE form (r || s, 64 bytes), which node:crypto gives with dsaEncoding "ieee-p1363".
 *
 * The Identity header is `<token>;info=<x5u>;alg=ES256;ppt=shaken`. Diversion PASSporTs
 * (RFC 8946, ppt "div") share the code: their claims add `div: {tn}` and drop `attest`/`origid`.
 */
import { sign as cryptoSign, verify as cryptoVerify, type KeyObject } from "node:crypto";

export type Attestation = "A" | "B" | "C";

export interface ShakenClaims {
  attest: Attestation;
  dest: { tn: string[] };
  iat: number;
  orig: { tn: string };
  origid: string;
}

export interface DivClaims {
  dest: { tn: string[] };
  div: { tn: string };
  iat: number;
  orig: { tn: string };
}

export interface PassportHeader {
  alg: string;
  ppt?: string;
  typ?: string;
  x5u: string;
}

export interface Passport {
  header: PassportHeader;
  /** Claims as decoded; checked field by field by the verifier. */
  claims: Record<string, unknown>;
  /** The signed part: base64url(header) "." base64url(claims). */
  signingInput: string;
  signature: Buffer;
}

/** One Identity header value, split. */
export interface IdentityHeader {
  token: string;
  info: string | null;
  alg: string | null;
  ppt: string | null;
}

/** Maximum size of an Identity header value we look at (a SHAKEN one is about 600-900 bytes). */
export const MAX_IDENTITY_BYTES = 8192;

/** RFC 8224 8.3 canonical telephone number: digits only (drops "+", separators). */
export function canonicalTn(e164: string): string {
  let out = "";
  for (let i = 0; i < e164.length; i++) {
    const c = e164.charCodeAt(i);
    if (c >= 48 && c <= 57) out += e164[i];
  }
  return out;
}

function b64urlJson(o: unknown): string {
  return Buffer.from(JSON.stringify(o), "utf8").toString("base64url");
}

/**
 * Signs claims into a compact PASSporT. Members are written in lexicographic order, as RFC 8225
 * section 9 asks of the canonical form (verifiers check the signature over what was sent, so the
 * order matters only for interop with verifiers that rebuild the compact form).
 */
export function signPassport(claims: ShakenClaims | DivClaims, x5u: string, key: KeyObject, ppt: "shaken" | "div" = "shaken"): string {
  const header = { alg: "ES256", ppt, typ: "passport", x5u };
  const sorted: Record<string, unknown> = {};
  for (const k of Object.keys(claims).sort()) sorted[k] = (claims as unknown as Record<string, unknown>)[k];
  const input = b64urlJson(header) + "." + b64urlJson(sorted);
  const sig = cryptoSign("sha256", Buffer.from(input, "latin1"), { key, dsaEncoding: "ieee-p1363" });
  return input + "." + sig.toString("base64url");
}

/** The Identity header value for a signed PASSporT. */
export function identityHeader(token: string, x5u: string, ppt: "shaken" | "div" = "shaken"): string {
  return token + ";info=<" + x5u + ">;alg=ES256;ppt=" + ppt;
}

/** Splits an Identity header value; null when it has no token. */
export function parseIdentity(value: string): IdentityHeader | null {
  if (value.length === 0 || value.length > MAX_IDENTITY_BYTES) return null;
  let v = value.trim();
  // an early draft form put the token in quotes
  const semi = v.indexOf(";");
  let token = (semi < 0 ? v : v.slice(0, semi)).trim();
  if (token.startsWith('"') && token.endsWith('"') && token.length >= 2) token = token.slice(1, -1);
  if (token.length === 0) return null;
  let info: string | null = null;
  let alg: string | null = null;
  let ppt: string | null = null;
  v = semi < 0 ? "" : v.slice(semi + 1);
  for (const part of v.split(";")) {
    const eq = part.indexOf("=");
    if (eq < 0) continue;
    const name = part.slice(0, eq).trim().toLowerCase();
    let val = part.slice(eq + 1).trim();
    if (val.startsWith('"') && val.endsWith('"') && val.length >= 2) val = val.slice(1, -1);
    if (name === "info") info = val.startsWith("<") && val.endsWith(">") ? val.slice(1, -1) : val;
    else if (name === "alg") alg = val;
    else if (name === "ppt") ppt = val;
  }
  return { token, info, alg, ppt };
}

const B64URL = /^[A-Za-z0-9_-]*$/;

/** Decodes a compact PASSporT (no signature check). Null when it is not a well-formed JWS. */
export function decodePassport(token: string): Passport | null {
  if (token.length > MAX_IDENTITY_BYTES) return null;
  const a = token.indexOf(".");
  const b = token.lastIndexOf(".");
  if (a <= 0 || b <= a || token.indexOf(".", a + 1) !== b) return null;
  const h = token.slice(0, a);
  const c = token.slice(a + 1, b);
  const s = token.slice(b + 1);
  if (!B64URL.test(h) || !B64URL.test(c) || !B64URL.test(s)) return null;
  let header: unknown;
  let claims: unknown;
  try {
    header = JSON.parse(Buffer.from(h, "base64url").toString("utf8"));
    claims = JSON.parse(Buffer.from(c, "base64url").toString("utf8"));
  } catch {
    return null;
  }
  if (header === null || typeof header !== "object" || Array.isArray(header)) return null;
  if (claims === null || typeof claims !== "object" || Array.isArray(claims)) return null;
  const hd = header as Record<string, unknown>;
  if (typeof hd.alg !== "string" || typeof hd.x5u !== "string") return null;
  const out: PassportHeader = { alg: hd.alg, x5u: hd.x5u };
  if (typeof hd.ppt === "string") out.ppt = hd.ppt;
  if (typeof hd.typ === "string") out.typ = hd.typ;
  return { header: out, claims: claims as Record<string, unknown>, signingInput: h + "." + c, signature: Buffer.from(s, "base64url") };
}

/** Checks the ES256 signature of a decoded PASSporT with a public key. */
export function verifySignature(p: Passport, key: KeyObject): boolean {
  if (p.signature.length !== 64) return false;
  try {
    return cryptoVerify("sha256", Buffer.from(p.signingInput, "latin1"), { key, dsaEncoding: "ieee-p1363" }, p.signature);
  } catch {
    return false;
  }
}

/** orig.tn of a PASSporT, or null. */
export function origTn(c: Record<string, unknown>): string | null {
  const o = c.orig;
  if (o === null || typeof o !== "object") return null;
  const tn = (o as Record<string, unknown>).tn;
  return typeof tn === "string" ? tn : null;
}

/** dest.tn values of a PASSporT (RFC 8225 allows a list), or null. */
export function destTns(c: Record<string, unknown>): string[] | null {
  const d = c.dest;
  if (d === null || typeof d !== "object") return null;
  const tn = (d as Record<string, unknown>).tn;
  if (typeof tn === "string") return [tn];
  if (Array.isArray(tn) && tn.every((x) => typeof x === "string")) return tn as string[];
  return null;
}
