import { describe, expect, it } from "vitest";
import fc from "fast-check";
import { EntryColumns, parseRouteKey, routeKeyOf, RouteStore, RouteTable } from "../../src/routing/table.js";

type R = { name: string };
const r = (name: string): R => ({ name });

/** Brute-force reference: exact key, else the longest prefix, else the default. */
function refLookup(ref: Map<string, R>, number: string): { key: string; value: R } | undefined {
  const digits = number.startsWith("+") ? number.slice(1) : number;
  if (digits.length < 1 || digits.length > 15 || !/^[0-9]+$/.test(digits)) return undefined;
  const exact = ref.get("+" + digits);
  if (exact) return { key: "+" + digits, value: exact };
  for (let l = digits.length; l >= 1; l--) {
    const k = "+" + digits.slice(0, l) + "*";
    const v = ref.get(k);
    if (v) return { key: k, value: v };
  }
  const def = ref.get("*");
  return def ? { key: "*", value: def } : undefined;
}

function expectLookup(t: RouteTable<R>, number: string, key: string | undefined, value?: R): void {
  const got = t.lookup(number);
  if (key === undefined) {
    expect(got).toBeUndefined();
    expect(t.match.kind).toBe(0);
    expect(t.matchedKey()).toBe("");
    return;
  }
  expect(got).toBe(value);
  expect(t.matchedKey()).toBe(key);
  const kind = key === "*" ? 3 : key.endsWith("*") ? 2 : 1;
  expect(t.match.kind).toBe(kind);
  expect(t.match.length).toBe(key === "*" ? 0 : key.replace(/[+*]/g, "").length);
}

describe("parseRouteKey", () => {
  it("accepts the three key forms", () => {
    expect(parseRouteKey("+15125550100")).toEqual({ kind: "exact", digits: "15125550100" });
    expect(parseRouteKey("+1512555*")).toEqual({ kind: "prefix", digits: "1512555" });
    expect(parseRouteKey("*")).toEqual({ kind: "default", digits: "" });
    expect(parseRouteKey("+1")).toEqual({ kind: "exact", digits: "1" });
    expect(parseRouteKey("+123456789012345")).toEqual({ kind: "exact", digits: "123456789012345" });
    expect(parseRouteKey("+123456789012345*")).toEqual({ kind: "prefix", digits: "123456789012345" });
  });

  it.each([
    ["", /empty/],
    ["+", /no digits/],
    ["+*", /no digits/],
    ["15125550100", /must be/],
    ["+1234567890123456", /16 digits/],
    ["+1 512", /invalid character " "/],
    ["+15a", /invalid character "a"/],
    ["+1**", /invalid character "\*"/],
    ["**", /must be/],
    ["+1*2", /invalid character "\*"/],
    ["+１２", /invalid character/],
  ])("rejects %j", (key, why) => {
    const p = parseRouteKey(key);
    expect("error" in p).toBe(true);
    expect((p as { error: string }).error).toMatch(why);
  });

  it("never throws and round-trips with routeKeyOf (property)", () => {
    fc.assert(
      fc.property(fc.string({ maxLength: 20 }), (s) => {
        const p = parseRouteKey(s);
        if (!("error" in p)) expect(routeKeyOf(p.kind, p.digits)).toBe(s);
      }),
    );
    fc.assert(
      fc.property(fc.string({ unit: fc.constantFrom("0", "1", "9"), minLength: 1, maxLength: 15 }), (d) => {
        expect(parseRouteKey("+" + d)).toEqual({ kind: "exact", digits: d });
        expect(parseRouteKey("+" + d + "*")).toEqual({ kind: "prefix", digits: d });
      }),
    );
  });
});

