/**
 * Writes the Redis route table (docs/redis.md). Every write validates the entry first, then
 * writes the hash field and its change-stream entry in one MULTI/EXEC, so a reader that loads the
 * hash and then tails the stream from the id it read before loading misses nothing.
 *
 * Imports are batched (one MULTI per batch: one HSET of the batch, one XADD per route) and
 * pipelined (several batches in flight on the connection).
 */
import { parseOutbound, parseOutboundJson } from "../outbound.js";
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { parseRoute } from "../route.js";
import { parseRouteKey } from "../table.js";
import type { RedisClient } from "../../redis/client.js";
import { hasHashTag } from "../../redis/endpoint.js";
import { MAX_ENTRY_CHARS, routeKeys, type RouteKeys } from "./redis-keys.js";
import { errMessage } from "../../util/errors.js";

export class RouteValidationError extends Error {
  constructor(readonly errors: string[]) {
    super(errors.length === 1 ? errors[0] : `${errors.length} invalid routes:\n${errors.slice(0, 20).join("\n")}${errors.length > 20 ? "\n…" : ""}`);
    this.name = "RouteValidationError";
  }
}

export interface WriterOptions {
  prefix: string;
  /** Approximate stream length kept (XADD MAXLEN ~). */
  streamMaxlen: number;
}

export interface ImportOptions {
  /** Delete every key in Redis that is not in the imported entries. */
  replace?: boolean;
  /** Routes per MULTI/EXEC (default 1000). */
  batchSize?: number;
  /** Batches in flight at once (default 8). */
  inFlight?: number;
  /** Skip entries whose stored JSON is already identical (default true): no stream noise. */
  skipUnchanged?: boolean;
  /** Called after each batch with the entries done (written or unchanged) and the total. */
  onProgress?: (done: number, total: number) => void;
}

export interface ImportResult {
  written: number;
  unchanged: number;
  deleted: number;
}

/** Validates one (key, entry); returns the canonical JSON to store, or throws RouteValidationError. */
export function validateEntry(key: string, value: unknown): string {
  const errs = entryErrors(key, value);
  if (errs.length > 0) throw new RouteValidationError(errs);
  const json = JSON.stringify(value);
  if (json.length > MAX_ENTRY_CHARS) throw new RouteValidationError([`route ${JSON.stringify(key)}: entry of ${json.length} characters, more than ${MAX_ENTRY_CHARS}`]);
  return json;
}

function entryErrors(key: string, value: unknown): string[] {
  const k = parseRouteKey(key);
  if ("error" in k) return [`route ${JSON.stringify(key)}: invalid key: ${k.error}`];
  const r = parseRoute(key, value);
  return r.ok ? [] : r.errors;
}

/** The Redis Function library (src/routing/sources/didgate.lua), or undefined if not found. */
export function functionLibrarySource(): string | undefined {
  const candidates = [
    new URL("./didgate.lua", import.meta.url),
    // Compiled: dist/src/routing/sources/ → the source tree.
    new URL("../../../../src/routing/sources/didgate.lua", import.meta.url),
  ];
  for (const u of candidates) {
    try {
      return readFileSync(fileURLToPath(u), "utf8");
    } catch {
      // try the next one
    }
  }
  return undefined;
}

/**
 * FUNCTION LOAD REPLACE of the didgate library (on every master for Cluster). Returns the error
 * text when it could not be loaded (Redis < 7, ACL, library file missing), or "" on success.
 */
export async function loadFunctionLibrary(client: RedisClient): Promise<string> {
  const code = functionLibrarySource();
  if (code === undefined) return "didgate.lua not found next to the code";
  try {
    if ("nodes" in client && typeof client.nodes === "function") {
      await Promise.all(client.nodes("master").map((n) => n.call("FUNCTION", "LOAD", "REPLACE", code)));
    } else {
      await client.call("FUNCTION", "LOAD", "REPLACE", code);
    }
    return "";
  } catch (err) {
    return errMessage(err);
  }
}

export class RedisRouteWriter {
  readonly keys: RouteKeys;
  private readonly maxlen: string;

  constructor(
    readonly client: RedisClient,
    opts: WriterOptions,
  ) {
    this.keys = routeKeys(opts.prefix);
    this.maxlen = String(opts.streamMaxlen);
    if ("nodes" in client && !hasHashTag(opts.prefix)) {
      throw new Error(`Redis Cluster needs a key prefix with a hash tag, like "{didgate}:" (got ${JSON.stringify(opts.prefix)}), so that the routes hash and the change stream share a slot`);
    }
  }

  /** Validates and writes one route. Returns the change's stream id. */
  async set(key: string, value: unknown): Promise<string> {
    const json = validateEntry(key, value);
    const res = await this.client
      .multi()
      .hset(this.keys.routes, key, json)
      .xadd(this.keys.changes, "MAXLEN", "~", this.maxlen, "*", "op", "set", "key", key, "route", json)
      .exec();
    return execResult(res, 1) as string;
  }

