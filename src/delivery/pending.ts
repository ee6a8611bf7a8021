/**
 * What waits for delivery in the Redis spool, for `didgate messages pending|show`: entries of the
 * inbound stream (queued, or being delivered by an edge: the consumer group's pending list) and
 * the retry schedule, with their age, attempts and last error. Read-only; never the secret.
 */
import type { RedisClient } from "../redis/client.js";
import { field } from "../redis/stream.js";
import { GROUP, spoolKeys } from "./redis.js";
import { listDlq } from "./dlq.js";
import type { SpoolRecord } from "./spool.js";
import { redactUrl } from "./webhook.js";
import { errMessage } from "../util/errors.js";

export type PendingState = "queued" | "delivering" | "retry" | "dead";

export interface PendingMessage {
  /** Message id (the webhook-id). */
  id: string | null;
  state: PendingState;
  /** Stream entry id (queued, delivering, dead) or null (retry). */
  entryId: string | null;
  type: string | null;
  from: string | null;
  to: string | null;
  webhook: string | null;
  smpp: string | null;
  acceptedAt: number | null;
  ageS: number | null;
  attempts: number;
  lastError: string | null;
  lastAttemptAt: number | null;
  /** retry: when the next attempt is due (epoch ms). */
  nextAttemptAt: number | null;
  /** delivering: the edge (consumer) holding it and for how long (ms). */
  consumer: string | null;
  idleMs: number | null;
}

function parse(json: string | undefined): SpoolRecord | undefined {
  if (json === undefined) return undefined;
  try {
    const r = JSON.parse(json) as SpoolRecord;
    return r !== null && typeof r === "object" ? r : undefined;
  } catch {
    return undefined;
  }
}

function toPending(rec: SpoolRecord | undefined, state: PendingState, entryId: string | null, now: number): PendingMessage {
  const body = rec?.body as { type?: unknown; from?: unknown; to?: unknown } | undefined;
  const s = (v: unknown) => (typeof v === "string" ? v : null);
  const n = (v: unknown) => (typeof v === "number" && Number.isFinite(v) ? v : null);
  const target = rec?.target !== null && typeof rec?.target === "object" ? rec.target : undefined;
  const acceptedAt = n(rec?.acceptedAt);
  return {
    id: s(rec?.id),
    state,
    entryId,
    type: s(body?.type),
    from: s(body?.from),
    to: s(body?.to),
    webhook: typeof target?.webhook === "string" ? redactUrl(target.webhook) : null,
    smpp: s(target?.smpp),
    acceptedAt,
    ageS: acceptedAt === null ? null : Math.max(0, Math.round((now - acceptedAt) / 1000)),
    attempts: n(rec?.attempts) ?? 0,
    lastError: s(rec?.lastError),
    lastAttemptAt: n(rec?.lastAttemptAt),
    nextAttemptAt: null,
    consumer: null,
    idleMs: null,
  };
}

/** XPENDING summary rows: [id, consumer, idle ms, deliveries]. */
async function pendingInfo(client: RedisClient, inbound: string, count: number): Promise<Map<string, { consumer: string; idleMs: number }>> {
  const out = new Map<string, { consumer: string; idleMs: number }>();
  try {
    const rows = (await client.call("XPENDING", inbound, GROUP, "-", "+", count)) as [string, string, number, number][];
    for (const r of rows) out.set(String(r[0]), { consumer: String(r[1]), idleMs: Number(r[2]) });
  } catch (err) {
    if (!String(errMessage(err)).startsWith("NOGROUP")) throw err;
  }
  return out;
}

/** Messages waiting for delivery, oldest first within each kind: the stream (up to `count`), then the retry schedule (up to `count`). */
export async function listPending(client: RedisClient, prefix: string, opts: { count?: number; now?: number } = {}): Promise<{ messages: PendingMessage[]; streamLength: number; retryLength: number }> {
  const k = spoolKeys(prefix);
  const count = opts.count ?? 100;
  const now = opts.now ?? Date.now();
  const [entries, retries, streamLength, retryLength] = await Promise.all([
    client.call("XRANGE", k.inbound, "-", "+", "COUNT", count) as Promise<[string, string[]][]>,
    client.call("ZRANGE", k.retry, 0, count - 1, "WITHSCORES") as Promise<unknown[]>,
    client.call("XLEN", k.inbound).then(Number),
    client.call("ZCARD", k.retry).then(Number),
  ]);
  const pel = await pendingInfo(client, k.inbound, Math.max(count, 1000));
  const messages: PendingMessage[] = [];
  for (const [entryId, fields] of entries) {
    const p = pel.get(entryId);
    const m = toPending(parse(field(fields, "j")), p ? "delivering" : "queued", entryId, now);
    if (p) {
      m.consumer = p.consumer;
      m.idleMs = p.idleMs;
    }
    messages.push(m);
  }
  for (const [member, score] of pairs(retries)) {
    const m = toPending(parse(member), "retry", null, now);
    m.nextAttemptAt = score;
    messages.push(m);
  }
  return { messages, streamLength, retryLength };
}