describe("RouteTable lookup", () => {
  const A = r("A"), B = r("B"), C = r("C"), D = r("D"), E = r("E"), DEF = r("default");

  it("exact beats every prefix, the longest prefix wins, the default catches the rest", () => {
    const t = RouteTable.build<R>([
      ["+1*", A],
      ["+1512*", B],
      ["+1512555*", C],
      ["+15125550100", D],
      ["*", DEF],
    ]);
    expectLookup(t, "+15125550100", "+15125550100", D);
    expectLookup(t, "15125550100", "+15125550100", D); // bare digits
    expectLookup(t, "+15125550101", "+1512555*", C);
    expectLookup(t, "+1512555", "+1512555*", C); // number equal to the prefix
    expectLookup(t, "+15125560100", "+1512*", B);
    expectLookup(t, "+12125550100", "+1*", A);
    expectLookup(t, "+1", "+1*", A);
    expectLookup(t, "+442071234567", "*", DEF);
    expectLookup(t, "+151255501001", "+1512555*", C); // longer than the exact key
    expectLookup(t, "+1512555010", "+1512555*", C); // shorter than the exact key
  });

  it("invalid numbers match nothing, not even the default", () => {
    const t = RouteTable.build<R>([["*", DEF], ["+1*", A]]);
    for (const bad of ["", "+", "+1234567890123456", "+1a", "1 2", "++1", "+1*", "١٢"]) expectLookup(t, bad, undefined);
    expectLookup(t, "+123456789012345", "+1*", A);
  });

  it("an empty table matches nothing", () => {
    const t = new RouteTable<R>();
    expectLookup(t, "+15125550100", undefined);
    expect(t.size).toBe(0);
    expect([...t.entries()]).toEqual([]);
  });

  it("handles 1-digit and 15-digit keys and keys of different lengths sharing digits", () => {
    const t = new RouteTable<R>();
    t.set("+1", A);
    t.set("+12", B);
    t.set("+012", C);
    t.set("+123456789012345", D);
    t.set("+12345678901234", E);
    t.set("+9*", DEF);
    t.set("+999999999999999*", C);
    expectLookup(t, "+1", "+1", A);
    expectLookup(t, "+12", "+12", B);
    expectLookup(t, "+012", "+012", C);
    expectLookup(t, "+0012", undefined);
    expectLookup(t, "+123", undefined);
    expectLookup(t, "+123456789012345", "+123456789012345", D);
    expectLookup(t, "+12345678901234", "+12345678901234", E);
    expectLookup(t, "+1234567890123", undefined);
    expectLookup(t, "+999999999999999", "+999999999999999*", C);
    expectLookup(t, "+99999999999999", "+9*", DEF);
    expect(t.get("+012")).toBe(C);
    expect(t.get("+12")).toBe(B);
    expect(t.get("+0012")).toBeUndefined();
    expect(new Set(t.keys())).toEqual(
      new Set(["+1", "+12", "+012", "+123456789012345", "+12345678901234", "+9*", "+999999999999999*"]),
    );
  });

  it("deletes expose a shorter prefix, then the default, then nothing", () => {
    const t = RouteTable.build<R>([
      ["+4420*", A],
      ["+44207*", B],
      ["+442071234567", C],
      ["*", DEF],
    ]);
    expectLookup(t, "+442071234567", "+442071234567", C);
    expect(t.delete("+442071234567")).toBe(true);
    expect(t.delete("+442071234567")).toBe(false);
    expectLookup(t, "+442071234567", "+44207*", B);
    expect(t.delete("+44207*")).toBe(true);
    expectLookup(t, "+442071234567", "+4420*", A);
    expect(t.delete("+4420*")).toBe(true);
    expectLookup(t, "+442071234567", "*", DEF);
    expect(t.delete("*")).toBe(true);
    expectLookup(t, "+442071234567", undefined);
    expect(t.size).toBe(0);
    expect(t.delete("+44*")).toBe(false);
    expect(t.delete("garbage")).toBe(false);
  });

  it("a deleted prefix does not hide a deeper one and an exact delete keeps neighbours", () => {
    const t = RouteTable.build<R>([
      ["+1*", A],
      ["+151*", B],
      ["+15125550100", C],
      ["+15125550101", D],
    ]);
    t.delete("+1*");
    expectLookup(t, "+15129999999", "+151*", B);
    expectLookup(t, "+12", undefined);
    t.delete("+15125550100");
    expectLookup(t, "+15125550101", "+15125550101", D);
    expectLookup(t, "+15125550100", "+151*", B);
  });

  it("get/has read one key without longest-prefix match; set replaces", () => {
    const t = new RouteTable<R>();
    t.set("+1512*", A);
    expect(t.get("+1512*")).toBe(A);
    expect(t.get("+15125*")).toBeUndefined();
    expect(t.get("+1512")).toBeUndefined();
    expect(t.get("*")).toBeUndefined();
    expect(t.get("bogus")).toBeUndefined();
    expect(t.has("+1512*")).toBe(true);
    t.set("+1512*", B);
    expect(t.get("+1512*")).toBe(B);
    expect(t.counts()).toEqual({ exact: 0, prefix: 1, default: 0 });
  });

  it("set and build throw a RangeError naming the bad key", () => {
    const t = new RouteTable<R>();
    expect(() => t.set("+12x4", A)).toThrow(/invalid route key "\+12x4": invalid character "x"/);
    expect(() => RouteTable.build<R>([["+1", A], ["1512", B]])).toThrow(RangeError);
    expect(() => RouteTable.build<R>([["+1", A], ["1512", B]])).toThrow(/"1512"/);
    expect(t.size).toBe(0);
  });

  it("counts, size, version and entries", () => {
    const t = RouteTable.build<R>([
      ["+15125550100", A],
      ["+15125550199", A],
      ["+15125550200", B],
      ["+1*", C],
      ["+44*", C],
      ["*", DEF],
    ]);
    t.version = "1700000000000-0";
    expect(t.size).toBe(6);
    expect(t.counts()).toEqual({ exact: 3, prefix: 2, default: 1 });
    const entries = [...t.entries()];
    expect(entries[0]).toEqual(["*", DEF]);
    expect(new Map(entries)).toEqual(
      new Map<string, R>([
        ["+15125550100", A],
        ["+15125550199", A],
        ["+15125550200", B],
        ["+1*", C],
        ["+44*", C],
        ["*", DEF],
      ]),
    );
    expect(entries.length).toBe(6);
    expect(t.version).toBe("1700000000000-0");
  });

  it("lookup allocates nothing and reuses the match object", () => {
    const t = RouteTable.build<R>([["+1*", A], ["+15125550100", B]]);
    const m = t.match;
    t.lookup("+15125550100");
    expect(t.match).toBe(m);
    expect(m).toEqual({ kind: 1, length: 11 });
    t.lookup("+1999");
    expect(m).toEqual({ kind: 2, length: 1 });
  });
});

