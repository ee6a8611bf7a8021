/**
 * `didgate stir verify`: decode an Identity header and verify it as an inbound call would be, for
 * operators debugging a carrier's signatures. The certificate is fetched (no fetch budget: the
 * tool waits for it) and checked against the trust anchors given.
 */
import { AddressPolicy } from "../delivery/ssrf.js";
import { CertCache } from "./certs.js";
import { decodePassport, parseIdentity } from "./passport.js";
import { StirVerifier, type VerifyResult } from "./verify.js";
import type { X509Certificate } from "node:crypto";

export interface InspectResult {
  identity: { info: string | null; alg: string | null; ppt: string | null } | null;
  header: Record<string, unknown> | null;
  claims: Record<string, unknown> | null;
  /** iat as ISO time and its age in seconds at the time of the check. */
  iat?: { time: string; age_s: number };
  verdict: VerifyResult;
}

export async function inspectIdentity(
  value: string,
  from: string,
  to: string,
  opts: { anchors: readonly X509Certificate[]; maxAgeS?: number; allowHttp?: boolean; timeoutMs?: number; now?: () => number; allowPrivate?: readonly string[] },
): Promise<InspectResult> {
  const now = opts.now ?? Date.now;
  // the daemon's address policy: a hostile carrier's x5u is not fetched from loopback or private
  // addresses because an operator pasted its header here
  const policy = new AddressPolicy(opts.allowPrivate ?? []);
  const certs = new CertCache({ anchors: opts.anchors, allowHttp: opts.allowHttp ?? false, timeoutMs: opts.timeoutMs ?? 5000, now, allowAddress: (ip) => policy.allows(ip) });
  const v = new StirVerifier({ certs, maxAgeS: opts.maxAgeS ?? 60, now });
  const id = parseIdentity(value);
  const p = id !== null ? decodePassport(id.token) : null;
  const verdict = await v.verify([value], from, to, opts.timeoutMs ?? 5000);
  const out: InspectResult = {
    identity: id === null ? null : { info: id.info, alg: id.alg, ppt: id.ppt },
    header: p === null ? null : { ...p.header },
    claims: p === null ? null : p.claims,
    verdict,
  };
  const iat = p?.claims.iat;
  if (typeof iat === "number" && Number.isFinite(iat) && Math.abs(iat) < 1e11) out.iat = { time: new Date(iat * 1000).toISOString(), age_s: Math.round(now() / 1000 - iat) };
  return out;
}
