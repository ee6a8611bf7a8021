/**
 * Where an outbound or forwarded call goes: the legs of a call (target URI plus what changes on
 * that leg's INVITE), from the route table (on-net numbers), the outbound table (carriers, least
 * cost first) and forwarding targets ("tel:+E164").
 *
 *   - A destination that is an active number of ours (an exact route key) is on-net: its route's
 *     targets, as for an inbound call.
 *   - Any other destination: the carriers of the longest matching outbound prefix, in order; per
 *     carrier its termination URIs in order, with the number in the carrier's format and the
 *     carrier's headers.
 *   - A "tel:+E164" target forwards the call: an on-net number is followed to its own targets;
 *     otherwise the number leaves through the outbound table with Diversion (RFC 5806) or
 *     History-Info (RFC 7044) naming the forwarding number, and the caller ID of the original
 *     caller, or of the forwarding number with forward_caller_id: did.
 *
 * Forwarding loops end here: a number met twice while following forwards, or named in the
 * request's own Diversion / History-Info (the call already left through that forward once and
 * came back), is not forwarded again. When nothing but loops is left the caller gets 482.
 */
import { entryOf, match, stateField, type Decider } from "../routing/decide.js";
import { numberUserPart } from "../routing/number.js";
import type { OutboundEntry } from "../routing/outbound.js";
import { telNumber, type ForwardCallerId, type Route, type Target } from "../routing/route.js";
import type { RouteStore } from "../routing/table.js";
import { dialString, withUser, type Carrier, type CarrierTable } from "./carriers.js";

/** One target of a call with what its INVITE needs beyond the common request. */
export interface Leg extends Target {
  /** The carrier of an off-net leg (limits, failover codes), else undefined. */
  readonly carrier: Carrier | undefined;
  /** Headers set on this leg (replacing the request's). */
  readonly set: ReadonlyArray<readonly [string, string]>;
  /** Headers added on this leg. */
  readonly add: ReadonlyArray<readonly [string, string]>;
  /** Off-net legs: the destination number (E.164), and the DID it was forwarded from, if any. */
  readonly dest?: string;
  readonly forwardedFrom?: string;
}

export interface Expansion {
  legs: Leg[];
  /** A forward was dropped because it loops. */
  loop: boolean;
  /** A forward (or the destination) had no outbound route. */
  noRoute: boolean;
}

const NONE: ReadonlyArray<readonly [string, string]> = Object.freeze([]) as ReadonlyArray<readonly [string, string]>;
const MAX_DEPTH = 8;

export interface OriginatorOptions {
  store: RouteStore<Route>;
  outbound: RouteStore<OutboundEntry>;
  decider: Decider;
  carriers: () => CarrierTable;
  /** Host for History-Info entries (our advertised address). */
  host: () => string;
  /** A carrier named by the outbound table but not configured (logged by the caller, once). */
  onUnknownCarrier?: (name: string) => void;
}

export class Originator {
  constructor(private readonly o: OriginatorOptions) {}

  /** The active route of an on-net number (an exact key), or undefined. */
  onNet(e164: string): Route | undefined {
    // by its state field: the lifecycle dates are not applied here (the time is not read)
    const m = match(this.o.store.current, e164, 0, stateField);
    return m.outcome === "routed" && m.kind === "exact" ? m.route! : undefined;
  }

  /** The carriers of a destination, by the longest matching outbound prefix. */
  carriersFor(dest: string): Carrier[] {
    const e = entryOf(this.o.outbound.current, dest);
    if (e === undefined) return [];
    const table = this.o.carriers();
    const out: Carrier[] = [];
    for (const n of e.value.voice) {
      const c = table.get(n);
      if (c !== undefined) out.push(c);
      else this.o.onUnknownCarrier?.(n);
    }
    return out;
  }

  /** Off-net legs to `dest`: each carrier's termination URIs, in order. */
  carrierLegs(dest: string, priority: number, set: ReadonlyArray<readonly [string, string]>, add: ReadonlyArray<readonly [string, string]>, timeoutS?: number): Leg[] {
    const legs: Leg[] = [];
    for (const c of this.carriersFor(dest)) {
      const user = dialString(c, dest);
      const extra = c.headers.length === 0 ? add : add.length === 0 ? c.headers : [...add, ...c.headers];
      for (const u of c.uris) {
        const leg: Leg = { uri: withUser(u, user), priority, weight: 100, carrier: c, set, add: extra, dest };
        legs.push(timeoutS === undefined ? leg : { ...leg, timeoutS });
      }
    }
    return legs;
  }

