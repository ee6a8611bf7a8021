/**
 * A Lua script run by its SHA1 (EVALSHA), loaded with EVAL the first time a server answers
 * NOSCRIPT (after a restart or failover, or on each Cluster master the first time).
 *
 * batched() runs the same script for many callers in one EVALSHA: the calls made on one client
 * within one turn of the event loop (at most MAX_BATCH) go out together, the script's body run once
 * per call, in call order, inside one atomic script (each call still sees the writes of the calls
 * before it, as it would have run alone). Each caller gets its own result or its own error (a call
 * that fails does not fail the others); a connection error fails every call of the batch, as it
 * would have failed each alone. On a Cluster a batch holds calls whose keys share one hash tag; a
 * call whose keys have none (or different ones) runs alone.
 */
import { createHash } from "node:crypto";
import { Cluster } from "ioredis";
import type { RedisClient } from "./client.js";
import { hashTag } from "./endpoint.js";
import { errMessage } from "../util/errors.js";

/** Most calls one batched EVALSHA carries. */
export const MAX_BATCH = 64;

interface Call {
  keys: string[];
  args: (string | number)[];
  resolve: (v: unknown) => void;
  reject: (e: unknown) => void;
}

/**
 * The script's body as a function run once per call: ARGV[1] the number of calls, then per call
 * its key and argument counts, then every call's arguments; KEYS every call's keys. Returns per
 * call {1, result} or {0, error message}: an error the body raised or returned (an error reply,
 * which alone would have failed the call, is not nested in the answer as a value).
 */
function batchSource(source: string): string {
  return `local function one(KEYS, ARGV)
${source}
end
local n = tonumber(ARGV[1])
local out = {}
local k, p = 0, 2 * n + 2
for c = 1, n do
  local nk, na = tonumber(ARGV[2 * c]), tonumber(ARGV[2 * c + 1])
  local ks, as = {}, {}
  for i = 1, nk do ks[i] = KEYS[k + i] end
  for i = 1, na do as[i] = ARGV[p + i - 1] end
  k = k + nk
  p = p + na
  local ok, r = pcall(one, ks, as)
  if ok and type(r) == 'table' and type(r.err) == 'string' then out[c] = {0, r.err}
  elseif ok then out[c] = {1, r}
  else
    if type(r) == 'table' then r = r.err or 'script error' end
    out[c] = {0, tostring(r)}
  end
end
return out`;
}

export class Script {
  readonly sha: string;
  private batchScript: Script | undefined;
  /** Calls waiting for the end of this turn of the event loop, per client and (Cluster) hash tag. */
  private readonly waiting = new Map<RedisClient, Map<string, Call[]>>();
  private flushScheduled = false;

  constructor(readonly source: string) {
    this.sha = createHash("sha1").update(source).digest("hex");
  }

  async run(client: RedisClient, keys: string[], args: (string | number)[]): Promise<unknown> {
    try {
      return await client.evalsha(this.sha, keys.length, ...keys, ...args);
    } catch (err) {
      if (!String(errMessage(err)).startsWith("NOSCRIPT")) throw err;
      return await client.eval(this.source, keys.length, ...keys, ...args);
    }
  }

  /** run(), batched with the other calls of this turn of the event loop on the same client (see above). */
  batched(client: RedisClient, keys: string[], args: (string | number)[]): Promise<unknown> {
    let group = "";
    if (client instanceof Cluster) {
      const tag = keys.length > 0 ? hashTag(keys[0]!) : undefined;
      if (tag === undefined || keys.some((k) => hashTag(k) !== tag)) return this.run(client, keys, args);
      group = tag;
    }
    return new Promise((resolve, reject) => {
      let byGroup = this.waiting.get(client);
      if (byGroup === undefined) this.waiting.set(client, (byGroup = new Map()));
      let calls = byGroup.get(group);
      if (calls === undefined) byGroup.set(group, (calls = []));
      calls.push({ keys, args, resolve, reject });
      if (calls.length >= MAX_BATCH) {
        byGroup.delete(group);
        void this.send(client, calls);
      } else if (!this.flushScheduled) {
        this.flushScheduled = true;
        setImmediate(() => this.flush());
      }
    });
  }

  private flush(): void {
    this.flushScheduled = false;
    const all = [...this.waiting];
    this.waiting.clear();
    for (const [client, byGroup] of all) for (const calls of byGroup.values()) void this.send(client, calls);
  }

  private async send(client: RedisClient, calls: Call[]): Promise<void> {
    if (calls.length === 1) {
      const c = calls[0]!;
      await this.run(client, c.keys, c.args).then(c.resolve, c.reject);
      return;
    }
    const keys: string[] = [];
    const counts: number[] = [calls.length];
    const args: (string | number)[] = [];
    for (const c of calls) {
      for (const k of c.keys) keys.push(k);
      for (const a of c.args) args.push(a);
      counts.push(c.keys.length, c.args.length);
    }
    this.batchScript ??= new Script(batchSource(this.source));
    let r: unknown;
    try {
      r = await this.batchScript.run(client, keys, [...counts, ...args]);
    } catch (err) {
      for (const c of calls) c.reject(err);
      return;
    }
    const out = r as [number, unknown][];
    calls.forEach((c, i) => {
      const x = out[i];
      if (x === undefined) c.reject(new Error("batched script: no answer for a call"));
      else if (x[0] === 1) c.resolve(x[1] ?? null);
      else c.reject(new Error(String(x[1])));
    });
  }
}
