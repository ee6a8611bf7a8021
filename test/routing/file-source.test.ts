/**
 * The route file source at modest size: every format loads (in the worker thread and on the main
 * thread) to the table the reference parsers give, the YAML entry reader agrees with the `yaml`
 * package, a broken file keeps the last table and names the line and column.
 */
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import fc from "fast-check";
import { pino } from "pino";
import { Registry } from "prom-client";
import YAML from "yaml";
import { afterEach, describe, expect, it } from "vitest";
import { RouteMetrics } from "../../src/routing/metrics.js";
import type { OutboundEntry } from "../../src/routing/outbound.js";
import type { Route } from "../../src/routing/route.js";
import { parseRouteDocument } from "../../src/routing/sources/document.js";
import { FileRouteSource, fileWorkerPath, loadRouteFile } from "../../src/routing/sources/file.js";
import { parseYamlWhole, scanYamlEntries } from "../../src/routing/sources/yaml-fast.js";
import { RouteStore, RouteTable } from "../../src/routing/table.js";
import { tempDir } from "../helpers/app.js";

const sources: FileRouteSource[] = [];
afterEach(() => {
  for (const s of sources.splice(0)) s.close();
});

/** Varied entries: plain, weighted targets, SMS only (repeated: shared), states, schedules. */
function entryFor(i: number): Record<string, unknown> {
  switch (i % 6) {
    case 0:
      return { voice: { targets: [`sip:+1512555${i}@10.0.${(i >> 8) & 255}.${i & 255}:5060`] } };
    case 1:
      return { tenant: `t${i % 7}`, voice: { targets: [{ uri: `sip:a${i}@h.example`, priority: 2, weight: 50 }, "sip:b@h.example"], failover_on: [486, 503], ring_timeout_s: 20 } };
    case 2:
      return { sms: { webhook: `https://app.example.com/sms/${i % 3}` } };
    case 3:
      return { state: "quarantine" };
    case 4:
      return {
        voice: {
          targets: ["sip:x@h"],
          schedule: [{ days: ["mon", "tue"], from: "09:00", to: "17:00", tz: "America/Chicago", targets: ["sip:day@h"] }],
          callers: [{ match: "+44*", targets: ["sip:uk@h"] }],
        },
        sms: { smpp: "smsc-a" },
      };
    default:
      return { tenant: "acme", state: "porting_out", voice: { targets: [`sips:${i}@h;transport=tls`] } };
  }
}

function keyFor(i: number): string {
  if (i % 50 === 7) return `+4420${i}*`;
  return `+1512${String(i).padStart(7, "0")}`;
}

function routesOf(n: number): Record<string, Record<string, unknown>> {
  const routes: Record<string, Record<string, unknown>> = { "*": { state: "released" } };
  for (let i = 0; i < n; i++) routes[keyFor(i)] = entryFor(i);
  return routes;
}

function sourcesOf(t: RouteTable<Route>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, r] of t.entries()) out[k] = r.source;
  return out;
}

async function loadWithWorker(path: string, store = new RouteStore<Route>(RouteTable.build<Route>([]))): Promise<{ source: FileRouteSource; store: RouteStore<Route> }> {
  const source = new FileRouteSource({ path, watch: false, store, logger: pino({ level: "silent" }), metrics: new RouteMetrics(new Registry()) });
  sources.push(source);
  const r = await source.load();
  if (!r.ok) throw new Error(r.errors.join("\n"));
  return { source, store };
}