  /**
   * The legs of a route's targets for a call to `did` from `caller`: SIP targets as they are,
   * forwarding targets followed (on-net) or sent to carriers (off-net).
   * `diverted` holds the numbers the request already names in Diversion / History-Info.
   */
  expand(
    targets: readonly Target[],
    did: string,
    caller: string | undefined,
    forwardCallerId: ForwardCallerId,
    atMs: number,
    diverted: ReadonlySet<string>,
  ): Expansion {
    const x: Expansion = { legs: [], loop: false, noRoute: false };
    this.walk(targets, did, caller, forwardCallerId, atMs, diverted, new Set([did]), 0, x, undefined);
    return x;
  }

  private walk(
    targets: readonly Target[],
    did: string,
    caller: string | undefined,
    fcid: ForwardCallerId,
    atMs: number,
    diverted: ReadonlySet<string>,
    seen: Set<string>,
    depth: number,
    x: Expansion,
    group: number | undefined,
  ): void {
    for (const t of targets) {
      const prio = group ?? t.priority;
      const n = telNumber(t.uri);
      if (n === undefined) {
        x.legs.push({ uri: t.uri, priority: prio, weight: t.weight, ...(t.timeoutS !== undefined ? { timeoutS: t.timeoutS } : {}), carrier: undefined, set: NONE, add: NONE });
        continue;
      }
      if (seen.has(n) || diverted.has(did) || depth >= MAX_DEPTH) {
        x.loop = true;
        continue;
      }
      const on = this.onNet(n);
      if (on !== undefined) {
        // on-net forward: follow the number's own route (its schedule and caller rules apply)
        const d = this.o.decider.decideVoice(this.o.store.current, n, caller, atMs);
        if (d.outcome !== "routed") continue;
        seen.add(n);
        this.walk(d.targets, n, caller, on.voice?.forwardCallerId ?? "caller", atMs, diverted, seen, depth + 1, x, prio);
        seen.delete(n);
        continue;
      }
      const shown = fcid === "did" ? did : caller;
      const set: Array<readonly [string, string]> = shown === undefined ? [] : [["P-Asserted-Identity", "<tel:" + shown + ">"]];
      const legs = this.carrierLegs(n, prio, set, NONE, t.timeoutS);
      if (legs.length === 0) {
        x.noRoute = true;
        continue;
      }
      for (const l of legs) {
        const hdr: [string, string] = l.carrier!.forwardHeader === "history-info" ? ["History-Info", this.historyInfo(did, n)] : ["Diversion", "<tel:" + did + ">;reason=unconditional;counter=1"];
        x.legs.push({ ...l, add: [hdr, ...l.add], forwardedFrom: did });
      }
    }
  }

  /** RFC 7044: the forwarding number, then the new target retargeted from it (cause 302, RFC 4458). */
  private historyInfo(did: string, to: string): string {
    const h = this.o.host();
    return "<sip:" + did + "@" + h + ";user=phone>;index=1, <sip:" + to + "@" + h + ";user=phone;cause=302>;index=1.1;mp=1";
  }
}

/**
 * Numbers the call was already forwarded from: every Diversion entry (RFC 5806), and every
 * History-Info entry but the last (RFC 7044: the last one is the current target). E.164 only.
 */
export function divertedNumbers(diversion: readonly string[], historyInfo: readonly string[]): Set<string> {
  const out = new Set<string>();
  const add = (part: string): void => {
    if (out.size >= 32) return;
    const u = numberUserPart(part.replace(/^[^<]*</, "<"));
    if (/^\+[1-9]\d{0,14}$/.test(u)) out.add(u);
  };
  for (const v of diversion) for (const p of v.split(",")) add(p);
  const hi: string[] = [];
  for (const v of historyInfo) for (const p of v.split(",")) if (hi.length < 64) hi.push(p);
  for (let i = 0; i < hi.length - 1; i++) add(hi[i]!);
  return out;
}
