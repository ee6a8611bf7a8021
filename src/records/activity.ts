/**
 * Last activity per number (inbound and outbound calls and messages), recorded cheaply: a call or
 * message only sets two numbers in a map; every `flushMs` the changes go out in one round trip
 * (one script: HSET only when newer, so edges never move a time backwards). Without Redis the
 * times are kept in the state directory as one JSON file written on flush.
 *
 * Redis: `<prefix>activity:in` and `<prefix>activity:out`, HASHes number -> epoch ms.
 */
import { existsSync, readFileSync } from "node:fs";
import { mkdir, open, rename } from "node:fs/promises";
import { dirname } from "node:path";
import type { Cluster, Redis } from "ioredis";
import type { Logger } from "pino";
import { errMessage } from "../util/errors.js";

export type Direction = "in" | "out";

/** Numbers written to the activity file per turn of the event loop. */
const SLICE = 5000;

const MAX_SET = `
for i = 1, #ARGV, 2 do
  local cur = tonumber(redis.call('HGET', KEYS[1], ARGV[i]) or '0')
  if tonumber(ARGV[i + 1]) > cur then redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1]) end
end
return 1
`;

export interface ActivityOptions {
  redis?: Redis | Cluster;
  prefix?: string;
  /** File used without Redis. */
  file?: string;
  flushMs?: number;
  /** Bound on numbers waiting for a flush (beyond it, a flush is started at once). */
  maxPending?: number;
  logger: Logger;
  now?: () => number;
}

export class ActivityRecorder {
  private pending: Record<Direction, Map<string, number>> = { in: new Map(), out: new Map() };
  private local: Record<Direction, Map<string, number>> = { in: new Map(), out: new Map() };
  private timer: NodeJS.Timeout | null = null;
  private flushing: Promise<void> | null = null;
  private readonly now: () => number;

  constructor(private readonly o: ActivityOptions) {
    this.now = o.now ?? Date.now;
    o.redis?.defineCommand("didgateMaxSet", { numberOfKeys: 1, lua: MAX_SET });
    if (o.redis === undefined && o.file !== undefined && existsSync(o.file)) {
      try {
        const j = JSON.parse(readFileSync(o.file, "utf8")) as { in?: Record<string, number>; out?: Record<string, number> };
        for (const d of ["in", "out"] as const) for (const [k, v] of Object.entries(j[d] ?? {})) if (typeof v === "number") this.local[d].set(k, v);
      } catch (err) {
        o.logger.warn({ file: o.file, err: errMessage(err) }, "activity file unreadable: starting empty");
      }
    }
    this.timer = setInterval(() => void this.flush(), o.flushMs ?? 10_000);
    this.timer.unref();
  }

  /** A call or message on `number` (E.164), in or out. */
  touch(number: string, dir: Direction): void {
    const m = this.pending[dir];
    m.set(number, this.now());
    if (m.size >= (this.o.maxPending ?? 100_000)) void this.flush();
  }

  flush(): Promise<void> {
    if (this.flushing !== null) return this.flushing;
    const batch = this.pending;
    if (batch.in.size === 0 && batch.out.size === 0) return Promise.resolve();
    this.pending = { in: new Map(), out: new Map() };
    this.flushing = this.write(batch).finally(() => (this.flushing = null));
    return this.flushing;
  }

  private async write(batch: Record<Direction, Map<string, number>>): Promise<void> {
    const r = this.o.redis;
    if (r !== undefined) {
      try {
        for (const d of ["in", "out"] as const) {
          if (batch[d].size === 0) continue;
          const args: (string | number)[] = [];
          for (const [k, v] of batch[d]) args.push(k, v);
          await (r as unknown as { didgateMaxSet: (...a: (string | number)[]) => Promise<number> }).didgateMaxSet(`${this.o.prefix ?? "didgate:"}activity:${d}`, ...args);
        }
      } catch (err) {
        // put the batch back (newer touches win) and try on the next flush
        for (const d of ["in", "out"] as const) for (const [k, v] of batch[d]) if ((this.pending[d].get(k) ?? 0) < v) this.pending[d].set(k, v);
        this.o.logger.warn({ err: errMessage(err) }, "activity flush to Redis failed; will retry");
      }
      return;
    }
    for (const d of ["in", "out"] as const) for (const [k, v] of batch[d]) if ((this.local[d].get(k) ?? 0) < v) this.local[d].set(k, v);
    if (this.o.file !== undefined) {
      try {
        await this.writeFile(this.o.file);
      } catch (err) {
        this.o.logger.warn({ file: this.o.file, err: errMessage(err) }, "activity file not written; will retry at the next flush");
      }
    }
  }

  /**
   * The whole file again, written in slices of SLICE numbers, each an asynchronous write: a table
   * of many numbers does not stall calls and messages (100k numbers took one 60 ms block as one
   * JSON.stringify and writeFileSync). Renamed over the old file once complete.
   */
  private async writeFile(file: string): Promise<void> {
    await mkdir(dirname(file), { recursive: true });
    const tmp = file + ".tmp";
    const fh = await open(tmp, "w");
    try {
      let parts: string[] = [];
      for (const d of ["in", "out"] as const) {
        parts.push(d === "in" ? '{"in":{' : '},"out":{');
        let n = 0;
        for (const [k, v] of this.local[d]) {
          parts.push((n === 0 ? "" : ",") + JSON.stringify(k) + ":" + v);
          if (++n % SLICE === 0) {
            await fh.write(parts.join(""));
            parts = [];
          }
        }
      }
      parts.push("}}");
      await fh.write(parts.join(""));
    } finally {
      await fh.close();
    }
    await rename(tmp, file);
  }

  /** Every number's last activity (after a flush). */
  async all(): Promise<Map<string, { in?: number; out?: number }>> {
    await this.flush();
    const out = new Map<string, { in?: number; out?: number }>();
    const r = this.o.redis;
    for (const d of ["in", "out"] as const) {
      const entries: [string, number][] = r !== undefined ? Object.entries(await r.hgetall(`${this.o.prefix ?? "didgate:"}activity:${d}`)).map(([k, v]) => [k, Number(v)]) : [...this.local[d]];
      for (const [k, v] of entries) {
        const e = out.get(k) ?? {};
        e[d] = v;
        out.set(k, e);
      }
    }
    return out;
  }

  async close(): Promise<void> {
    if (this.timer !== null) clearInterval(this.timer);
    this.timer = null;
    await this.flush();
  }
}
