/**
 * Redis plumbing of the spool and the dead-letter stream: key names, the consumer group, the Lua
 * scripts (each state change of a message is one atomic script).
 *
 * Keys (all under the configured prefix; for Redis Cluster the prefix must hold a hash tag such as
 * `{didgate}:` so the scripts' keys share a slot):
 *   <prefix>inbound     STREAM  messages waiting for delivery; field `j` = the job JSON
 *   <prefix>retry       ZSET    job JSON scored by the time of its next attempt (ms)
 *   <prefix>retry:age   ZSET    the same members scored by their acceptance time (for the oldest age)
 *   <prefix>dlq         STREAM  dead letters: `j` job JSON, `reason`, `at` (ms), `by` (instance)
 */
import type { RedisOptions } from "ioredis";
import type { RedisClient, RedisConnector } from "../redis/client.js";
import { Script } from "../redis/script.js";
import { errMessage } from "../util/errors.js";

/**
 * Makes the connections the spool needs:
 * - "enqueue": the writes that answer PDUs. No offline queue and no resend after a reconnect: a
 *   write that cannot go out now fails at once (the PDU gets a temporary failure) instead of
 *   landing later, after the SMSC was told to retry (which would deliver the message twice).
 * - "command": the workers' state changes, the retry mover, the reclaimer (these may wait through
 *   a reconnect).
 * - "blocking": XREADGROUP … BLOCK.
 */
export type RedisConnect = (role: "enqueue" | "command" | "blocking") => RedisClient;

export const GROUP = "didgate-delivery";

export interface SpoolKeys {
  inbound: string;
  retry: string;
  retryAge: string;
  dlq: string;
}

export function spoolKeys(prefix: string): SpoolKeys {
  return { inbound: `${prefix}inbound`, retry: `${prefix}retry`, retryAge: `${prefix}retry:age`, dlq: `${prefix}dlq` };
}

/**
 * The spool's connections on any kind of deployment (standalone, Sentinel, Cluster), connecting at
 * once. `name` prefixes the connection names (CLIENT SETNAME).
 */
export function spoolConnect(redis: RedisConnector, name = "didgate-delivery", extra: Partial<RedisOptions> = {}): RedisConnect {
  return (role) =>
    redis.client({
      lazy: false,
      name: `${name}-${role}`,
      redis: {
        maxRetriesPerRequest: role === "blocking" ? null : role === "enqueue" ? 0 : 2,
        protocol: 2,
        // Commands issued in one tick (enqueues, acks) go out in one write.
        enableAutoPipelining: role !== "blocking",
        enableOfflineQueue: role !== "enqueue",
        // (ioredis never settles a command it does not resend: the enqueue path is bounded by its timeout.)
        autoResendUnfulfilledCommands: role !== "enqueue",
        ...extra,
      },
    });
}


/**
 * Enqueue unless the spool is full. KEYS inbound, retry. ARGV maxDepth (0 = unbounded), job JSON.
 * Returns the entry id, or nil when full. The inbound stream is never trimmed: trimming would drop
 * messages already acknowledged to the carrier.
 */
export const ENQUEUE = new Script(`
local max = tonumber(ARGV[1])
if max > 0 and redis.call('XLEN', KEYS[1]) + redis.call('ZCARD', KEYS[2]) >= max then return false end
return redis.call('XADD', KEYS[1], '*', 'j', ARGV[2])
`);

/**
 * Writes made by the enqueue script just before its XADD, so that what a message needs from the
 * moment it is acknowledged (its status history, an index) costs no round trip of its own. Each
 * call is [command, key, ...args]; every key must live in the spool's slot (Cluster: the prefix's
 * hash tag).
 */
export interface SpoolWrites {
  calls: (string | number)[][];
  /** Refuse the message (nothing written) when `member` is in the set `key` (an opt-out). */
  unless?: { key: string; member: string };
}

/**
 * ENQUEUE with writes. KEYS inbound, retry, the `unless` set (or the retry key again), then the
 * keys of the calls, each once. ARGV maxDepth, job JSON, the `unless` member or "", then per call
 * its length, the index of its key in KEYS, its command and its other arguments (a key is sent
 * once, not again among the arguments: a message's writes name the same few keys). Returns { entry id, the first call's error or false }, 0 when the member is in the
 * set, or nil when full (nothing written either way). A call that fails does not keep the message
 * out of the spool (the writes are side records; the message is what was acknowledged).
 */
