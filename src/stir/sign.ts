/**
 * Signing of outbound calls (RFC 8224 section 5, RFC 8588): one SHAKEN PASSporT per call with a
 * fresh `origid` and `iat` now; for a call didgate forwards, a `div` PASSporT (RFC 8946) naming the
 * diverting number, added when the call arrived with a PASSporT of its own.
 *
 * Attestation (RFC 8588 section 4, ATIS-1000074 5.2.3): A when the customer is authenticated and
 * owns the calling number, B when the customer is known but the number is not checked as theirs,
 * C for calls didgate forwards from elsewhere. The key is loaded at the border and handed in.
 */
import { randomUUID, type KeyObject } from "node:crypto";
import { canonicalTn, identityHeader, signPassport, type Attestation } from "./passport.js";

export interface SignerOptions {
  key: KeyObject;
  /** Where verifiers fetch our certificate. */
  x5u: string;
  now?: () => number;
  uuid?: () => string;
}

export class StirSigner {
  private readonly key: KeyObject;
  readonly x5u: string;
  private readonly now: () => number;
  private readonly uuid: () => string;

  constructor(opts: SignerOptions) {
    this.key = opts.key;
    this.x5u = opts.x5u;
    this.now = opts.now ?? Date.now;
    this.uuid = opts.uuid ?? randomUUID;
  }

  /** The Identity header value for a call from `orig` to `dest` (E.164, any separators). */
  sign(attest: Attestation, orig: string, dest: string, origid?: string): { header: string; origid: string } {
    const id = origid ?? this.uuid();
    const token = signPassport(
      { attest, dest: { tn: [canonicalTn(dest)] }, iat: Math.floor(this.now() / 1000), orig: { tn: canonicalTn(orig) }, origid: id },
      this.x5u,
      this.key,
    );
    return { header: identityHeader(token, this.x5u), origid: id };
  }

  /** A div PASSporT: the call for `divertedFrom` (our DID) now goes to `dest`. */
  signDiversion(orig: string, divertedFrom: string, dest: string): string {
    const token = signPassport(
      { dest: { tn: [canonicalTn(dest)] }, div: { tn: canonicalTn(divertedFrom) }, iat: Math.floor(this.now() / 1000), orig: { tn: canonicalTn(orig) } },
      this.x5u,
      this.key,
      "div",
    );
    return identityHeader(token, this.x5u, "div");
  }
}