describe("RouteTable values", () => {
  it("interns shared values and frees them when the last key goes", () => {
    const A = r("A"), B = r("B");
    const t = new RouteTable<R>();
    for (let i = 0; i < 250; i++) t.set("+1512555" + String(i).padStart(4, "0"), A);
    t.set("+1*", A);
    t.set("*", B);
    expect(t.distinctValues).toBe(2);
    t.set("*", A);
    expect(t.distinctValues).toBe(1); // B no longer referenced
    for (let i = 0; i < 250; i++) t.delete("+1512555" + String(i).padStart(4, "0"));
    expect(t.distinctValues).toBe(1);
    t.delete("+1*");
    t.delete("*");
    expect(t.distinctValues).toBe(0);
    expect(t.size).toBe(0);
  });

  it("does not leak value slots under churn with fresh objects", () => {
    const t = new RouteTable<R>();
    for (let round = 0; round < 50; round++) {
      for (let i = 0; i < 100; i++) t.set("+4930" + i, r(`v${round}/${i}`));
    }
    expect(t.distinctValues).toBe(100);
    const bytes = t.byteLength;
    for (let round = 0; round < 50; round++) {
      for (let i = 0; i < 100; i++) t.set("+4930" + i, r(`w${round}/${i}`));
    }
    expect(t.byteLength).toBe(bytes);
    expect(t.distinctValues).toBe(100);
  });

  it("duplicate keys in build keep the last value and release the first", () => {
    const A = r("A"), B = r("B");
    const t = RouteTable.build<R>([["+1", A], ["+1", B], ["+2*", A], ["+2*", B]]);
    expect(t.get("+1")).toBe(B);
    expect(t.get("+2*")).toBe(B);
    expect(t.distinctValues).toBe(1);
    expect(t.size).toBe(2);
  });
});

