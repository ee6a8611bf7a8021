/**
 * Redis stream helpers: id arithmetic, XINFO STREAM, whether a reader's position is still
 * readable, and the shapes of stream replies under RESP2 and RESP3.
 */
import { Buffer } from "node:buffer";
import type { RedisClient } from "./client.js";
import { errMessage } from "../util/errors.js";

/** Compares two stream ids "ms-seq" (or "ms"); negative, zero or positive. */
export function compareStreamIds(a: string, b: string): number {
  const da = a.indexOf("-");
  const db = b.indexOf("-");
  const msA = da >= 0 ? a.slice(0, da) : a;
  const msB = db >= 0 ? b.slice(0, db) : b;
  const c = compareDecimal(msA, msB);
  if (c !== 0) return c;
  return compareDecimal(da >= 0 ? a.slice(da + 1) : "0", db >= 0 ? b.slice(db + 1) : "0");
}

function compareDecimal(a: string, b: string): number {
  if (a.length !== b.length) return a.length - b.length;
  return a < b ? -1 : a > b ? 1 : 0;
}

/** Milliseconds part of a stream id (its creation time on the Redis clock). */
export function streamIdMs(id: string): number {
  const d = id.indexOf("-");
  const n = Number(d >= 0 ? id.slice(0, d) : id);
  return Number.isFinite(n) ? n : 0;
}

/** XINFO STREAM, parsed; undefined when the stream does not exist. */
export interface StreamInfo {
  length: number;
  lastGeneratedId: string;
  /** Redis >= 7: highest id ever deleted or trimmed ("0-0" if none); undefined on older servers. */
  maxDeletedId: string | undefined;
  firstEntryId: string | undefined;
  /** Redis >= 7: entries ever added to the stream; undefined on older servers. */
  entriesAdded: number | undefined;
}

export async function streamInfo(client: RedisClient, key: string): Promise<StreamInfo | undefined> {
  let reply: unknown;
  try {
    reply = await client.call("XINFO", "STREAM", key);
  } catch (err) {
    if (/no such key/i.test(errMessage(err))) return undefined;
    throw err;
  }
  if (!Array.isArray(reply)) throw new Error("unexpected XINFO STREAM reply");
  let length = 0;
  let lastGeneratedId = "0-0";
  let maxDeletedId: string | undefined;
  let firstEntryId: string | undefined;
  let entriesAdded: number | undefined;
  for (let i = 0; i + 1 < reply.length; i += 2) {
    const name = String(reply[i]);
    const v = reply[i + 1];
    if (name === "length") length = Number(v);
    else if (name === "last-generated-id") lastGeneratedId = String(v);
    else if (name === "max-deleted-entry-id") maxDeletedId = String(v);
    else if (name === "entries-added") entriesAdded = Number(v);
    else if (name === "first-entry" && Array.isArray(v) && v.length > 0) firstEntryId = String(v[0]);
  }
  return { length, lastGeneratedId, maxDeletedId, firstEntryId, entriesAdded };
}

/**
 * Whether a reader that has applied everything up to `position` can go on tailing this stream:
 * "ok"; "gap" when entries after the position were trimmed away; "lost" when the stream is not the
 * one the position came from (flushed, restarted empty, restored from an older dump).
 */
export function classifyPosition(info: StreamInfo | undefined, position: string): "ok" | "gap" | "lost" {
  const atStart = position === "0-0";
  if (info === undefined) return atStart ? "ok" : "lost";
  if (compareStreamIds(info.lastGeneratedId, position) < 0) return "lost";
  const md = info.maxDeletedId;
  if (md === undefined) {
    // Redis < 7: no trim record; be conservative.
    if (atStart) return info.firstEntryId === undefined && info.lastGeneratedId === "0-0" ? "ok" : "gap";
    return info.firstEntryId !== undefined && compareStreamIds(info.firstEntryId, position) <= 0 ? "ok" : "gap";
  }
  const cmpDeleted = compareStreamIds(md, position);
  if (cmpDeleted > 0) return "gap";
  if (atStart) return "ok";
  if (cmpDeleted === 0) return "ok";
  if (info.firstEntryId !== undefined && compareStreamIds(info.firstEntryId, position) <= 0) return "ok";
  return "lost";
}

export type StreamEntry = [id: string, fields: string[] | null];

/**
 * Entries of an XREADGROUP reply on one stream ([] for a nil reply). RESP2 gives
 * [[key, entries]]; RESP3 (ioredis 6's default, "legacy" mapping) gives the map flat: [key, entries].
 */
export function readReplyEntries(reply: unknown): StreamEntry[] {
  if (!Array.isArray(reply) || reply.length < 1) return [];
  const first = reply[0] as unknown;
  if (typeof first === "string" || Buffer.isBuffer(first)) return Array.isArray(reply[1]) ? (reply[1] as StreamEntry[]) : [];
  if (!Array.isArray(first) || first.length < 2 || !Array.isArray(first[1])) return [];
  return first[1] as StreamEntry[];
}

/** Score of the first member of a ZRANGE … WITHSCORES reply: [m, s] (RESP2) or [[m, s]] (RESP3). */
export function firstScore(reply: unknown): number | undefined {
  if (!Array.isArray(reply) || reply.length === 0) return undefined;
  const a = reply[0] as unknown;
  const s = Array.isArray(a) ? a[1] : reply[1];
  const n = Number(s);
  return s === undefined || s === null || Number.isNaN(n) ? undefined : n;
}

/** Value of a field in a flat [k, v, k, v…] list. */
export function field(fields: string[] | null, name: string): string | undefined {
  if (fields === null) return undefined;
  for (let i = 0; i + 1 < fields.length; i += 2) if (fields[i] === name) return fields[i + 1];
  return undefined;
}

export function isNoGroup(err: unknown): boolean {
  return String(errMessage(err)).startsWith("NOGROUP");
}

/** Epoch ms of a stream entry id ("1732262400000-3"). */
export function entryTimeMs(id: string): number {
  const dash = id.indexOf("-");
  return Number(dash < 0 ? id : id.slice(0, dash));
}
