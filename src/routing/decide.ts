/**
 * The routing decision (README.md "Routes"). One entry for calls and messages, match(): key
 * lookup, matched key and kind, and the number's lifecycle state at the time (quarantine and
 * released never route). Then, for a call (decideVoice):
 *   callers (first match on the caller's E.164) → schedule (first window containing the call's
 *   time in its tz) → targets,
 * with targets ordered by priority and a weighted random order within one priority; for a message
 * (decideSms): the route's sms section. Both answer with the same outcomes: routed, not_found,
 * gone, no_targets (the edges map them to their own metric labels).
 *
 * Pure: no I/O, no timers. Randomness comes in through `random`, time through the `at` argument.
 */
import type { CallerRule, Route, RouteState, ScheduleWindow, SmsRoute, Target } from "./route.js";
import { isGone, stateAt } from "./route.js";
import type { KeyKind, RouteTable } from "./table.js";

export type Outcome = "routed" | "not_found" | "gone" | "no_targets";

const KINDS: readonly (KeyKind | null)[] = [null, "exact", "prefix", "default"];

/** A table's value for a number: the longest matching key's, and that key and its kind. */
export interface Entry<V> {
  readonly value: V;
  readonly key: string;
  readonly kind: KeyKind;
}

/**
 * The entry of `number` ("+E164" or digits) in any table (routes, the outbound table), or
 * undefined when no key matches.
 */
export function entryOf<V>(table: RouteTable<V>, number: string): Entry<V> | undefined {
  const value = table.lookup(number);
  if (value === undefined) return undefined;
  const kind = KINDS[table.match.kind]!;
  // An exact match of a canonical number is the number itself: no string built per call.
  return { value, key: kind === "exact" && number.charCodeAt(0) === 43 ? number : table.matchedKey(), kind };
}

/** The state of a route at a time (Decider.stateOf: released_at, port_date, quarantine days). */
export type StateOf = (route: Route, atMs: number) => RouteState;

/** The state field as it is (no lifecycle dates applied). */
export const stateField: StateOf = (route) => route.state;

/**
 * A number's route at a time: not_found (no key matches), gone (its state then is quarantine or
 * released: it never routes) or routed (a route that may route; what it routes to is the
 * decision's). `state` is the state at `atMs`.
 */
export interface Match {
  readonly outcome: "routed" | "not_found" | "gone";
  readonly number: string;
  readonly key: string | null;
  readonly kind: KeyKind | null;
  readonly state: RouteState | null;
  readonly route: Route | null;
}

/** The one routing entry of calls and messages: lookup, matched key, lifecycle state. */
export function match(table: RouteTable<Route>, number: string, atMs: number, stateOf: StateOf = stateField): Match {
  const e = entryOf(table, number);
  if (e === undefined) return { outcome: "not_found", number, key: null, kind: null, state: null, route: null };
  const state = stateOf(e.value, atMs);
  return { outcome: isGone(state) ? "gone" : "routed", number, key: e.key, kind: e.kind, state, route: e.value };
}

/** Where a message to a number goes: its route's sms section (no_targets: the route has none). */
export interface SmsDecision extends Omit<Match, "outcome"> {
  readonly outcome: Outcome;
  readonly sms: SmsRoute | null;
}

/** The decision for a message to `number` (E.164) at `atMs`. */
export function decideSms(table: RouteTable<Route>, number: string, atMs: number, stateOf: StateOf = stateField): SmsDecision {
  const m = match(table, number, atMs, stateOf);
  const sms = m.outcome === "routed" ? (m.route!.sms ?? null) : null;
  return { ...m, outcome: m.outcome === "routed" && sms === null ? "no_targets" : m.outcome, sms };
}

export type Rule =
  | { readonly type: "callers"; readonly index: number; readonly match: string }
  | { readonly type: "schedule"; readonly index: number; readonly tz: string; readonly local: string }
  | { readonly type: "targets" };

export interface Decision {
  readonly outcome: Outcome;
  readonly number: string;
  readonly key: string | null;
  readonly kind: KeyKind | null;
  readonly state: RouteState | null;
  readonly route: Route | null;
  /** Targets in the order to try them (empty unless outcome is "routed"). */
  readonly targets: readonly Target[];
  readonly rule: Rule | null;
}