describe("RouteTable.fromStateLazy", () => {
  it("makes each value once, on the first lookup that reaches it, and then behaves like any table", () => {
    const cols = new EntryColumns<number>();
    cols.push("+15125550100", 0);
    cols.push("+15125550101", 1);
    cols.push("+1512*", 2);
    cols.push("+1512555*", 2);
    cols.push("*", 3);
    cols.push("+15125550100", 4); // a duplicate key frees the first value's slot
    const state = RouteTable.build(cols).exportState((id) => id);
    const made: number[] = [];
    const t = RouteTable.fromStateLazy<R>(state, (id) => {
      made.push(id);
      return r(`v${id}`);
    });
    expect(made).toEqual([]);
    expect(t.size).toBe(5);
    expect(t.lookup("+15125550100")?.name).toBe("v4");
    expect(t.lookup("+15125550199")?.name).toBe("v2");
    expect(t.lookup("+15129990000")?.name).toBe("v2");
    expect(t.lookup("+15125550100")?.name).toBe("v4");
    expect(made).toEqual([4, 2]);
    expect(t.lookup("+15125550100")).toBe(t.get("+15125550100"));
    expect(t.get("+15125550101")?.name).toBe("v1");
    expect(t.lookup("+4930")?.name).toBe("v3");
    expect(made).toEqual([4, 2, 1, 3]);
    expect(new Map(t.entries()).get("+1512555*")?.name).toBe("v2");
    t.set("+15125550101", r("new"));
    t.delete("+1512555*");
    expect(t.lookup("+15125550101")?.name).toBe("new");
    expect(t.lookup("+15125550177")?.name).toBe("v2");
    expect(t.distinctValues).toBe(4);
    expect(made).toEqual([4, 2, 1, 3]);
  });
});

describe("RouteStore", () => {
  it("swaps whole tables and returns the old one", () => {
    const a = RouteTable.build<R>([["*", r("a")]]);
    const b = RouteTable.build<R>([["*", r("b")]]);
    const store = new RouteStore(a);
    expect(store.current.lookup("+1")?.name).toBe("a");
    expect(store.swap(b)).toBe(a);
    expect(store.current.lookup("+1")?.name).toBe("b");
    const empty = new RouteStore<R>();
    expect(empty.current.size).toBe(0);
  });
});

// ---- property tests against a brute-force reference ----

const small = (maxLen: number) =>
  fc.string({ unit: fc.constantFrom("1", "2", "3"), minLength: 1, maxLength: maxLen });
const keyArb = fc.oneof(
  small(7).map((d) => "+" + d),
  small(6).map((d) => "+" + d + "*"),
  fc.constant("*"),
  // long keys still collide: 13-15 digits that share a page
  fc.tuple(fc.constantFrom("1231231231231", "123123123123"), fc.string({ unit: fc.constantFrom("1", "2"), maxLength: 2 }))
    .map(([a, b]) => "+" + a + b),
);
const numberArb = fc.oneof(
  small(8),
  small(8).map((d) => "+" + d),
  fc.tuple(fc.constantFrom("+1231231231231", "+123123123123"), fc.string({ unit: fc.constantFrom("1", "2"), maxLength: 2 }))
    .map(([a, b]) => a + b),
);
const values = [r("v0"), r("v1"), r("v2"), r("v3")];
const opArb = fc.oneof(
  fc.tuple(fc.constant("set" as const), keyArb, fc.nat(values.length - 1)),
  fc.tuple(fc.constant("del" as const), keyArb, fc.constant(0)),
);

