/**
 * `didgate_numbers{state}`: the numbers (exact route keys; prefixes are blocks) by the state they
 * answer with now, released_at, port_date and the quarantine days applied, as `didgate numbers
 * report` counts them.
 *
 * A scrape reads the last counts; it never walks the table. The table is walked by distinct value
 * (numbers sharing a route object count together) in slices that yield to the event loop, when a
 * new table is swapped in, and at most once a minute when it was changed in place (change-stream
 * deltas). States move by time alone, so between walks the counts are re-evaluated from the few
 * routes that carry a date (remembered by the last walk) rather than from the whole table.
 */
import { Gauge, type Registry } from "prom-client";
import { ROUTE_STATES, type Route, type RouteState } from "../routing/route.js";
import type { RouteStore, RouteTable } from "../routing/table.js";

export interface NumberStatesOptions {
  registry: Registry;
  store: RouteStore<Route>;
  /** The state of a route at a time (Decider.stateOf). */
  stateOf(route: Route, atMs: number): RouteState;
  now?: () => number;
  /** How often at most the table is walked again, and the dated routes re-evaluated (default 60 s). */
  intervalMs?: number;
  /** How often a swapped-in table is looked for (default 1 s). */
  checkMs?: number;
  /**
   * Value slots per slice of a walk (default 2000): a value of a lazily loaded table is parsed for
   * the count, a few µs each, so a slice stays within a few ms (1M numbers: about 1.5 s of CPU per
   * walk, longest pause about 20 ms; 20 000 a slice paused for over 300 ms).
   */
  slice?: number;
  /** A walk that failed (the last counts stay published). */
  onError?: (err: unknown) => void;
}

type Counts = Record<RouteState, number>;
const zero = (): Counts => Object.fromEntries(ROUTE_STATES.map((s) => [s, 0])) as Counts;

export class NumberStates {
  readonly gauge: Gauge<"state">;
  private readonly now: () => number;
  private readonly intervalMs: number;
  private readonly slice: number;
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  /** The table, and its version, the last complete walk counted. */
  private walked: RouteTable<Route> | undefined;
  private walkedVersion = "";
  private lastWalk = 0;
  private lastPublish = 0;
  /** Numbers of routes without a date, by state: fixed until the table changes. */
  private base: Counts = zero();
  /** Routes with released_at or port_date, each with how many numbers hold it. */
  private dated: Array<[Route, number]> = [];

  constructor(private readonly o: NumberStatesOptions) {
    this.now = o.now ?? Date.now;
    this.intervalMs = o.intervalMs ?? 60_000;
    this.slice = o.slice ?? 2000;
    this.gauge = new Gauge({ name: "didgate_numbers", help: "Numbers (exact route keys) by the state they answer with now: active, porting_out, quarantine, released (released_at, port_date and the quarantine days applied)", labelNames: ["state"], registers: [o.registry], aggregator: "max" });
    for (const s of ROUTE_STATES) this.gauge.set({ state: s }, 0);
  }

  /** Counts the table now in use (awaitable), then keeps the counts current. */
  start(): Promise<void> {
    if (this.timer === undefined) {
      this.timer = setInterval(() => this.check(), this.o.checkMs ?? 1000);
      this.timer.unref();
    }
    return this.refresh();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }

  /** A full walk of the table in use (after the one under way, if any). */
  async refresh(): Promise<void> {
    while (this.running) await this.running;
    // A failed walk must not become an unhandled rejection of the timer's call: it is reported and
    // the next change or interval walks again.
    this.running = this.walk()
      .catch((err: unknown) => this.o.onError?.(err))
      .finally(() => (this.running = undefined));
    return this.running;
  }

  /** What the timer runs: a walk when the table was swapped or changed, else the dated routes re-evaluated once an interval. */
  check(): void {
    if (this.running) return;
    const t = this.o.store.current;
    const now = this.now();
    if (t !== this.walked) void this.refresh();
    else if (now - this.lastWalk >= this.intervalMs && t.version !== this.walkedVersion) void this.refresh();
    else if (now - this.lastPublish >= this.intervalMs) this.publish();
  }

  private async walk(): Promise<void> {
    for (;;) {
      const t = this.o.store.current;
      const version = t.version;
      // Slots held by the default and prefixes: their keys are no numbers.
      const notExact = new Map<number, number>();
      for (const vi of t.prefixSlots()) notExact.set(vi, (notExact.get(vi) ?? 0) + 1);
      const base = zero();
      const dated: Array<[Route, number]> = [];
      const end = t.valueSlotEnd;
      let swapped = false;
      for (let from = 1; from < end; from += this.slice) {
        t.forEachValueSlot(from, from + this.slice, (route, keys, vi) => {
          const n = keys - (notExact.get(vi) ?? 0);
          if (n <= 0) return;
          if (route.releasedAt !== undefined || route.portDate !== undefined) dated.push([route, n]);
          else base[route.state] += n;
        });
        if (from + this.slice < end) {
          await new Promise<void>((r) => setImmediate(r));
          if (this.o.store.current !== t) {
            swapped = true;
            break;
          }
        }
      }
      if (swapped) continue; // count the new table instead
      this.base = base;
      this.dated = dated;
      this.walked = t;
      this.walkedVersion = version;
      this.lastWalk = this.now();
      this.publish();
      return;
    }
  }

  /** The counts at this moment: the fixed ones plus the dated routes evaluated now. */
  counts(): Counts {
    const c = { ...this.base };
    const now = this.now();
    for (const [route, n] of this.dated) c[this.o.stateOf(route, now)] += n;
    return c;
  }

  private publish(): void {
    this.lastPublish = this.now();
    let c: Counts;
    try {
      c = this.counts();
    } catch (err) {
      // check() runs on a timer: a throw there would take the process down
      this.o.onError?.(err);
      return;
    }
    for (const [s, n] of Object.entries(c)) this.gauge.set({ state: s }, n);
  }
}