const NO_TARGETS: readonly Target[] = Object.freeze([]) as readonly Target[];
const TARGETS_RULE: Rule = Object.freeze({ type: "targets" });

const BUCKET_MS = 15 * 60_000;
const WEEKDAYS: Record<string, number> = { Sun: 0, Mon: 1, Tue: 2, Wed: 3, Thu: 4, Fri: 5, Sat: 6 };

interface TzState {
  fmt: Intl.DateTimeFormat;
  bucket: number;
  weekday: number;
  minute: number;
}

export interface DeciderOptions {
  /** Uniform random in [0, 1); injectable for tests. */
  random?: () => number;
  /** Days a number stays in quarantine after its released_at (default 90). */
  quarantineDays?: number;
  /** Per-tenant quarantine days, overriding quarantineDays. */
  tenantQuarantineDays?: ReadonlyMap<string, number>;
}

/**
 * Makes decisions. Holds the per-time-zone formatter cache (local time is computed once per
 * 15-minute UTC bucket per zone: every zone's offset is a multiple of 15 minutes and changes only
 * on such a boundary, so a bucket never straddles a DST change or local midnight).
 */
export class Decider {
  private readonly random: () => number;
  private readonly tz = new Map<string, TzState>();

  private readonly quarantineDays: number;
  private readonly tenantQuarantine: ReadonlyMap<string, number> | undefined;

  /** stateOf as a function (match() takes it). */
  readonly stateAt: StateOf = (route, atMs) => this.stateOf(route, atMs);

  constructor(opts: DeciderOptions = {}) {
    this.random = opts.random ?? Math.random;
    this.quarantineDays = opts.quarantineDays ?? 90;
    this.tenantQuarantine = opts.tenantQuarantineDays;
  }

  /** match() with this decider's lifecycle rules. */
  match(table: RouteTable<Route>, number: string, atMs: number): Match {
    return match(table, number, atMs, this.stateAt);
  }

  /** decideSms() with this decider's lifecycle rules. */
  decideSms(table: RouteTable<Route>, number: string, atMs: number): SmsDecision {
    return decideSms(table, number, atMs, this.stateAt);
  }

  /** The state of a route at a time (released_at, quarantine days, port_date applied). */
  stateOf(route: Route, atMs: number): RouteState {
    if (route.releasedAt === undefined && route.portDate === undefined) return route.state;
    const t = route.tenant;
    const q = t !== undefined ? this.tenantQuarantine?.get(t) : undefined;
    return stateAt(route, atMs, q ?? this.quarantineDays);
  }

  /** Local weekday (0 = Sunday) and minute of day of `atMs` in `tz`. */
  localTime(tz: string, atMs: number): { weekday: number; minute: number } {
    const s = this.tzState(tz, atMs);
    return { weekday: s.weekday, minute: s.minute + Math.floor((atMs - s.bucket * BUCKET_MS) / 60_000) };
  }

  private tzState(tz: string, atMs: number): TzState {
    let s = this.tz.get(tz);
    if (s === undefined) {
      s = {
        fmt: new Intl.DateTimeFormat("en-US", { timeZone: tz, weekday: "short", hour: "2-digit", minute: "2-digit", hourCycle: "h23" }),
        bucket: NaN,
        weekday: 0,
        minute: 0,
      };
      if (this.tz.size > 1000) this.tz.clear();
      this.tz.set(tz, s);
    }
    const bucket = Math.floor(atMs / BUCKET_MS);
    if (bucket !== s.bucket) {
      let wd = 0;
      let h = 0;
      let m = 0;
      for (const p of s.fmt.formatToParts(bucket * BUCKET_MS)) {
        if (p.type === "weekday") wd = WEEKDAYS[p.value] ?? 0;
        else if (p.type === "hour") h = Number(p.value);
        else if (p.type === "minute") m = Number(p.value);
      }
      s.bucket = bucket;
      s.weekday = wd;
      s.minute = h * 60 + m;
    }
    return s;
  }