function checkAgainst(t: RouteTable<R>, ref: Map<string, R>, queries: string[], exactDistinct = true): void {
  expect(t.size).toBe(ref.size);
  for (const q of queries) {
    const want = refLookup(ref, q);
    const got = t.lookup(q);
    expect(got).toBe(want?.value);
    expect(t.matchedKey()).toBe(want?.key ?? "");
  }
  for (const [k, v] of ref) expect(t.get(k)).toBe(v);
  expect(new Map(t.entries())).toEqual(ref);
  // a used-once value set again under another key may hold a second slot (RouteTable.addUnindexed)
  if (exactDistinct) expect(t.distinctValues).toBe(new Set(ref.values()).size);
  else expect(t.distinctValues).toBeGreaterThanOrEqual(new Set(ref.values()).size);
  const c = t.counts();
  expect(c.default).toBe(ref.has("*") ? 1 : 0);
  expect(c.exact).toBe([...ref.keys()].filter((k) => k !== "*" && !k.endsWith("*")).length);
}

describe("RouteTable with more than 65535 distinct values", () => {
  it("routes every key right when value indexes outgrow 16 bits, by set() and by build()", () => {
    const n = 70_000;
    const vals = Array.from({ length: n }, (_, i) => ({ name: "r" + i }));
    const key = (i: number) => "+4420" + String(7_000_000 + i * 13).padStart(8, "0");
    const t = new RouteTable<R>();
    for (let i = 0; i < n; i++) t.set(key(i), vals[i]!);
    const b = RouteTable.build<R>(vals.map((v, i) => [key(i), v] as const));
    for (const tab of [t, b]) {
      expect(tab.distinctValues).toBe(n);
      for (let i = 0; i < n; i += 997) expect(tab.lookup(key(i))).toBe(vals[i]);
      expect(tab.lookup(key(n - 1))).toBe(vals[n - 1]);
      expect(tab.lookup(key(0))).toBe(vals[0]);
    }
  });
});

