/**
 * Customers: the PBXs and voice platforms allowed to originate calls. A customer is recognised by
 * the packet's source address (exact IPs first, then the most specific CIDR) and/or by SIP digest
 * credentials; one with both needs both. Each has its own CPS bucket and concurrent-call limit.
 */
import { AddressMatcher } from "../util/net.js";
import type { NumberPlan } from "../routing/number.js";
import { TokenBucket, type Now } from "./limits.js";

/** A customer as configured (`sip.customers[]`, the fields read here). */
export interface CustomerSpec {
  name: string;
  tenant: string;
  /** Source addresses and CIDRs; empty: recognised by digest alone. */
  sources: readonly string[];
  digest?: { readonly username: string; readonly password: string } | undefined;
  caller_id: "owned" | "any";
  cps: number;
  max_calls?: number | undefined;
  country_code?: string | undefined;
  national_prefix?: string | undefined;
}

export interface Customer {
  readonly name: string;
  readonly tenant: string;
  readonly plan: NumberPlan;
  readonly callerId: "owned" | "any";
  readonly cps: TokenBucket;
  readonly maxCalls: number | undefined;
  /** Digest credentials: required on every INVITE when set. */
  readonly digest: { readonly username: string; readonly password: string } | undefined;
  /** Recognised by source address (else by digest username alone). */
  readonly bySource: boolean;
}

export class CustomerTable {
  private readonly matcher = new AddressMatcher<Customer>();
  private readonly users = new Map<string, Customer>();
  readonly customers: Customer[] = [];
  /** The same, by name. */
  private readonly names = new Map<string, Customer>();
  /** Some customer may call from any address (digest only): unknown sources get a challenge. */
  readonly anySource: boolean;

  constructor(configs: readonly CustomerSpec[], now: Now, previous?: CustomerTable) {
    let any = false;
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
      const cu: Customer = {
        name: c.name,
        tenant: c.tenant,
        plan,
        callerId: c.caller_id,
        cps,
        maxCalls: c.max_calls,
        digest: c.digest,
        bySource: c.sources.length > 0,
      };
      this.customers.push(cu);
      this.names.set(cu.name, cu);
      for (const s of c.sources) this.matcher.add(s, cu);
      if (c.digest) this.users.set(c.digest.username, cu);
      if (c.sources.length === 0) any = true;
    }
    this.anySource = any;
  }

  byName(name: string): Customer | undefined {
    return this.names.get(name);
  }

  /** The customer owning a source address, or undefined. */
  match(address: string): Customer | undefined {
    return this.matcher.match(address);
  }

  /** The customer with this digest username that may call from anywhere (no sources), or undefined. */
  byUser(username: string): Customer | undefined {
    return this.users.get(username);
  }

  get size(): number {
    return this.customers.length;
  }
}