export const ENQUEUE_WITH = new Script(`
if ARGV[3] ~= '' and redis.call('SISMEMBER', KEYS[3], ARGV[3]) == 1 then return 0 end
local max = tonumber(ARGV[1])
if max > 0 and redis.call('XLEN', KEYS[1]) + redis.call('ZCARD', KEYS[2]) >= max then return false end
local err = false
local i = 4
while i <= #ARGV do
  local n = tonumber(ARGV[i])
  local r = redis.pcall(ARGV[i + 2], KEYS[tonumber(ARGV[i + 1])], unpack(ARGV, i + 3, i + n))
  if type(r) == 'table' and r.err and not err then err = r.err end
  i = i + n + 1
end
return { redis.call('XADD', KEYS[1], '*', 'j', ARGV[2]), err }
`);

/** KEYS and ARGV of ENQUEUE_WITH. */
export function enqueueWithArgs(keys: SpoolKeys, maxDepth: number, json: string, w: SpoolWrites): { keys: string[]; args: (string | number)[] } {
  const k = [keys.inbound, keys.retry, w.unless?.key ?? keys.retry];
  const a: (string | number)[] = [maxDepth, json, w.unless?.member ?? ""];
  const index = new Map<string, number>();
  for (const c of w.calls) {
    const key = String(c[1]);
    let i = index.get(key);
    if (i === undefined) {
      k.push(key);
      index.set(key, (i = k.length));
    }
    a.push(c.length, i, c[0]!);
    for (let j = 2; j < c.length; j++) a.push(c[j]!);
  }
  return { keys: k, args: a };
}

/** Delivered. KEYS inbound. ARGV group, entry id. */
export const ACK = new Script(`
local n = redis.call('XACK', KEYS[1], ARGV[1], ARGV[2])
redis.call('XDEL', KEYS[1], ARGV[2])
return n
`);

/**
 * Schedule a retry (only if the entry is still pending: someone else may have finished it).
 * KEYS inbound, retry, retry:age. ARGV group, entry id, due ms, accepted ms, job JSON.
 */
export const RETRY = new Script(`
if redis.call('XACK', KEYS[1], ARGV[1], ARGV[2]) == 0 then return 0 end
redis.call('XDEL', KEYS[1], ARGV[2])
redis.call('ZADD', KEYS[2], ARGV[3], ARGV[5])
redis.call('ZADD', KEYS[3], ARGV[4], ARGV[5])
return 1
`);

/**
 * Dead-letter (only if still pending). KEYS inbound, dlq. ARGV group, entry id, job JSON, reason,
 * at ms, instance, dlq maxlen (0 = untrimmed).
 */
export const DEAD = new Script(`
if redis.call('XACK', KEYS[1], ARGV[1], ARGV[2]) == 0 then return 0 end
redis.call('XDEL', KEYS[1], ARGV[2])
if tonumber(ARGV[7]) > 0 then
  redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[7], '*', 'j', ARGV[3], 'reason', ARGV[4], 'at', ARGV[5], 'by', ARGV[6])
else
  redis.call('XADD', KEYS[2], '*', 'j', ARGV[3], 'reason', ARGV[4], 'at', ARGV[5], 'by', ARGV[6])
end
return 1
`);

/**
 * Move due retries back to the stream. KEYS retry, retry:age, inbound. ARGV now ms, limit.
 * Returns { moved, score of the next pending retry or false }.
 */
export const MOVE_DUE = new Script(`
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[2]))
for i = 1, #due do
  redis.call('ZREM', KEYS[1], due[i])
  redis.call('ZREM', KEYS[2], due[i])
  redis.call('XADD', KEYS[3], '*', 'j', due[i])
end
local nxt = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
return { #due, nxt[2] or false }
`);

/**
 * Replay one dead letter: delete it and, only if it was there, add the job to the stream.
 * KEYS dlq, inbound. ARGV dlq entry id, new job JSON. Returns 1 when replayed.
 */
export const REPLAY = new Script(`
if redis.call('XDEL', KEYS[1], ARGV[1]) == 0 then return 0 end
redis.call('XADD', KEYS[2], '*', 'j', ARGV[2])
return 1
`);

/** Create the consumer group (from the start of the stream, creating the stream); idempotent. */
export async function ensureGroup(client: RedisClient, inbound: string): Promise<void> {
  try {
    await client.call("XGROUP", "CREATE", inbound, GROUP, "0", "MKSTREAM");
  } catch (err) {
    if (!String(errMessage(err)).startsWith("BUSYGROUP")) throw err;
  }
}
