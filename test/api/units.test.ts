/** The API's pure parts: the sorted listing against a model, number blocks, tokens, buckets. */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { fingerprint, keyInBlocks, TokenAuth } from "../../src/api/auth.js";
import { records } from "../../src/api/import.js";
import { KeyIndex } from "../../src/api/listing.js";
import { RateLimiter } from "../../src/api/rate.js";
import { parseRoute, type Route } from "../../src/routing/route.js";
import { RouteStore, RouteTable } from "../../src/routing/table.js";

function route(tenant?: string): Route {
  const r = parseRoute("+1", { ...(tenant ? { tenant } : {}), voice: { targets: ["sip:x@h"] } });
  if (!r.ok) throw new Error(r.errors.join());
  return r.route;
}

describe("KeyIndex", () => {
  it("pages through exactly the live keys with the prefix, in order, across sets and deletes between pages", () => {
    const key = fc.oneof(
      fc.constant("*"),
      fc.stringMatching(/^\+1[0-9]{0,4}\*$/),
      fc.stringMatching(/^\+1[0-9]{1,6}$/),
    );
    fc.assert(
      fc.property(
        fc.array(key, { maxLength: 60 }),
        fc.array(fc.tuple(fc.boolean(), key), { maxLength: 30 }),
        fc.constantFrom("", "+1", "+12", "+123"),
        fc.integer({ min: 1, max: 7 }),
        (initial, ops, prefix, limit) => {
          const r = route();
          const store = new RouteStore<Route>(RouteTable.build(initial.map((k) => [k, r] as const)));
          const index = new KeyIndex(store);
          const seen: string[] = [];
          let after: string | undefined;
          let opAt = 0;
          for (let guard = 0; guard < 1000; guard++) {
            const page = index.page(prefix, after, limit, () => true);
            seen.push(...page.items.map(([k]) => k));
            // Changes between pages, told to the index as the change stream would.
            for (let n = 0; n < 3 && opAt < ops.length; n++, opAt++) {
              const [set, k] = ops[opAt]!;
              if (set) store.current.set(k, r);
              else store.current.delete(k);
              index.noteChanged(k);
            }
            if (page.next === undefined) break;
            after = page.next;
          }
          // Strictly increasing: no key twice, in order.
          for (let i = 1; i < seen.length; i++) expect(seen[i - 1]! < seen[i]!).toBe(true);
          for (const k of seen) expect(k.startsWith(prefix)).toBe(true);
          // Every key present from start to end with the prefix was listed.
          const final = new Set(store.current.keys());
          const stable = initial.filter((k) => k.startsWith(prefix) && final.has(k) && !ops.some(([, o]) => o === k));
          for (const k of stable) expect(seen).toContain(k);
        },
      ),
      { numRuns: 300 },
    );
  });

  it("filters by tenant and bounds the keys one page looks at", () => {
    const entries: [string, Route][] = [];
    for (let i = 0; i < 1000; i++) entries.push([`+1512555${String(i).padStart(4, "0")}`, route(i === 900 ? "acme" : "beta")]);
    const index = new KeyIndex(new RouteStore<Route>(RouteTable.build(entries)));
    const first = index.page("+1512", undefined, 10, (r) => r.tenant === "acme", 100);
    expect(first.items).toEqual([]);
    expect(first.next).toBe("+15125550099");
    let next = first.next;
    let found: string[] = [];
    while (next !== undefined) {
      const p = index.page("+1512", next, 10, (r) => r.tenant === "acme", 100);
      found = found.concat(p.items.map(([k]) => k));
      next = p.next;
    }
    expect(found).toEqual(["+15125550900"]);
  });
});

