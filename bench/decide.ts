/**
 * The route decision (state → callers → schedule → weighted targets) measured apart from the key
 * lookup: the same query stream through table.lookup() alone and through Decider.decideVoice(), on
 * routes of each shape. Target: a plain route adds no more than 100 ns over the lookup.
 *
 *   node --expose-gc dist/bench/decide.js [--json] [--entries N]
 */
import { Decider } from "../src/routing/decide.js";
import { parseRoute, type Route } from "../src/routing/route.js";
import { RouteTable } from "../src/routing/table.js";
import { fullGc, median, nowNs, parseArgs, quiesce, Reporter, result, rng, sink, StringPack } from "./lib.js";

const args = parseArgs();
const entries = args.int("entries", 100_000);
const rep = new Reporter(args.json);

function route(v: unknown): Route {
  const r = parseRoute("bench", v);
  if (!r.ok) throw new Error(r.errors.join("\n"));
  return r.route;
}

const shapes: Record<string, Route> = {
  plain: route({ voice: { targets: ["sip:pbx@10.0.0.1:5060"] } }),
  priority_failover: route({ voice: { targets: [{ uri: "sip:a@10.0.0.1", priority: 1 }, { uri: "sip:b@10.0.0.2", priority: 2 }] } }),
  weighted: route({ voice: { targets: [{ uri: "sip:a@10.0.0.1", weight: 70 }, { uri: "sip:b@10.0.0.2", weight: 30 }] } }),
  callers: route({ voice: { targets: ["sip:a@10.0.0.1"], callers: [{ match: "+44*", targets: ["sip:uk@10.0.0.3"] }, { match: "+49*", targets: ["sip:de@10.0.0.4"] }] } }),
  schedule: route({
    voice: {
      targets: ["sip:a@10.0.0.1"],
      schedule: [{ days: ["mon", "tue", "wed", "thu", "fri"], from: "09:00", to: "17:00", tz: "America/Chicago", targets: ["sip:office@10.0.0.5"] }],
    },
  }),
};

const r = rng(42);
const numbers: string[] = [];
for (let i = 0; i < entries; i++) numbers.push(`+1512${String(2_000_000 + Math.floor(r() * 7_999_999)).padStart(7, "0")}`);

const ROUNDS = 7;
const QUERIES = 200_000;
const at = Date.parse("2026-11-23T16:00:00Z");

for (const [name, value] of Object.entries(shapes)) {
  const table = RouteTable.build<Route>(numbers.map((n) => [n, value] as const));
  const decider = new Decider({ random: rng(7) });
  const qs: string[] = [];
  for (let i = 0; i < QUERIES; i++) qs.push(numbers[Math.floor(r() * numbers.length)]!);
  const pack = new StringPack(qs);
  const lookupNs: number[] = [];
  const decideNs: number[] = [];
  for (let round = 0; round < ROUNDS; round++) {
    // Fresh strings (hash not computed), moved out of the young generation before timing: a decision
    // allocates its result, and scavenges would otherwise copy the whole live query array, which
    // charges the decision for the benchmark's own data.
    let q = pack.fresh();
    fullGc(true);
    quiesce();
    let t0 = nowNs();
    for (let i = 0; i < q.length; i++) if (table.lookup(q[i]!) !== undefined) sink.n++;
    lookupNs.push((nowNs() - t0) / q.length);
    q = pack.fresh();
    fullGc(true);
    quiesce();
    t0 = nowNs();
    for (let i = 0; i < q.length; i++) sink.n += decider.decideVoice(table, q[i]!, "+447700900123", at).targets.length;
    decideNs.push((nowNs() - t0) / q.length);
  }
  const l = median(lookupNs);
  const d = median(decideNs);
  rep.report(result(`decide_${name}`, entries, d, { lookup_ns: l, added_ns: d - l }));
}
