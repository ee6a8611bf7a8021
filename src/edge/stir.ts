/**
 * STIR/SHAKEN policy of the SIP edge: what an inbound INVITE from a carrier trunk gets (verify,
 * then verstat on the identity the target sees, or a refusal when the route asks for it) and what
 * an outbound call to a carrier carries (an Identity header with the earned attestation).
 *
 * What the target sees (ATIS-1000074 5.3.2): `verstat=<result>` on the P-Asserted-Identity URI, or
 * on the From URI when there is no P-Asserted-Identity, and for a verified call its attestation
 * level in `Attestation-Info: A|B|C`. Identity headers are passed on unchanged, so a downstream
 * verifier can check them again.
 *
 * Attestation for calls didgate signs (RFC 8588, ATIS-1000074 5.2.3): A when the customer is
 * authenticated and owns the calling number (caller_id: owned passed), B when the customer is
 * known but the number is not checked as theirs, C for calls didgate forwards from elsewhere.
 *
 * Metric labels: trunk names are from config; results, reasons and attestation levels are the
 * closed sets of src/stir/verify.ts.
 */
import { Counter, Gauge, type Registry } from "prom-client";
import type { CertCache } from "../stir/certs.js";
import type { Attestation } from "../stir/passport.js";
import type { StirSigner } from "../stir/sign.js";
import { STATUS_REASON, withVerstat, type StirVerifier, type VerifyResult } from "../stir/verify.js";

export type OnFail = "mark" | "reject";

/** Mutable view of the request the edge is about to forward. */
export interface IdentityCarrier {
  get(name: string): string | undefined;
  getAll(name: string): string[];
  set(name: string, value: string): void;
}

export interface StirPolicyOptions {
  verifier?: StirVerifier;
  certs?: CertCache;
  signer?: StirSigner;
  /** How long a call may wait for a certificate fetch (ms). */
  budgetMs?: number;
  /** Refuse calls without Identity from these trunks (428) when their route rejects on failure. */
  registry: Registry;
}

export interface InboundVerdict {
  result: VerifyResult;
  /** Status to answer instead of routing (route on_fail: reject and a failure), else 0. */
  reject: number;
  reason?: string;
}

export class StirPolicy {
  private readonly verifications: Counter<"trunk" | "result" | "attest">;
  private readonly failures: Counter<"trunk" | "reason">;
  private readonly signatures: Counter<"attest">;
  readonly budgetMs: number;

  constructor(private readonly o: StirPolicyOptions) {
    this.budgetMs = o.budgetMs ?? 1000;
    const r = o.registry;
    this.verifications = new Counter({ name: "didgate_stir_verifications_total", help: "Inbound Identity verifications by trunk, verstat and attestation", labelNames: ["trunk", "result", "attest"], registers: [r] });
    this.failures = new Counter({ name: "didgate_stir_verify_failures_total", help: "Inbound Identity verification failures by reason", labelNames: ["trunk", "reason"], registers: [r] });
    this.signatures = new Counter({ name: "didgate_stir_signatures_total", help: "Outbound calls signed, by attestation", labelNames: ["attest"], registers: [r] });
    const certs = o.certs;
    if (certs !== undefined) {
      const g = (name: string, help: string, f: () => number): void => {
        new Gauge({ name, help, registers: [r], collect() { this.set(f()); } });
      };
      g("didgate_stir_cert_cache_hits", "Certificate cache hits since start", () => certs.stats.hits);
      g("didgate_stir_cert_cache_misses", "Certificate cache misses since start", () => certs.stats.misses);
      g("didgate_stir_cert_fetches", "Certificate fetches since start", () => certs.stats.fetches);
      g("didgate_stir_cert_fetch_errors", "Certificate fetches that failed since start", () => certs.stats.fetchErrors);
    }
  }

  get verifying(): boolean {
    return this.o.verifier !== undefined;
  }

  get signing(): boolean {
    return this.o.signer !== undefined;
  }

  /**
   * Verifies an inbound call and marks the request for the target. Synchronous when the
   * certificate is cached (or there is nothing to fetch).
   */
  verifyInbound(trunk: string, req: IdentityCarrier, caller: string | undefined, did: string, onFail: OnFail): InboundVerdict | Promise<InboundVerdict> | null {
    const v = this.o.verifier;
    if (v === undefined) return null;
    const r = v.verify(req.getAll("identity"), caller, did, this.budgetMs);
    if (r instanceof Promise) return r.then((x) => this.apply(trunk, req, x, onFail));
    return this.apply(trunk, req, r, onFail);
  }

  private apply(trunk: string, req: IdentityCarrier, r: VerifyResult, onFail: OnFail): InboundVerdict {
    this.verifications.inc({ trunk, result: r.verstat, attest: r.attest ?? "none" });
    if (r.reason !== "passed") this.failures.inc({ trunk, reason: r.reason });
    if (onFail === "reject" && r.status !== 0) {
      return { result: r, reject: r.status, reason: r.status + " " + (STATUS_REASON[r.status] ?? "") };
    }
    // the attestation level of a verified PASSporT, for PBXs that show or act on it
    if (r.reason === "passed" && r.attest !== null) req.set("Attestation-Info", r.attest);
    const pai = req.get("p-asserted-identity");
    if (pai !== undefined) req.set("P-Asserted-Identity", withVerstat(pai, r.verstat));
    else {
      const from = req.get("from");
      if (from !== undefined) req.set("From", withVerstat(from, r.verstat));
    }
    return { result: r, reject: 0 };
  }

  /**
   * Identity headers for the off-net legs of one call: each carrier leg gets the PASSporT of its
   * destination (one signature per destination, shared by that destination's legs). A forwarded
   * leg whose call arrived signed gets a div PASSporT naming the DID instead (RFC 8946); one that
   * arrived unsigned gets `C`. Legs to SIP targets are returned as they are.
   */
  signLegs<L extends { readonly carrier?: unknown; readonly dest?: string; readonly forwardedFrom?: string; readonly add: ReadonlyArray<readonly [string, string]> }>(
    legs: readonly L[],
    attest: Attestation,
    orig: string | undefined,
    arrivedSigned: boolean,
  ): L[] {
    const s = this.o.signer;
    if (s === undefined || orig === undefined) return legs as L[];
    const done = new Map<string, [string, string]>();
    return legs.map((l) => {
      if (l.carrier === undefined || l.dest === undefined) return l;
      const k = l.dest + " " + (l.forwardedFrom ?? "");
      let h = done.get(k);
      if (h === undefined) {
        if (l.forwardedFrom !== undefined && arrivedSigned) h = ["Identity", s.signDiversion(orig, l.forwardedFrom, l.dest)];
        else {
          const a: Attestation = l.forwardedFrom !== undefined ? "C" : attest;
          h = ["Identity", s.sign(a, orig, l.dest).header];
          this.signatures.inc({ attest: a });
        }
        done.set(k, h);
      }
      return { ...l, add: [...l.add, h] };
    });
  }

}