describe("tokens and blocks", () => {
  it("matches keys inside blocks only", () => {
    const blocks = ["+1512555*", "+14155550100"];
    expect(keyInBlocks("+15125550100", blocks)).toBe(true);
    expect(keyInBlocks("+1512555*", blocks)).toBe(true);
    expect(keyInBlocks("+15125551*", blocks)).toBe(true);
    expect(keyInBlocks("+1512*", blocks)).toBe(false);
    expect(keyInBlocks("+15125460100", blocks)).toBe(false);
    expect(keyInBlocks("+14155550100", blocks)).toBe(true);
    expect(keyInBlocks("+14155550101", blocks)).toBe(false);
    expect(keyInBlocks("+14155550100*", blocks)).toBe(false);
    expect(keyInBlocks("*", blocks)).toBe(false);
  });

  it("authenticates configured bearer tokens only, with tenant blocks merged", () => {
    const auth = new TokenAuth([{ token: "a".repeat(20) }, { token: "b".repeat(20), tenant: "acme", blocks: ["+1512*"] }], { acme: ["+1737*"] });
    const admin = auth.authenticate(`Bearer ${"a".repeat(20)}`);
    expect(admin.ok && admin.principal.who).toBe("admin");
    const acme = auth.authenticate(`bearer  ${"b".repeat(20)}`);
    expect(acme.ok && acme.principal.blocks).toEqual(["+1512*", "+1737*"]);
    expect(acme.ok && acme.principal.fingerprint).toBe(fingerprint("b".repeat(20)));
    expect(auth.authenticate(undefined)).toEqual({ ok: false, reason: "missing" });
    expect(auth.authenticate("Basic abc")).toEqual({ ok: false, reason: "malformed" });
    expect(auth.authenticate(`Bearer ${"a".repeat(19)}`)).toEqual({ ok: false, reason: "unknown" });
    expect(fingerprint("a".repeat(20))).not.toContain("a".repeat(4));
  });

  it("refills a bucket at its rate and says how long to wait", () => {
    let t = 0;
    const rl = new RateLimiter(2, 3, () => t);
    expect([rl.take("k"), rl.take("k"), rl.take("k")]).toEqual([0, 0, 0]);
    expect(rl.take("k")).toBe(1);
    t += 500;
    expect(rl.take("k")).toBe(0);
    expect(rl.take("other")).toBe(0);
  });
});

describe("api config", () => {
  it("is off by default and validates tokens and blocks", async () => {
    const { validateConfig } = await import("../../src/config/load.js");
    const off = validateConfig({});
    expect(off.ok && off.config.api.listen).toBe(null);
    const good = validateConfig({ api: { listen: "127.0.0.1:8080", tokens: [{ token: "x".repeat(16) }, { token: "y".repeat(16), tenant: "acme", blocks: ["+1512555*"] }] } });
    expect(good.ok).toBe(true);
    const bad = validateConfig({ api: { listen: "nope", tokens: [{ token: "short" }, { token: "z".repeat(16), blocks: ["+1*"] }, { token: "y".repeat(16), tenant: "a", blocks: ["1512*"] }, { token: "y".repeat(16), tenant: "b" }] } });
    expect(bad.ok).toBe(false);
    const text = bad.ok ? "" : bad.errors.join("\n");
    for (const path of ["api.listen", "api.tokens[0].token", "api.tokens[1].blocks", "api.tokens[2].blocks[0]", "api.tokens[3].token: got \"[redacted]\"; duplicate"]) expect(text).toContain(path);
  });
});

describe("import records", () => {
  async function collect(chunks: string[], csv: boolean) {
    const out: { line: number; text: string }[] = [];
    async function* gen() {
      for (const c of chunks) yield Buffer.from(c, "utf8");
    }
    for await (const r of records(gen(), csv)) out.push(r);
    return out;
  }

  it("cuts the same records with their line numbers however the body is chunked (CSV quotes span lines)", async () => {
    const text = 'key,json\r\n+1,"{""a"":\n1}"\n\n+2,x\r\n"+3","é,\r\nz"\n+4,y';
    const whole = await collect([text], true);
    expect(whole).toEqual([
      { line: 1, text: "key,json" },
      { line: 2, text: '+1,"{""a"":\n1}"' },
      { line: 4, text: "" },
      { line: 5, text: "+2,x" },
      { line: 6, text: '"+3","é,\r\nz"' },
      { line: 8, text: "+4,y" },
    ]);
    await fc.assert(
      fc.asyncProperty(fc.array(fc.integer({ min: 0, max: text.length }), { maxLength: 6 }), async (cuts) => {
        const bytes = Buffer.from(text, "utf8");
        const at = [...new Set(cuts.map((c) => Math.min(c, bytes.length)))].sort((x, y) => x - y);
        const chunks: Buffer[] = [];
        let prev = 0;
        for (const c of [...at, bytes.length]) {
          chunks.push(bytes.subarray(prev, c));
          prev = c;
        }
        const out: { line: number; text: string }[] = [];
        async function* gen() {
          for (const c of chunks) yield c;
        }
        for await (const r of records(gen(), true)) out.push(r);
        expect(out).toEqual(whole);
      }),
    );
    const nd = await collect(['{"a":1}\r\n{"b"', ':2}\n\n{"c":3}'], false);
    expect(nd).toEqual([
      { line: 1, text: '{"a":1}' },
      { line: 2, text: '{"b":2}' },
      { line: 3, text: "" },
      { line: 4, text: '{"c":3}' },
    ]);
  });
});