  /** Deletes one route (a change entry is appended even when the key was absent). */
  async del(key: string): Promise<{ id: string; existed: boolean }> {
    const k = parseRouteKey(key);
    if ("error" in k) throw new RouteValidationError([`route ${JSON.stringify(key)}: invalid key: ${k.error}`]);
    const res = await this.client
      .multi()
      .hdel(this.keys.routes, key)
      .xadd(this.keys.changes, "MAXLEN", "~", this.maxlen, "*", "op", "del", "key", key)
      .exec();
    const existed = Number(execResult(res, 0)) > 0;
    return { id: execResult(res, 1) as string, existed };
  }

  /** Validates and writes one outbound entry (destination prefix to carriers). */
  async setOutbound(key: string, value: unknown): Promise<string> {
    const r = parseOutbound(key, value);
    if (!r.ok) throw new RouteValidationError(r.errors);
    const json = JSON.stringify(value);
    const res = await this.client
      .multi()
      .hset(this.keys.outbound, key, json)
      .xadd(this.keys.changes, "MAXLEN", "~", this.maxlen, "*", "op", "oset", "key", key, "outbound", json)
      .exec();
    return execResult(res, 1) as string;
  }

  /** Deletes one outbound entry. */
  async delOutbound(key: string): Promise<{ id: string; existed: boolean }> {
    const k = parseRouteKey(key);
    if ("error" in k) throw new RouteValidationError([`outbound ${JSON.stringify(key)}: invalid key: ${k.error}`]);
    const res = await this.client
      .multi()
      .hdel(this.keys.outbound, key)
      .xadd(this.keys.changes, "MAXLEN", "~", this.maxlen, "*", "op", "odel", "key", key)
      .exec();
    return { id: execResult(res, 1) as string, existed: Number(execResult(res, 0)) > 0 };
  }

  /**
   * Writes a whole outbound table (validated first; one MULTI: the table is small). With
   * `replace`, entries not in `entries` are deleted.
   */
  async importOutbound(entries: readonly (readonly [string, unknown])[], replace: boolean): Promise<{ written: number; deleted: number }> {
    const errors: string[] = [];
    for (const [k, v] of entries) {
      const r = parseOutbound(k, v);
      if (!r.ok) errors.push(...r.errors);
    }
    if (errors.length > 0) throw new RouteValidationError(errors);
    const keep = new Set(entries.map(([k]) => k));
    const old = replace ? (await this.exportOutbound()).entries.map(([k]) => k).filter((k) => !keep.has(k)) : [];
    const m = this.client.multi();
    for (const [k, v] of entries) {
      const json = JSON.stringify(v);
      m.hset(this.keys.outbound, k, json).xadd(this.keys.changes, "MAXLEN", "~", this.maxlen, "*", "op", "oset", "key", k, "outbound", json);
    }
    for (const k of old) m.hdel(this.keys.outbound, k).xadd(this.keys.changes, "MAXLEN", "~", this.maxlen, "*", "op", "odel", "key", k);
    if (entries.length + old.length > 0) execResult(await m.exec(), 0);
    return { written: entries.length, deleted: old.length };
  }

  /** Every valid outbound entry, sorted by key, and the errors of the others. */
  async exportOutbound(): Promise<{ entries: [string, Record<string, unknown>][]; errors: string[] }> {
    const entries: [string, Record<string, unknown>][] = [];
    const errors: string[] = [];
    let cursor = "0";
    do {
      const [next, flat] = await this.client.hscan(this.keys.outbound, cursor, "COUNT", 10_000);
      cursor = next;
      for (let i = 0; i + 1 < flat.length; i += 2) {
        const r = parseOutboundJson(flat[i]!, flat[i + 1]!);
        if (r.ok) entries.push([flat[i]!, r.entry.source as Record<string, unknown>]);
        else errors.push(...r.errors);
      }
    } while (cursor !== "0");
    entries.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
    return { entries, errors };
  }

  /** Asks every running edge to reload the whole table (force: past the shrink guard). */
  async requestReload(force: boolean): Promise<string> {
    return (await this.client.xadd(this.keys.changes, "MAXLEN", "~", this.maxlen, "*", "op", "reload", "force", force ? "1" : "0")) as string;
  }