/** [member, score] pairs of a ZRANGE … WITHSCORES reply (flat in RESP2, nested in RESP3). */
function pairs(reply: unknown[]): [string, number][] {
  const out: [string, number][] = [];
  if (reply.length > 0 && Array.isArray(reply[0])) {
    for (const r of reply as [string, unknown][]) out.push([String(r[0]), Number(r[1])]);
    return out;
  }
  for (let i = 0; i + 1 < reply.length; i += 2) out.push([String(reply[i]), Number(reply[i + 1])]);
  return out;
}

/** `*` `?` `[` `]` `\` escaped for a MATCH pattern. */
function globEscape(s: string): string {
  return s.replace(/[*?[\]\\]/g, (c) => "\\" + c);
}

/**
 * Where message `id` is: queued or being delivered (the stream), waiting for a retry (the
 * schedule), or dead-lettered. Scans the stream and the dead letters in pages (an operator
 * command, not a hot path). Undefined when it is nowhere: delivered, or never accepted.
 */
export async function findMessage(client: RedisClient, prefix: string, id: string, now: number = Date.now()): Promise<PendingMessage | undefined> {
  const k = spoolKeys(prefix);
  const inStream = async (): Promise<PendingMessage | undefined> => {
    let start = "-";
    for (;;) {
      const page = (await client.call("XRANGE", k.inbound, start, "+", "COUNT", 1000)) as [string, string[]][];
      for (const [entryId, fields] of page) {
        const rec = parse(field(fields, "j"));
        if (rec?.id !== id) continue;
        const pel = (await client.call("XPENDING", k.inbound, GROUP, entryId, entryId, 1).catch(() => [])) as [string, string, number, number][];
        const m = toPending(rec, pel.length > 0 ? "delivering" : "queued", entryId, now);
        if (pel.length > 0) {
          m.consumer = String(pel[0]![1]);
          m.idleMs = Number(pel[0]![2]);
        }
        return m;
      }
      if (page.length < 1000) return undefined;
      start = "(" + page[page.length - 1]![0];
    }
  };
  const found = await inStream();
  if (found) return found;
  // Retry members are the job JSON, which starts with {"id":"…".
  let cursor = "0";
  do {
    const [next, items] = (await client.call("ZSCAN", k.retry, cursor, "MATCH", globEscape(`{"id":${JSON.stringify(id)},`) + "*", "COUNT", 1000)) as [string, string[]];
    cursor = next;
    for (let i = 0; i + 1 < items.length; i += 2) {
      const rec = parse(items[i]);
      if (rec?.id === id) {
        const m = toPending(rec, "retry", null, now);
        m.nextAttemptAt = Number(items[i + 1]);
        return m;
      }
    }
  } while (cursor !== "0");
  let start: string | undefined;
  for (;;) {
    const page = await listDlq(client, prefix, { count: 1000, ...(start ? { start } : {}) });
    const d = page.find((e) => e.id === id);
    if (d) {
      return {
        id: d.id,
        state: "dead",
        entryId: d.entryId,
        type: d.type,
        from: d.from,
        to: d.to,
        webhook: d.webhook,
        smpp: d.smpp,
        acceptedAt: d.acceptedAt,
        ageS: d.acceptedAt === null ? null : Math.max(0, Math.round((now - d.acceptedAt) / 1000)),
        attempts: d.attempts ?? 0,
        lastError: d.reason,
        lastAttemptAt: d.at,
        nextAttemptAt: null,
        consumer: d.by,
        idleMs: null,
      };
    }
    if (page.length < 1000) return undefined;
    start = "(" + page[page.length - 1]!.entryId;
  }
}
