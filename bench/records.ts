/**
 * What one call detail record costs the edge: RecordWriter.write() (JSON line appended to
 * records.log with write(2), usage counters, no Redis) against JSON.stringify of the same record
 * alone, in the same process. CPU time per record, median of the rounds.
 *
 *   npm run build && node dist/bench/records.js [--records 50000] [--rounds 5] [--json]
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pino } from "pino";
import { Registry } from "prom-client";
import { RecordWriter } from "../src/records/writer.js";
import { median, parseArgs, Reporter, result } from "./lib.js";

const args = parseArgs();
const N = Number(args.option("records") ?? 50_000);
const ROUNDS = Number(args.option("rounds") ?? 5);

const now = new Date().toISOString();
const rec: Record<string, unknown> = {
  id: "9b2f3c4e-5d6a-4b7c-8d9e-0f1a2b3c4d5e", direction: "inbound", trunk: "carrier-a", customer: null, carrier: null, tenant: "t1",
  did: "+15125550100", caller: "+14155550100", callee: "+15125550100", route_key: "+15125550100",
  targets: [{ uri: "sip:pbx@198.51.100.10", result: "200" }], final_code: 200, outcome: "answered",
  invite_at: now, provisional_at: now, answer_at: now, end_at: now, setup_ms: 10, billable_ms: 61_000,
  hangup: "caller", end_reason: "bye", call_id: "a84b4c76e66710@pc33.example.com", attest: null, verstat: null, edge: "edge-1",
};

function cpuNsPer(fn: () => void): number {
  const c0 = process.cpuUsage();
  for (let i = 0; i < N; i++) fn();
  const c = process.cpuUsage(c0);
  return ((c.user + c.system) * 1000) / N;
}

const dir = mkdtempSync(join(tmpdir(), "didgate-records-bench-"));
const writer = new RecordWriter({ stateDir: dir, stream: "didgate:cdr", logger: pino({ level: "silent" }), registry: new Registry(), fsyncMs: 1000 });
let sink = 0;
const stringify = () => {
  sink += JSON.stringify({ type: "call", ...rec }).length;
};
const write = () => writer.write("call", rec);
cpuNsPer(stringify);
cpuNsPer(write);
const s: number[] = [];
const w: number[] = [];
for (let r = 0; r < ROUNDS; r++) {
  s.push(cpuNsPer(stringify));
  w.push(cpuNsPer(write));
}
await writer.close(0);
rmSync(dir, { recursive: true, force: true });
const rep = new Reporter(args.json);
rep.report(result("json_stringify_record", N, median(s)));
rep.report(result("record_writer_write", N, median(w), { ratio_to_map: median(w) / median(s) }));
rep.note("ratio_map here: record_writer_write / json_stringify_record");
if (sink < 0) console.log(sink);
