/**
 * NumberStates (didgate_numbers{state}) on real route tables: numbers sharing a route object and a
 * prefix holding the same object are counted right across slice boundaries, a table swapped in
 * during a walk is the one counted, an in-place change is counted once the interval has passed
 * (not before), and a walk over a lazily built table leaves its values unmade.
 */
import { Registry } from "prom-client";
import { describe, expect, it } from "vitest";
import { Decider } from "../../src/routing/decide.js";
import { parseRoute, type Route } from "../../src/routing/route.js";
import { RouteStore, RouteTable } from "../../src/routing/table.js";
import { NumberStates } from "../../src/records/number-states.js";

const DAY = 86_400_000;
const T0 = Date.parse("2026-06-01T00:00:00Z");

function route(v: Record<string, unknown>): Route {
  const r = parseRoute("+15125550100", v);
  if (!r.ok) throw new Error(r.errors.join("; "));
  return r.route;
}

const decider = new Decider({ quarantineDays: 90 });

function make(store: RouteStore<Route>, clock: { now: number }, slice = 7): NumberStates {
  return new NumberStates({ registry: new Registry(), store, stateOf: (r, t) => decider.stateOf(r, t), now: () => clock.now, slice, intervalMs: 60_000 });
}

/** 100 active numbers on one shared object (also held by a prefix and the default), 30 porting out, 20 released 10 days ago, 5 released 100 days ago. */
function table(): RouteTable<Route> {
  const shared = route({ voice: { targets: ["sip:a@h"] } });
  const porting = route({ state: "porting_out", port_date: new Date(T0 + 5 * DAY).toISOString() });
  const e: Array<[string, Route]> = [["*", shared], ["+1512*", shared]];
  for (let i = 0; i < 100; i++) e.push([`+1512555${String(1000 + i)}`, shared]);
  for (let i = 0; i < 30; i++) e.push([`+1512556${String(1000 + i)}`, porting]);
  // distinct objects, one per number (as a loader builds them): many slots, several slices
  for (let i = 0; i < 20; i++) e.push([`+1512557${String(1000 + i)}`, route({ released_at: new Date(T0 - 10 * DAY).toISOString() })]);
  for (let i = 0; i < 5; i++) e.push([`+1512558${String(1000 + i)}`, route({ released_at: new Date(T0 - 100 * DAY).toISOString() })]);
  return RouteTable.build(e);
}

async function gauge(n: NumberStates): Promise<Record<string, number>> {
  const m = await n.gauge.get();
  return Object.fromEntries(m.values.map((v) => [String(v.labels.state), v.value]));
}

describe("didgate_numbers", () => {
  it("counts exact numbers by state (shared objects, prefixes left out) across slices, and by time", async () => {
    const clock = { now: T0 };
    const store = new RouteStore(table());
    const n = make(store, clock);
    await n.refresh();
    expect(await gauge(n)).toEqual({ active: 100, porting_out: 30, quarantine: 20, released: 5 });
    clock.now = T0 + 6 * DAY; // past the port date
    n.check();
    expect(await gauge(n)).toEqual({ active: 100, porting_out: 0, quarantine: 20, released: 35 });
    clock.now = T0 + 81 * DAY; // the quarantine of the 20 ends
    n.check();
    expect(await gauge(n)).toEqual({ active: 100, porting_out: 0, quarantine: 0, released: 55 });
  });

  it("a table swapped in during a walk is the one counted", async () => {
    const clock = { now: T0 };
    const store = new RouteStore(table());
    const n = make(store, clock, 3);
    const walking = n.refresh(); // the first slice ran; the rest wait for the event loop
    store.swap(RouteTable.build<Route>([["+15125559999", route({ state: "quarantine" })]]));
    await walking;
    expect(await gauge(n)).toEqual({ active: 0, porting_out: 0, quarantine: 1, released: 0 });
  });

  it("an in-place change (a delta, new version) is walked once the interval has passed, not on every check", async () => {
    const clock = { now: T0 };
    const t = table();
    t.version = "1";
    const store = new RouteStore(t);
    // one slice holds the whole table: a walk check() starts completes before check() returns
    const n = make(store, clock, 100_000);
    await n.refresh();
    t.set("+15125559997", route({ state: "porting_out" }));
    t.version = "2";
    n.check();
    expect((await gauge(n)).porting_out).toBe(30);
    clock.now += 59_999;
    n.check();
    expect((await gauge(n)).porting_out).toBe(30);
    clock.now += 1;
    n.check();
    expect((await gauge(n)).porting_out).toBe(31);
  });

  it("a failed walk is reported, not thrown, and the last counts stay", async () => {
    const clock = { now: T0 };
    const store = new RouteStore(table());
    let fail = false;
    const errors: unknown[] = [];
    const n = new NumberStates({ registry: new Registry(), store, stateOf: (r, t) => {
      if (fail) throw new Error("boom");
      return decider.stateOf(r, t);
    }, now: () => clock.now, onError: (e) => errors.push(e) });
    await n.refresh();
    fail = true;
    await n.refresh();
    expect(errors.map((e) => (e as Error).message)).toEqual(["boom"]);
    expect(await gauge(n)).toEqual({ active: 100, porting_out: 30, quarantine: 20, released: 5 });
    // the timer's path (dated routes re-evaluated) reports too, rather than throwing
    clock.now += 60_000;
    expect(() => n.check()).not.toThrow();
    expect(errors.length).toBe(2);
    expect(await gauge(n)).toEqual({ active: 100, porting_out: 30, quarantine: 20, released: 5 });
  });

  it("a walk over a lazily built table makes each value for the count only", async () => {
    const clock = { now: T0 };
    const src = table();
    const objects: Route[] = [];
    const state = src.exportState((v) => {
      let i = objects.indexOf(v);
      if (i < 0) i = objects.push(v) - 1;
      return i;
    });
    let made = 0;
    const lazy = RouteTable.fromStateLazy<Route>(state, (id) => {
      made++;
      return { ...objects[id]! };
    });
    const n = make(new RouteStore(lazy), clock);
    await n.refresh();
    expect(await gauge(n)).toEqual({ active: 100, porting_out: 30, quarantine: 20, released: 5 });
    const first = made;
    expect(first).toBe(objects.length);
    await n.refresh();
    // made again: the first walk kept none of them in the table
    expect(made).toBe(2 * first);
    // a lookup still makes and keeps its value as before
    lazy.lookup("+15125551000");
    lazy.lookup("+15125551000");
    expect(made).toBe(2 * first + 1);
  });
});
