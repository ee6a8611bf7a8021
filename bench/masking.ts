/**
 * Masking sessions: the cost of creating a session and of the per-call lookup (Redis store, a
 * redis-server started here on a free port, one client as an edge has it), beside a plain Redis
 * GET round trip in the same run; and how many concurrent sessions a pool of N numbers carries
 * under the pooling rule (no participant twice on one proxy number) for a population where some
 * participants are in many sessions at once (drivers) and most in one (riders).
 *
 *   npm run build && node dist/bench/masking.js [--json] [--pool 100] [--drivers 2000] [--riders 1000000]
 */
import { Redis } from "ioredis";
import { MemorySessionStore, RedisSessionStore } from "../src/masking/sessions.js";
import { median, parseArgs, rng } from "./lib.js";
import { startRedis } from "./servers.js";

const args = parseArgs();
const poolSize = args.int("pool", 100);
const drivers = args.int("drivers", 2000);
const riders = args.int("riders", 1_000_000);

function pool(n: number): string[] {
  return Array.from({ length: n }, (_, i) => "+1512555" + String(1000 + i).padStart(4, "0"));
}

function print(row: Record<string, unknown>): void {
  if (args.json) console.log(JSON.stringify(row));
  else console.log(Object.entries(row).map(([k, v]) => `${k}=${v}`).join("  "));
}

async function latency(): Promise<void> {
  const server = await startRedis(false);
  const c = new Redis(server.url);
  const store = new RedisSessionStore(c, "bench:");
  const numbers = pool(poolSize);
  await store.setPool("p", "acme", numbers);
  const sample = async (n: number, fn: (i: number) => Promise<unknown>): Promise<{ p50: number; p99: number }> => {
    const t: number[] = [];
    for (let i = 0; i < n; i++) {
      const t0 = process.hrtime.bigint();
      await fn(i);
      t.push(Number(process.hrtime.bigint() - t0) / 1000);
    }
    t.sort((a, b) => a - b);
    return { p50: median(t), p99: t[Math.floor(t.length * 0.99)]! };
  };
  const get = await sample(5000, () => c.get("bench:none"));
  const ids: { proxy: string; a: string }[] = [];
  const create = await sample(5000, async (i) => {
    const r = await store.create("p", "+4477009" + String(i).padStart(5, "0"), "+3361234" + String(i).padStart(5, "0"), 3_600_000);
    if (r.ok) ids.push({ proxy: r.session.proxy, a: r.session.a });
  });
  const lookup = await sample(5000, (i) => store.route(ids[i % ids.length]!.proxy, ids[i % ids.length]!.a));
  const miss = await sample(5000, (i) => store.route(numbers[i % numbers.length]!, "+19999999999"));
  for (const [name, s] of [["redis_get_baseline", get], ["session_create", create], ["session_lookup_hit", lookup], ["session_lookup_miss", miss]] as const) {
    print({ name, pool: poolSize, p50_us: Math.round(s.p50), p99_us: Math.round(s.p99), ratio_to_get: Math.round((s.p50 / get.p50) * 10) / 10 });
  }
  c.disconnect();
  server.stop();
}

async function capacity(): Promise<void> {
  // Sessions are created until the first pool_exhausted: each pairs a driver (few, busy) with a
  // rider (many); the count is what the pool carried at once.
  const r = rng(42);
  const store = new MemorySessionStore(Date.now, r);
  await store.setPool("p", "acme", pool(poolSize));
  let made = 0;
  for (;;) {
    const a = "+1737" + String(Math.floor(r() * drivers)).padStart(7, "0");
    const b = "+1512" + String(Math.floor(r() * riders)).padStart(7, "0");
    const s = await store.create("p", a, b, 3_600_000);
    if (!s.ok) {
      if (s.code === "same_party") continue;
      break;
    }
    made++;
  }
  print({ name: "pool_concurrent_sessions", pool: poolSize, drivers, riders, sessions: made, sessions_per_number: Math.round((made / poolSize) * 10) / 10 });
}

await latency();
await capacity();
