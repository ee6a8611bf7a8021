/**
 * Carrier trunks: which trunk a packet's source address belongs to (exact IPs first, then CIDRs,
 * most specific first), and each trunk's number plan and CPS bucket. Addresses come from the
 * packet, never from headers.
 */
import { AddressMatcher, parseCidr, parseIp } from "../util/net.js";
import type { NumberPlan } from "../routing/number.js";
import { TokenBucket, type Now } from "./limits.js";

/** The inbound side of a trunk as configured (`sip.trunks[]`, the fields read here). */
export interface TrunkSpec {
  name: string;
  /** Source addresses and CIDRs the carrier sends from. */
  sources: readonly string[];
  cps: number;
  did_from: "ruri" | "to";
  country_code?: string | undefined;
  national_prefix?: string | undefined;
  /** The carrier's front proxy: the first X-Forwarded-For address is the real source. */
  front_proxy: boolean;
}

export interface Trunk {
  readonly name: string;
  readonly didFrom: "ruri" | "to";
  readonly plan: NumberPlan;
  readonly cps: TokenBucket;
  readonly sources: readonly string[];
  readonly frontProxy: boolean;
}

export class TrunkTable {
  private readonly matcher = new AddressMatcher<Trunk>();
  readonly trunks: Trunk[] = [];
  /** The same, by name. */
  private readonly names = new Map<string, Trunk>();

  constructor(configs: readonly TrunkSpec[], now: Now, previous?: TrunkTable) {
    for (const c of configs) {
      const old = previous?.byName(c.name);
      const burst = Math.max(1, c.cps);
      let cps: TokenBucket;
      if (old) {
        cps = old.cps;
        cps.configure(c.cps, burst);
      } else cps = new TokenBucket(c.cps, burst, now);
      const plan: NumberPlan = {};
      if (c.country_code !== undefined) plan.countryCode = c.country_code;
      if (c.national_prefix !== undefined) plan.nationalPrefix = c.national_prefix;
      const t: Trunk = { name: c.name, didFrom: c.did_from, plan, cps, sources: c.sources, frontProxy: c.front_proxy };
      this.trunks.push(t);
      this.names.set(t.name, t);
      for (const s of c.sources) this.matcher.add(s, t);
    }
  }

  byName(name: string): Trunk | undefined {
    return this.names.get(name);
  }

  /** The trunk owning a source address, or undefined. */
  match(address: string): Trunk | undefined {
    return this.matcher.match(address);
  }

  /**
   * The trunk with a source closest to an address that is not a trunk's (longest common prefix of
   * the address and a trunk source's network address), for a log line that helps find a carrier
   * calling from an address missing in its sources. Undefined when none shares at least /16
   * (IPv4) or /32 (IPv6).
   */
  nearest(address: string): { trunk: string; commonBits: number } | undefined {
    const ip = parseIp(address);
    if (ip === undefined) return undefined;
    const width = ip.family === 4 ? 32 : 128;
    let best: { trunk: string; commonBits: number } | undefined;
    for (const t of this.trunks) {
      for (const src of t.sources) {
        const c = parseCidr(src);
        if (c === undefined || c.family !== ip.family) continue;
        let x = c.base ^ ip.value;
        let bits = width;
        while (x > 0n) {
          x >>= 1n;
          bits--;
        }
        if (best === undefined || bits > best.commonBits) best = { trunk: t.name, commonBits: bits };
      }
    }
    return best !== undefined && best.commonBits >= (ip.family === 4 ? 16 : 32) ? best : undefined;
  }
}