  /** True if the window contains atMs. Windows with from > to cross midnight. */
  windowContains(w: ScheduleWindow, atMs: number): boolean {
    const s = this.tzState(w.tz, atMs);
    const minute = s.minute + Math.floor((atMs - s.bucket * BUCKET_MS) / 60_000);
    const today = s.weekday;
    if (w.from < w.to) return (w.dayMask & (1 << today)) !== 0 && minute >= w.from && minute < w.to;
    // Crosses midnight: the late part belongs to the start day, the early part to the day before.
    if (minute >= w.from) return (w.dayMask & (1 << today)) !== 0;
    if (minute < w.to) return (w.dayMask & (1 << ((today + 6) % 7))) !== 0;
    return false;
  }

  /**
   * Decide where a call to `number` (E.164) goes. `caller` is the caller's E.164 or undefined;
   * `atMs` the call's time (epoch ms).
   */
  decideVoice(table: RouteTable<Route>, number: string, caller: string | undefined, atMs: number): Decision {
    const m = this.match(table, number, atMs);
    if (m.outcome !== "routed") return { ...m, targets: NO_TARGETS, rule: null };
    const route = m.route!;
    const { key, kind } = m;
    const voice = route.voice;
    if (voice === undefined) {
      return { outcome: "no_targets", number, key, kind, state: route.state, route, targets: NO_TARGETS, rule: null };
    }
    let targets: readonly Target[] = voice.targets;
    let rule: Rule = TARGETS_RULE;
    const ci = caller === undefined || voice.callers.length === 0 ? -1 : matchCaller(voice.callers, caller);
    if (ci >= 0) {
      const r = voice.callers[ci]!;
      targets = r.targets;
      rule = { type: "callers", index: ci, match: r.match };
    } else {
      for (let i = 0; i < voice.schedule.length; i++) {
        const w = voice.schedule[i]!;
        if (this.windowContains(w, atMs)) {
          targets = w.targets;
          const lt = this.localTime(w.tz, atMs);
          rule = { type: "schedule", index: i, tz: w.tz, local: `${DAY_LABELS[lt.weekday]} ${hhmm(lt.minute)}` };
          break;
        }
      }
    }
    if (targets.length === 0) {
      return { outcome: "no_targets", number, key, kind, state: route.state, route, targets: NO_TARGETS, rule };
    }
    return { outcome: "routed", number, key, kind, state: route.state, route, targets: this.order(targets), rule };
  }

  /**
   * Order targets (already sorted by priority) for trying: priority groups in order, a weighted
   * random permutation inside each group (RFC 2782 style; weight 0 entries last in a group).
   * Returns the input array itself when no group has more than one target.
   */
  order(targets: readonly Target[]): readonly Target[] {
    let multi = false;
    for (let i = 1; i < targets.length; i++) {
      if (targets[i]!.priority === targets[i - 1]!.priority) {
        multi = true;
        break;
      }
    }
    if (!multi) return targets;
    const out: Target[] = [];
    let start = 0;
    while (start < targets.length) {
      let end = start + 1;
      while (end < targets.length && targets[end]!.priority === targets[start]!.priority) end++;
      if (end - start === 1) out.push(targets[start]!);
      else {
        const group = targets.slice(start, end);
        while (group.length > 0) {
          let total = 0;
          for (const t of group) total += t.weight;
          let pick = 0;
          if (total > 0) {
            let r = this.random() * total;
            for (pick = 0; pick < group.length - 1; pick++) {
              r -= group[pick]!.weight;
              if (r < 0) break;
            }
          }
          out.push(group[pick]!);
          group.splice(pick, 1);
        }
      }
      start = end;
    }
    return out;
  }
}

const DAY_LABELS = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"];

function hhmm(minute: number): string {
  const h = Math.floor(minute / 60);
  const m = minute % 60;
  return `${h < 10 ? "0" : ""}${h}:${m < 10 ? "0" : ""}${m}`;
}

/** Index of the first caller rule matching the caller's E.164 ("+…"), or -1. */
export function matchCaller(rules: readonly CallerRule[], caller: string): number {
  for (let i = 0; i < rules.length; i++) {
    const r = rules[i]!;
    const d = r.digits;
    if (r.prefix) {
      if (caller.length - 1 < d.length) continue;
      if (d.length === 0 || caller.startsWith(d, 1)) return i;
    } else if (caller.length - 1 === d.length && caller.startsWith(d, 1)) return i;
  }
  return -1;
}