function csvField(s: string): string {
  return /[",\r\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
}

describe("route file formats (10k entries)", () => {
  const N = 10_000;
  const routes = routesOf(N);

  it("the compiled worker exists (npm run build)", () => {
    expect(fileWorkerPath()).toBeDefined();
  });

  for (const [name, text, ext] of [
    ["YAML, block style", () => YAML.stringify({ routes }), "yaml"],
    ["YAML, one line per entry in flow style", () => "routes:\n" + Object.entries(routes).map(([k, v]) => `  ${JSON.stringify(k)}: ${JSON.stringify(v)}\n`).join(""), "yaml"],
    ["YAML, top-level mapping without routes:", () => YAML.stringify(routes, { defaultStringType: "QUOTE_SINGLE" }), "yml"],
    ["JSON, pretty", () => JSON.stringify({ routes }, null, 2), "json"],
    ["JSON, compact without routes", () => JSON.stringify(routes), "json"],
    ["CSV, json column", () => "key,json\n" + Object.entries(routes).map(([k, v]) => `${csvField(k)},${csvField(JSON.stringify(v))}`).join("\r\n") + "\r\n", "csv"],
  ] as const) {
    it(`${name}: worker and main-thread loads equal the reference`, async () => {
      const dir = tempDir();
      const file = join(dir, `routes.${ext}`);
      const t = text();
      writeFileSync(file, t);
      // The reference: the whole document through the yaml package (slow on a large mapping:
      // once) or JSON.parse; the other YAML styles round-trip the generated routes.
      const ref = ext === "csv" || (ext !== "json" && !name.includes("block")) ? routes : (() => {
        const d = (ext === "json" ? JSON.parse(t) : YAML.parse(t)) as Record<string, unknown>;
        return ("routes" in d ? d.routes : d) as Record<string, unknown>;
      })();
      expect(Object.keys(ref).length).toBe(N + 1);
      const { store, source } = await loadWithWorker(file);
      expect(source.lastStats?.worker).toBe(true);
      expect(store.current.size).toBe(N + 1);
      expect(sourcesOf(store.current)).toEqual(ref);
      const sync = loadRouteFile(file);
      expect(sync.ok).toBe(true);
      if (sync.ok) expect(sourcesOf(sync.table)).toEqual(ref);
      // Lookups agree between the transferred table and one built on this thread.
      if (sync.ok) for (const n of ["+15120000000", "+15120000001", "+442070", "+4420507", "+4420507123", "+19995550000"]) {
        expect(store.current.lookup(n)?.source).toEqual(sync.table.lookup(n)?.source);
      }
    }, 180_000);
  }

  it("a key given twice keeps its last entry (JSON), also through the worker's table", async () => {
    const dir = tempDir();
    const file = join(dir, "routes.json");
    const parts: string[] = [];
    for (let i = 0; i < 3000; i++) parts.push(`"+1512${i}": {"voice": {"targets": ["sip:first${i}@h"]}}`);
    for (let i = 0; i < 3000; i += 7) parts.push(`"+1512${i}": {"voice": {"targets": ["sip:second${i}@h"]}}`);
    parts.push(`"+44*": {"state": "released"}`);
    writeFileSync(file, `{${parts.join(",\n")}}`);
    const { store } = await loadWithWorker(file);
    const sync = loadRouteFile(file);
    if (!sync.ok) throw new Error(sync.errors.join("\n"));
    expect(store.current.size).toBe(3001);
    for (const i of [0, 1, 7, 8, 2996, 2999]) {
      const want = i % 7 === 0 ? `sip:second${i}@h` : `sip:first${i}@h`;
      expect(store.current.lookup(`+1512${i}`)?.voice?.targets[0]?.uri).toBe(want);
      expect(sync.table.lookup(`+1512${i}`)?.voice?.targets[0]?.uri).toBe(want);
    }
    expect(sourcesOf(store.current)).toEqual(sourcesOf(sync.table));
  });

  it("small batches with one in flight: the loader thread waits for the main thread and the table is whole", async () => {
    const dir = tempDir();
    const file = join(dir, "routes.json");
    writeFileSync(file, JSON.stringify({ routes }));
    const store = new RouteStore<Route>(RouteTable.build<Route>([]));
    const source = new FileRouteSource({ path: file, watch: false, store, logger: pino({ level: "silent" }), metrics: new RouteMetrics(new Registry()), batchSize: 97, inFlight: 1 });
    sources.push(source);
    const r = await source.load();
    expect(r.ok).toBe(true);
    expect(source.lastStats).toMatchObject({ worker: true, entries: N + 1 });
    expect(sourcesOf(store.current)).toEqual(routes);
  });

  for (const [name, text] of [
    ["routes.yaml", 'routes:\n  "+15125550100":\n    voice: { targets: ["sip:a@h"] }\noutbound:\n  "+44*": { voice: [carrier-uk] }\n  "*": { voice: [carrier-a] }\n'],
    ["routes.json", JSON.stringify({ routes: { "+15125550100": { voice: { targets: ["sip:a@h"] } } }, outbound: { "+44*": { voice: ["carrier-uk"] }, "*": { voice: ["carrier-a"] } } })],
    ["flat.json", JSON.stringify({ "+15125550100": { voice: { targets: ["sip:a@h"] } }, outbound: { "+44*": { voice: ["carrier-uk"] }, "*": { voice: ["carrier-a"] } } })],
  ] as const) {
    it(`${name}: the outbound: section beside the routes reaches the outbound store through the worker`, async () => {
      const dir = tempDir();
      const file = join(dir, name);
      writeFileSync(file, text);
      const store = new RouteStore<Route>(RouteTable.build<Route>([]));
      const outboundStore = new RouteStore<OutboundEntry>(RouteTable.build<OutboundEntry>([]));
      const source = new FileRouteSource({ path: file, watch: false, store, outboundStore, logger: pino({ level: "silent" }), metrics: new RouteMetrics(new Registry()) });
      sources.push(source);
      expect((await source.load()).ok).toBe(true);
      expect(source.lastStats?.worker).toBe(true);
      expect(store.current.size).toBe(1);
      expect(outboundStore.current.lookup("+447700900123")?.voice).toEqual(["carrier-uk"]);
      expect(outboundStore.current.lookup("+15125550100")?.voice).toEqual(["carrier-a"]);
      const sync = loadRouteFile(file);
      expect(sync.ok && sync.outbound?.lookup("+447700900123")?.voice).toEqual(["carrier-uk"]);
    });
  }

  it("CSV flat columns", async () => {
    const dir = tempDir();
    const file = join(dir, "routes.csv");
    const rows = ["key,state,tenant,targets,failover_on,ring_timeout_s,webhook,smpp"];
    const expected: Record<string, unknown> = {};
    for (let i = 0; i < N; i++) {
      const k = keyFor(i);
      rows.push(`${k},,t${i % 5},sip:a${i}@h|sip:b@h,486 503,${(i % 60) + 1},https://x.example/${i % 4},`);
      expected[k] = { tenant: `t${i % 5}`, voice: { targets: [`sip:a${i}@h`, "sip:b@h"], failover_on: [486, 503], ring_timeout_s: (i % 60) + 1 }, sms: { webhook: `https://x.example/${i % 4}` } };
    }
    writeFileSync(file, rows.join("\n") + "\n");
    const { store } = await loadWithWorker(file);
    expect(sourcesOf(store.current)).toEqual(expected);
  });
});

describe("YAML entry reader against the yaml package", () => {
  function fast(text: string): { doc?: unknown; error?: string; whole?: boolean } {
    const out: Record<string, unknown> = {};
    const r = scanYamlEntries(text, { entry: (k, v) => void Object.defineProperty(out, k, { value: v, enumerable: true, writable: true, configurable: true }) });
    if (r.ok) return { doc: out };
    if ("whole" in r) {
      const w = parseYamlWhole(text);
      if (!w.ok) return { error: `${w.error.message} ${w.error.line}:${w.error.col}`, whole: true };
      let d = w.doc as Record<string, unknown> | null;
      if (d && "routes" in d && Object.keys(d).length === 1) d = d.routes as Record<string, unknown>;
      return { doc: d ?? {}, whole: true };
    }
    return { error: `${r.error.message} ${r.error.line}:${r.error.col}` };
  }
  function reference(text: string): { doc?: unknown; error?: string } {
    try {
      let d = YAML.parse(text, { maxAliasCount: 1000 }) as Record<string, unknown> | null;
      if (d && "routes" in d && Object.keys(d).length === 1) d = d.routes as Record<string, unknown>;
      return { doc: d ?? {} };
    } catch (e) {
      const err = e as Error & { linePos?: { line: number; col: number }[] };
      return { error: `${err.message.split("\n")[0]!.replace(/ at line \d+, column \d+:?$/, "")} ${err.linePos?.[0]?.line}:${err.linePos?.[0]?.col}` };
    }
  }

  it("agrees on hand-written documents (styles, scalars, comments, errors)", () => {
    const docs = [
      "routes:\n  \"+1\":\n    voice:\n      targets:\n      - sip:a@b # first\n      - uri: 'sip:c@d'\n        priority: 2\n\n  # a comment\n  '+2': { voice: { targets: [ \"sip:e@f\" , sip:g@h, ] }, state: active }\n",
      "---\n\"+1\": {a: 1, b: [1, 2.5, 0x1F, 0o17, -0, +3, .5, 1e3, .inf, -.Inf, .nan, ~, null, Null, true, False, yes, '', \"\\u00e9\\t\\\"\"]}\n",
      "+15125550100: 1\n",
      "\"+1\": x\n\"+1\": y\n",
      "a: x: y\n",
      "\"+1\":\n  a: b\n   c: d\n",
      "a: &x {b: 1}\nc: *x\n",
      "\"+1\":\n  a: |\n    text\n  b: >\n    folded\n",
      "\"+1\":\n  a: plain\n    continued\n",
      "\"+1\":\n  a: \"quoted\n    continued\"\n",
      "\"+1\":\n  targets: [a,\n    b]\n",
      "\"+1\":\n  a: !!str 12\n",
      "\"+1\": {a: [1, 2}\n",
      "routes:\n  \"+1\": 1\nother: 2\n",
      "routes:\n",
      "",
      "# nothing\n",
      "- a\n- b\n",
      "\"+1\":\r\n  a: 1\r\n  b: [x, y]\r\n",
      "\"+1\":\n\ta: 1\n",
      "routes:\n  \"+1\":\n    a: 1\n \"+2\": 2\n",
      "\"a b\": 1\nc d: 2\n\"e\" : 3\n? f\n: 4\n",
      "\"+1\":\n  - a\n  -\n    b: 1\n  - - c\n",
      "\"+1\": 'it''s' # c\n\"+2\": 'x'#c\n",
      "\"+1\": {\"uri\":\"sip:a\", \"p\":1}\n",
      "\"+1\":\n  k: v\n  k: w\n",
      "\"+1\": [a: 1]\n",
      "\"+1\": 12:30\n\"+2\": sip:a@b:5060;x=y?z#frag\n",
      "__proto__: 1\n\"+1\": {__proto__: 2}\n",
      "%YAML 1.2\n---\na: 1\n",
      "a: 1\n...\n",
    ];
    for (const d of docs) expect(fast(d), JSON.stringify(d)).toMatchObject(reference(d));
  });

  it("agrees on generated route documents in every output style of the yaml package", () => {
    const scalar = fc.oneof(
      fc.string({ maxLength: 12 }),
      fc.constantFrom("sip:a@b", "+1512", "true", "null", "1e3", "0x1F", "~", "- x", "a: b", "#x", "x #y", "it's", '"q"', "é", "\\", " lead", "trail ", ""),
      fc.integer({ min: -1000, max: 100000 }),
      fc.double({ noNaN: true, noDefaultInfinity: true }),
      fc.boolean(),
      fc.constant(null),
    );
    const value = fc.letrec((tie) => ({
      v: fc.oneof({ depthSize: "small" }, scalar, fc.array(tie("v"), { maxLength: 3 }), fc.dictionary(fc.string({ minLength: 1, maxLength: 6 }), tie("v"), { maxKeys: 3 })),
    })).v;
    const doc = fc.dictionary(fc.oneof(fc.constantFrom("+1", "+1512*", "*"), fc.string({ minLength: 1, maxLength: 8 })), value, { minKeys: 1, maxKeys: 6 });
    const options = fc.record({
      wrap: fc.boolean(),
      flowLevel: fc.option(fc.integer({ min: 0, max: 3 }), { nil: undefined }),
      defaultStringType: fc.constantFrom("PLAIN", "QUOTE_DOUBLE", "QUOTE_SINGLE"),
      indentSeq: fc.boolean(),
      indent: fc.integer({ min: 1, max: 4 }),
    });
    fc.assert(
      fc.property(doc, options, (d, o) => {
        const text = YAML.stringify(o.wrap ? { routes: d } : d, { collectionStyle: o.flowLevel === 0 ? "flow" : "any", defaultStringType: o.defaultStringType, indentSeq: o.indentSeq, indent: o.indent, lineWidth: 0 });
        const f = fast(text);
        const r = reference(text);
        expect(f).toMatchObject(r);
      }),
      { numRuns: 400 },
    );
  });

  it("reads a large document in time linear in its size (entries counted, not timed)", () => {
    let text = "routes:\n";
    for (let i = 0; i < 20_000; i++) text += `  "+1512${i}":\n    voice:\n      targets: ["sip:${i}@h"]\n`;
    let n = 0;
    expect(scanYamlEntries(text, { entry: () => void n++ })).toEqual({ ok: true });
    expect(n).toBe(20_000);
  });
});

describe("broken files keep the last table and say where", () => {
  const good = { "+15125550100": { voice: { targets: ["sip:first@h"] } } };
  const cases: [string, string, RegExp][] = [
    ["routes.yaml", 'routes:\n  "+15125550100":\n    voice:\n      targets: ["sip:a@h"]\n  "+15125550101":\n    voice: x: y\n', /routes\.yaml:6:12: not valid YAML: Nested mappings/],
    ["routes.yaml", 'routes:\n  "+15125550100":\n    voice:\n      targets: ["sip:a@h"]\n\n  "+15125550101":\n    voice:\n      targets: ["http://nope"]\n', /routes\.yaml:6:3: route "\+15125550101": voice\.targets\[0\]: must be a SIP URI/],
    ["routes.yaml", 'routes:\n  "+1":\n    state: active\n  "+1":\n    state: active\n', /routes\.yaml:4:3: not valid YAML: Map keys must be unique/],
    ["routes.json", '{"routes": {\n  "+15125550100": {"voice": {"targets": ["sip:a@h"]}},\n  "+15125550101": {"voice": {"targets": ["sip:b@h"]},\n  "x": 1\n}}\n', /routes\.json:6:1: not valid JSON: Expected ',' or '}'/],
    ["routes.json", '{\n  "+15125550100": {"voice": {"targets": ["sip:a@h"]}},\n  "+1x": {"voice": {"targets": ["sip:b@h"]}}\n}\n', /routes\.json:3:3: route "\+1x": invalid key/],
    ["routes.csv", "key,targets\n+15125550100,sip:a@h\n+15125550101,not-a-uri\n", /routes\.csv:3:1: route "\+15125550101": voice\.targets\[0\]/],
    ["routes.csv", 'key,json\n+15125550100,"{""voice"": {""targets"": [""sip:a@h""]}}"\n+15125550101,"{nope"\n', /routes\.csv:3:1: route "\+15125550101": json column is not valid JSON/],
  ];
  for (const [name, text, re] of cases) {
    it(`${name}: ${re.source.slice(0, 60)}`, async () => {
      const dir = tempDir();
      const file = join(dir, name);
      writeFileSync(file, name.endsWith(".json") ? JSON.stringify(good) : name.endsWith(".csv") ? "key,targets\n+15125550100,sip:first@h\n" : YAML.stringify({ routes: good }));
      const { source, store } = await loadWithWorker(file);
      const first = store.current;
      expect(first.lookup("+15125550100")?.voice?.targets[0]?.uri).toBe("sip:first@h");
      writeFileSync(file, text);
      const r = await source.reload("test");
      expect(r.ok).toBe(false);
      if (!r.ok) expect(r.errors.join("\n")).toMatch(re);
      expect(store.current).toBe(first);
      expect(source.lastError?.join("\n")).toMatch(re);
      // The same errors from the command line's loader.
      const sync = loadRouteFile(file);
      expect(sync.ok).toBe(false);
      if (!sync.ok) expect(sync.errors.join("\n")).toMatch(re);
    });
  }

  it("an unchanged file is not loaded again; a fixed one is", async () => {
    const dir = tempDir();
    const file = join(dir, "routes.yaml");
    writeFileSync(file, YAML.stringify({ routes: good }));
    const { source, store } = await loadWithWorker(file);
    const first = store.current;
    await source.reload("watch");
    expect(store.current).toBe(first);
    writeFileSync(file, YAML.stringify({ routes: { "+15125550100": { voice: { targets: ["sip:second@h"] } } } }));
    expect((await source.reload("watch")).ok).toBe(true);
    expect(store.current.lookup("+15125550100")?.voice?.targets[0]?.uri).toBe("sip:second@h");
  });

  it("parseRouteDocument reports entry errors with their line and keeps the good entries", () => {
    const d = parseRouteDocument('"+1": {voice: {targets: ["sip:a@h"]}}\n"+2": {voice: {targets: ["x"]}}\n"+3": {state: active}\n', "yaml");
    expect(d.entries.map(([k]) => k)).toEqual(["+1", "+3"]);
    expect(d.errors.length).toBeGreaterThan(0);
    for (const e of d.errors) expect(e).toMatch(/^line 2, column 1: route "\+2": voice\.targets/);
  });
});