describe("RouteTable properties", () => {
  it("build matches the reference on random tables", () => {
    fc.assert(
      fc.property(
        fc.array(fc.tuple(keyArb, fc.nat(values.length - 1)), { maxLength: 60 }),
        fc.array(numberArb, { maxLength: 40 }),
        (pairs, queries) => {
          const entries = pairs.map(([k, v]) => [k, values[v]] as const);
          const t = RouteTable.build<R>(entries);
          checkAgainst(t, new Map(entries), queries);
        },
      ),
      { numRuns: 400 },
    );
  });

  it("interleaved set/delete matches the reference and a fresh build", () => {
    fc.assert(
      fc.property(
        fc.array(fc.tuple(keyArb, fc.nat(values.length - 1)), { maxLength: 30 }),
        fc.array(opArb, { maxLength: 80 }),
        fc.array(numberArb, { maxLength: 30 }),
        (initial, ops, queries) => {
          const entries = initial.map(([k, v]) => [k, values[v]] as const);
          const t = RouteTable.build<R>(entries);
          const ref = new Map<string, R>(entries);
          for (const [op, key, v] of ops) {
            if (op === "set") {
              t.set(key, values[v]);
              ref.set(key, values[v]);
            } else {
              expect(t.delete(key)).toBe(ref.delete(key));
            }
            // every change is complete when it returns (lookups cache per number block: query
            // the same numbers between changes)
            for (const q of [key === "*" ? "+1" : key.replace("*", ""), ...queries]) {
              expect(t.lookup(q)).toBe(refLookup(ref, q)?.value);
              expect(t.matchedKey()).toBe(refLookup(ref, q)?.key ?? "");
            }
          }
          checkAgainst(t, ref, queries);
          checkAgainst(RouteTable.build<R>(t.entries()), ref, queries);
        },
      ),
      { numRuns: 300 },
    );
  });

  it("a build whose tail is marked used-once (EntryColumns.uniqueFrom) behaves like any other under set/delete", () => {
    fc.assert(
      fc.property(
        fc.array(fc.tuple(keyArb, fc.nat(values.length - 1)), { maxLength: 30 }),
        fc.array(keyArb, { maxLength: 30 }),
        fc.array(opArb, { maxLength: 60 }),
        fc.array(numberArb, { maxLength: 20 }),
        (shared, uniqueKeys, ops, queries) => {
          const cols = new EntryColumns<R>();
          const ref = new Map<string, R>();
          for (const [k, v] of shared) {
            cols.push(k, values[v]!);
            ref.set(k, values[v]!);
          }
          cols.uniqueFrom = cols.length;
          const fresh: R[] = [];
          for (const k of uniqueKeys) {
            const r: R = { name: "u" + fresh.length };
            fresh.push(r);
            cols.push(k, r);
            ref.set(k, r);
          }
          const t = RouteTable.build<R>(cols);
          checkAgainst(t, ref, queries, cols.length === new Set(cols.keys).size);
          for (const [op, key, v] of ops) {
            // sets reuse both the shared values and the used-once ones
            const val = v % 2 === 0 || fresh.length === 0 ? values[v]! : fresh[v % fresh.length]!;
            if (op === "set") {
              t.set(key, val);
              ref.set(key, val);
            } else expect(t.delete(key)).toBe(ref.delete(key));
          }
          checkAgainst(t, ref, queries, false);
          // slots are freed: deleting everything leaves no value referenced
          for (const k of [...ref.keys()]) t.delete(k);
          expect(t.size).toBe(0);
          expect(t.distinctValues).toBe(0);
        },
      ),
      { numRuns: 300 },
    );
  });

  it("a bulk build and the same entries set one by one give the same table", () => {
    fc.assert(
      fc.property(fc.array(fc.tuple(keyArb, fc.nat(values.length - 1)), { maxLength: 60 }), fc.array(numberArb, { maxLength: 30 }), (pairs, queries) => {
        const entries = pairs.map(([k, v]) => [k, values[v]] as const);
        const built = RouteTable.build<R>(entries);
        const inc = new RouteTable<R>();
        for (const [k, v] of entries) inc.set(k, v);
        expect(new Map(inc.entries())).toEqual(new Map(built.entries()));
        expect(inc.counts()).toEqual(built.counts());
        expect(inc.distinctValues).toBe(built.distinctValues);
        for (const q of queries) {
          expect(inc.lookup(q)).toBe(built.lookup(q));
          expect(inc.matchedKey()).toBe(built.matchedKey());
        }
      }),
      { numRuns: 200 },
    );
  });

  it("random wide tables (all digits, lengths 1-15) match the reference", () => {
    const anyDigits = fc.string({ unit: fc.constantFrom(..."0123456789"), minLength: 1, maxLength: 15 });
    fc.assert(
      fc.property(
        fc.array(fc.tuple(fc.oneof(anyDigits.map((d) => "+" + d), anyDigits.map((d) => "+" + d.slice(0, 6) + "*")), fc.nat(3)), {
          maxLength: 40,
        }),
        fc.array(anyDigits, { maxLength: 20 }),
        (pairs, qs) => {
          const entries = pairs.map(([k, v]) => [k, values[v]] as const);
          const t = RouteTable.build<R>(entries);
          // query the keys themselves, their neighbours and random numbers
          const queries = [...qs, ...entries.map(([k]) => k.replace("*", "") + "5")];
          for (const [k] of entries) queries.push(k.replace("*", ""));
          checkAgainst(t, new Map(entries), queries);
        },
      ),
      { numRuns: 300 },
    );
  });
});
