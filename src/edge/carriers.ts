/**
 * Carriers for termination: the outbound side of the trunks that have `termination`. A carrier has
 * one or more termination URIs (tried in order), an optional CPS bucket and concurrent-call limit,
 * the number format it wants in the Request-URI, headers to add, the answers that move a call on to
 * the next carrier, and how a forwarded call names the number it was forwarded from.
 */
import { TokenBucket, type Now } from "./limits.js";

export interface Carrier {
  readonly name: string;
  readonly uris: readonly string[];
  readonly cps: TokenBucket | undefined;
  readonly maxCalls: number | undefined;
  readonly format: "e164" | "national";
  readonly prefix: string;
  readonly countryCode: string | undefined;
  readonly headers: ReadonlyArray<readonly [string, string]>;
  readonly failoverOn: readonly number[];
  readonly forwardHeader: "diversion" | "history-info";
}

/** The termination side of a trunk as configured (`sip.trunks[]`, the fields read here). */
export interface TerminationSpec {
  name: string;
  termination?: string | readonly string[] | undefined;
  termination_cps?: number | undefined;
  max_calls?: number | undefined;
  number_format: "e164" | "national";
  number_prefix: string;
  country_code?: string | undefined;
  headers: Readonly<Record<string, string>>;
  failover_on: readonly number[];
  forward_header: "diversion" | "history-info";
}

export class CarrierTable {
  private readonly byName = new Map<string, Carrier>();

  constructor(trunks: readonly TerminationSpec[], now: Now, previous?: CarrierTable) {
    for (const t of trunks) {
      if (t.termination === undefined) continue;
      const old = previous?.get(t.name);
      let cps: TokenBucket | undefined;
      if (t.termination_cps !== undefined) {
        const burst = Math.max(1, t.termination_cps);
        cps = old?.cps;
        if (cps !== undefined) cps.configure(t.termination_cps, burst);
        else cps = new TokenBucket(t.termination_cps, burst, now);
      }
      this.byName.set(t.name, {
        name: t.name,
        uris: typeof t.termination === "string" ? [t.termination] : t.termination,
        cps,
        maxCalls: t.max_calls,
        format: t.number_format,
        prefix: t.number_prefix,
        countryCode: t.country_code,
        headers: Object.entries(t.headers),
        failoverOn: t.failover_on,
        forwardHeader: t.forward_header,
      });
    }
  }

  get(name: string): Carrier | undefined {
    return this.byName.get(name);
  }

  get size(): number {
    return this.byName.size;
  }

  names(): string[] {
    return [...this.byName.keys()];
  }
}

/**
 * The called number as the carrier wants it: "+E164", or national (the carrier's country code
 * removed when the number is in that country, then number_prefix; a number of another country
 * keeps its "+" form, as no national form exists for it).
 */
export function dialString(c: Carrier, e164: string): string {
  if (c.format === "e164") return e164;
  const cc = c.countryCode;
  if (cc !== undefined && e164.startsWith(cc, 1)) return c.prefix + e164.slice(1 + cc.length);
  return e164;
}

/** A termination URI with `user` as its user part (an existing user part is replaced). */
export function withUser(uri: string, user: string): string {
  const colon = uri.indexOf(":");
  const rest = uri.slice(colon + 1);
  const at = rest.indexOf("@");
  return uri.slice(0, colon + 1) + user + "@" + (at >= 0 ? rest.slice(at + 1) : rest);
}
