/**
 * Summarise a V8 .cpuprofile (written by `node --cpu-prof`, e.g. by `bench/sip.ts --cpu-prof DIR`):
 * self time per function and per file, the top N of each, as a share of all samples (idle and GC
 * shown as their own rows, so the shares add up to the whole profile).
 *
 *   node dist/bench/cpuprofile.js FILE.cpuprofile [--top 30] [--busy] [--json]
 *
 * --busy leaves "(idle)" out of the total, so the shares are of the time the process was running.
 */
import fs from "node:fs";
import path from "node:path";
import { parseArgs } from "./lib.js";

interface CallFrame {
  functionName: string;
  url: string;
  lineNumber: number;
}
interface ProfileNode {
  id: number;
  callFrame: CallFrame;
}
interface CpuProfile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
}

/** A file's URL shortened to what names it: node internals keep "node:", ours from src/ or bench/, packages from node_modules/NAME. */
function shortFile(url: string): string {
  if (url === "") return "(native)";
  if (url.startsWith("node:")) return url;
  const u = url.startsWith("file://") ? url.slice(7) : url;
  const nm = u.lastIndexOf("node_modules/");
  if (nm >= 0) {
    const rest = u.slice(nm + 13).split("/");
    return "node_modules/" + (rest[0]!.startsWith("@") ? rest[0] + "/" + rest[1] : rest[0]) + "/" + rest[rest.length - 1];
  }
  const d = u.lastIndexOf("/dist/");
  if (d >= 0) return u.slice(d + 6);
  return path.basename(u);
}

export interface Row {
  name: string;
  self_ms: number;
  share: number;
}

export function summarise(p: CpuProfile, top: number, busy: boolean): { total_ms: number; functions: Row[]; files: Row[] } {
  const byId = new Map<number, ProfileNode>();
  for (const n of p.nodes) byId.set(n.id, n);
  const fn = new Map<string, number>();
  const file = new Map<string, number>();
  let total = 0;
  for (let i = 0; i < p.samples.length; i++) {
    const n = byId.get(p.samples[i]!);
    const dt = p.timeDeltas[i] ?? 0;
    if (n === undefined || dt <= 0) continue;
    const cf = n.callFrame;
    if (busy && cf.functionName === "(idle)") continue;
    total += dt;
    const f = shortFile(cf.url);
    // V8 names a regular expression's code by its whole source: cut to stay readable
    const name = cf.functionName.length > 80 ? cf.functionName.slice(0, 77) + "..." : cf.functionName;
    const key = (name || "(anonymous)") + (cf.url ? " " + f + ":" + (cf.lineNumber + 1) : "");
    fn.set(key, (fn.get(key) ?? 0) + dt);
    const fk = cf.url ? f : name;
    file.set(fk, (file.get(fk) ?? 0) + dt);
  }
  const rows = (m: Map<string, number>): Row[] =>
    [...m.entries()]
      .sort((a, b) => b[1] - a[1])
      .slice(0, top)
      .map(([name, us]) => ({ name, self_ms: Math.round(us / 100) / 10, share: total > 0 ? Math.round((us / total) * 1000) / 10 : 0 }));
  return { total_ms: Math.round(total / 1000), functions: rows(fn), files: rows(file) };
}

function main(): void {
  const args = parseArgs();
  const file = args.argv.find((a, i) => !a.startsWith("--") && (i === 0 || !["--top"].includes(args.argv[i - 1]!)));
  if (file === undefined) {
    process.stderr.write("usage: node dist/bench/cpuprofile.js FILE.cpuprofile [--top 30] [--busy] [--json]\n");
    process.exit(2);
  }
  const top = args.int("top", 30);
  const s = summarise(JSON.parse(fs.readFileSync(file, "utf8")) as CpuProfile, top, args.flag("busy"));
  if (args.json) {
    process.stdout.write(JSON.stringify(s) + "\n");
    return;
  }
  const table = (title: string, rows: Row[]): void => {
    process.stdout.write(`\n${title}\n   self ms  share  name\n`);
    for (const r of rows) process.stdout.write(`${r.self_ms.toFixed(1).padStart(10)} ${r.share.toFixed(1).padStart(5)}%  ${r.name}\n`);
  };
  process.stdout.write(`${file}: ${s.total_ms} ms sampled${args.flag("busy") ? " (idle left out)" : ""}\n`);
  table(`top ${top} functions by self time`, s.functions);
  table(`top ${top} files by self time`, s.files);
}

main();
