/**
 * The dead-letter stream `<prefix>dlq`: list, replay, drop.
 *
 * The command line is src/cli/dlq.ts.
 *
 * Replay puts a dead letter back into the inbound stream as a fresh job (attempts 0, a new max-age
 * window from the replay, targets refused earlier tried again, same webhook-id) and removes it from
 * the dead-letter stream in one atomic step, so two operators replaying at once cannot duplicate it.
 */
import type { RedisClient } from "../redis/client.js";
import { field } from "../redis/stream.js";
import { REPLAY, spoolKeys } from "./redis.js";
import type { SpoolRecord } from "./spool.js";
import { redactUrl } from "./webhook.js";

export interface DlqEntry {
  /** Stream entry id in the dead-letter stream (what replay/drop take). */
  entryId: string;
  /** Message id (the webhook-id). */
  id: string | null;
  reason: string;
  /** When it was dead-lettered (epoch ms). */
  at: number;
  /** Instance that dead-lettered it. */
  by: string;
  type: string | null;
  from: string | null;
  to: string | null;
  /** Webhook URL without query string; never the secret. */
  webhook: string | null;
  smpp: string | null;
  attempts: number | null;
  acceptedAt: number | null;
}

function parseRecord(json: string | undefined): SpoolRecord | undefined {
  if (json === undefined) return undefined;
  try {
    const r = JSON.parse(json) as SpoolRecord;
    return r !== null && typeof r === "object" && typeof r.id === "string" && r.target !== null && typeof r.target === "object" ? r : undefined;
  } catch {
    return undefined;
  }
}

function toEntry(entryId: string, fields: string[]): DlqEntry {
  const rec = parseRecord(field(fields, "j"));
  const body = rec?.body as { type?: unknown; from?: unknown; to?: unknown } | undefined;
  const str = (v: unknown) => (typeof v === "string" ? v : null);
  return {
    entryId,
    id: rec?.id ?? null,
    reason: field(fields, "reason") ?? "",
    at: Number(field(fields, "at") ?? 0),
    by: field(fields, "by") ?? "",
    type: str(body?.type),
    from: str(body?.from),
    to: str(body?.to),
    webhook: rec?.target.webhook ? redactUrl(rec.target.webhook) : null,
    smpp: rec?.target.smpp ?? null,
    attempts: typeof rec?.attempts === "number" ? rec.attempts : null,
    acceptedAt: typeof rec?.acceptedAt === "number" ? rec.acceptedAt : null,
  };
}

/** Dead letters, oldest first, starting at entry id `start` (inclusive; default the beginning). */
export async function listDlq(client: RedisClient, prefix: string, opts: { count?: number; start?: string } = {}): Promise<DlqEntry[]> {
  const k = spoolKeys(prefix);
  const raw = (await client.call("XRANGE", k.dlq, opts.start ?? "-", "+", "COUNT", opts.count ?? 100)) as [string, string[]][];
  return raw.map(([id, f]) => toEntry(id, f));
}

export async function dlqLength(client: RedisClient, prefix: string): Promise<number> {
  return Number(await client.call("XLEN", spoolKeys(prefix).dlq));
}

export interface ReplayResult {
  replayed: string[];
  /** Not in the stream (already replayed or dropped). */
  missing: string[];
  /** Present but unreadable (kept). */
  corrupt: string[];
}

async function replayOne(client: RedisClient, prefix: string, entryId: string, fields: string[], now: number, res: ReplayResult): Promise<void> {
  const k = spoolKeys(prefix);
  const rec = parseRecord(field(fields, "j"));
  if (rec === undefined) {
    res.corrupt.push(entryId);
    return;
  }
  const fresh: SpoolRecord = { id: rec.id, body: rec.body, target: rec.target, acceptedAt: now, attempts: 0, skip: 0 };
  const n = await REPLAY.run(client, [k.dlq, k.inbound], [entryId, JSON.stringify(fresh)]);
  if (Number(n) === 1) res.replayed.push(entryId);
  else res.missing.push(entryId);
}

/** Put dead letters back in the inbound stream (`ids` or every one). */
export async function replayDlq(client: RedisClient, prefix: string, ids: string[] | "all", now: number = Date.now()): Promise<ReplayResult> {
  const k = spoolKeys(prefix);
  const res: ReplayResult = { replayed: [], missing: [], corrupt: [] };
  if (ids === "all") {
    let start = "-";
    for (;;) {
      const page = (await client.call("XRANGE", k.dlq, start, "+", "COUNT", 500)) as [string, string[]][];
      if (page.length === 0) break;
      for (const [id, f] of page) await replayOne(client, prefix, id, f, now, res);
      start = "(" + page[page.length - 1][0];
    }
    return res;
  }
  for (const id of ids) {
    const got = (await client.call("XRANGE", k.dlq, id, id)) as [string, string[]][];
    if (got.length === 0) res.missing.push(id);
    else await replayOne(client, prefix, id, got[0][1], now, res);
  }
  return res;
}

/** Remove dead letters (`ids` or every one). Returns how many were removed. */
export async function dropDlq(client: RedisClient, prefix: string, ids: string[] | "all"): Promise<number> {
  const k = spoolKeys(prefix);
  if (ids === "all") {
    const n = await dlqLength(client, prefix);
    await client.del(k.dlq);
    return n;
  }
  if (ids.length === 0) return 0;
  return Number(await client.call("XDEL", k.dlq, ...ids));
}
