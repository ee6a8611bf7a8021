/**
 * `npm run bench`: the in-process benchmark suite, one child process per benchmark (so one cannot
 * warm or pollute the heap of the next). Arguments (e.g. --json) are passed to each.
 * The benchmarks that drive external peers (sip.js with sipp and Kamailio, sms-e2e.js with Kannel,
 * redis-sync.js, delivery.js, file-reload.js with sipp) run on their own: see README "Benchmarks".
 */
import { spawnSync } from "node:child_process";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const suite = ["lookup.js", "decide.js", "sip-parse.js", "smpp.js", "file-load.js"];
const args = process.argv.slice(2);
let failed = 0;
for (const b of suite) {
  if (!args.includes("--json")) console.log(`\n# ${b}`);
  const r = spawnSync(process.execPath, ["--expose-gc", join(here, b), ...args], { stdio: "inherit" });
  if (r.status !== 0) {
    failed++;
    console.error(`${b} exited ${r.status}`);
  }
}
process.exit(failed === 0 ? 0 : 1);