  /**
   * Validates every entry, then writes them in pipelined MULTI batches. With `replace`, keys in
   * Redis that are not among the entries are deleted afterwards (also with change entries).
   * Nothing is written when any entry is invalid.
   */
  async import(entries: Iterable<readonly [string, unknown]>, opts: ImportOptions = {}): Promise<ImportResult> {
    const batchSize = opts.batchSize ?? 1000;
    const inFlight = opts.inFlight ?? 8;
    const skipUnchanged = opts.skipUnchanged ?? true;
    const keys: string[] = [];
    const jsons: string[] = [];
    const errors: string[] = [];
    const seen = new Map<string, number>();
    for (const [key, value] of entries) {
      const errs = entryErrors(key, value);
      if (errs.length > 0) {
        for (const e of errs) errors.push(e);
        continue;
      }
      const json = JSON.stringify(value);
      if (json.length > MAX_ENTRY_CHARS) {
        errors.push(`route ${JSON.stringify(key)}: entry of ${json.length} characters, more than ${MAX_ENTRY_CHARS}`);
        continue;
      }
      const at = seen.get(key);
      if (at !== undefined) {
        jsons[at] = json; // later duplicates win
        continue;
      }
      seen.set(key, keys.length);
      keys.push(key);
      jsons.push(json);
    }
    if (errors.length > 0) throw new RouteValidationError(errors);

    const result: ImportResult = { written: 0, unchanged: 0, deleted: 0 };
    const writeBatch = async (from: number, to: number): Promise<void> => {
      let idx: number[] | undefined;
      if (skipUnchanged) {
        const current = await this.client.hmget(this.keys.routes, ...keys.slice(from, to));
        idx = [];
        for (let i = from; i < to; i++) {
          if (current[i - from] === jsons[i]) result.unchanged++;
          else idx.push(i);
        }
        if (idx.length === 0) return;
      }
      const m = this.client.multi();
      const hsetArgs: string[] = [];
      const each = (i: number) => {
        hsetArgs.push(keys[i]!, jsons[i]!);
      };
      if (idx) for (const i of idx) each(i);
      else for (let i = from; i < to; i++) each(i);
      m.hset(this.keys.routes, ...hsetArgs);
      for (let j = 0; j < hsetArgs.length; j += 2) {
        m.xadd(this.keys.changes, "MAXLEN", "~", this.maxlen, "*", "op", "set", "key", hsetArgs[j]!, "route", hsetArgs[j + 1]!);
      }
      execResult(await m.exec(), 0);
      result.written += hsetArgs.length / 2;
    };
    const progress = opts.onProgress;
    const batchAndReport = progress
      ? async (from: number, to: number) => {
          await writeBatch(from, to);
          progress(result.written + result.unchanged, keys.length);
        }
      : writeBatch;
    await runBatches(keys.length, batchSize, inFlight, batchAndReport);

    if (opts.replace) {
      const stale: string[] = [];
      for await (const batch of this.scanKeys()) for (const k of batch) if (!seen.has(k)) stale.push(k);
      await runBatches(stale.length, batchSize, inFlight, async (from, to) => {
        const m = this.client.multi();
        const ks = stale.slice(from, to);
        m.hdel(this.keys.routes, ...ks);
        for (const k of ks) m.xadd(this.keys.changes, "MAXLEN", "~", this.maxlen, "*", "op", "del", "key", k);
        execResult(await m.exec(), 0);
        result.deleted += ks.length;
      });
    }
    return result;
  }

  /** HSCAN of the routes hash: batches of [key, json] pairs. */
  async *scan(count = 10_000): AsyncGenerator<[string, string][]> {
    let cursor = "0";
    do {
      const [next, flat] = await this.client.hscan(this.keys.routes, cursor, "COUNT", count);
      cursor = next;
      const batch: [string, string][] = [];
      for (let i = 0; i + 1 < flat.length; i += 2) batch.push([flat[i]!, flat[i + 1]!]);
      if (batch.length > 0) yield batch;
    } while (cursor !== "0");
  }

  /** HSCAN keys only (NOVALUES needs Redis 7.4; keys are taken from full pairs otherwise). */
  async *scanKeys(count = 10_000): AsyncGenerator<string[]> {
    for await (const batch of this.scan(count)) yield batch.map((p) => p[0]);
  }

  /**
   * Reads every route: valid entries (key, parsed entry JSON) sorted by key, and the errors of the
   * invalid ones (which are left out).
   */
  async exportEntries(): Promise<{ entries: [string, Record<string, unknown>][]; errors: string[] }> {
    const entries: [string, Record<string, unknown>][] = [];
    const errors: string[] = [];
    for await (const batch of this.scan()) {
      for (const [key, json] of batch) {
        let value: unknown;
        try {
          value = JSON.parse(json);
        } catch (err) {
          errors.push(`route ${JSON.stringify(key)}: not valid JSON (${errMessage(err)})`);
          continue;
        }
        const errs = entryErrors(key, value);
        if (errs.length > 0) errors.push(...errs);
        else entries.push([key, value as Record<string, unknown>]);
      }
    }
    entries.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
    return { entries, errors };
  }
}

/** Value of command i of a MULTI/EXEC result; throws the command's error (or on an aborted EXEC). */
function execResult(res: [Error | null, unknown][] | null, i: number): unknown {
  if (res === null) throw new Error("MULTI/EXEC aborted");
  for (const [err] of res) if (err) throw err;
  return res[i]?.[1];
}

async function runBatches(total: number, batchSize: number, inFlight: number, fn: (from: number, to: number) => Promise<void>): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < total) {
      const from = next;
      const to = Math.min(total, from + batchSize);
      next = to;
      await fn(from, to);
    }
  };
  const workers: Promise<void>[] = [];
  for (let i = 0; i < inFlight; i++) workers.push(worker());
  await Promise.all(workers);
}
