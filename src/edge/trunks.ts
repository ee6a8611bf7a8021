/**
 * Carrier trunks: which trunk a packet's source address belongs to (exact IPs first, then CIDRs,
 * most specific first), and each trunk's number plan and CPS bucket. Addresses come from the
 * packet, never from headers.
 */
import { AddressMatcher } from "../config/net.js";
import type { TrunkConfig } from "../config/schema.js";
import type { NumberPlan } from "../routing/number.js";
import { TokenBucket, type Now } from "./limits.js";

export interface Trunk {
  readonly name: string;
  readonly didFrom: "ruri" | "to";
  readonly plan: NumberPlan;
  readonly cps: TokenBucket;
  readonly config: TrunkConfig;
}

export class TrunkTable {
  private readonly matcher = new AddressMatcher<Trunk>();
  readonly trunks: Trunk[] = [];

  constructor(configs: readonly TrunkConfig[], now: Now, previous?: TrunkTable) {
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
      const t: Trunk = { name: c.name, didFrom: c.did_from, plan, cps, config: c };
      this.trunks.push(t);
      for (const s of c.sources) this.matcher.add(s, t);
    }
  }

  byName(name: string): Trunk | undefined {
    return this.trunks.find((t) => t.name === name);
  }

  /** The trunk owning a source address, or undefined. */
  match(address: string): Trunk | undefined {
    return this.matcher.match(address);
  }
}
