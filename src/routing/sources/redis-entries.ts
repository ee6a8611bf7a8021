/**
 * Validation of the route entries read from Redis (a full load's HSCAN batches and the change
 * stream's deltas): an invalid entry is skipped, counted by reason and logged with its key, never
 * applied. Identical entry texts share one route object through a small cache, which turns itself
 * off for a load whose entries do not repeat.
 */
import type { Logger } from "pino";
import { parseRouteJson, type Route } from "../route.js";
import { isRouteKey, parseRouteKey } from "../table.js";
import { MAX_ENTRY_CHARS } from "./redis-keys.js";
import type { RedisSyncMetrics, SkipReason } from "./redis-metrics.js";

/** Entries of the JSON text → Route cache (identical entries share one Route). */
const PARSE_CACHE_SIZE = 4096;

/** A load logs its first this many skipped entries one by one, then a summary. */
const LOGGED_PER_LOAD = 100;

export class RedisEntryParser {
  /** Entries skipped since start. */
  skippedInvalid = 0;
  /** Entries skipped in the current (or last) full load. */
  skippedThisLoad = 0;
  /** Skipped entries of the current load by reason (for its summary line). */
  private readonly skippedByReason = new Map<SkipReason, number>();
  /** Small cache JSON text → Route so that identical entries share one value object. */
  private readonly cache = new Map<string, Route>();
  /** Hits of the cache since it was last cleared. */
  private hits = 0;
  /** Whether the cache is used (a full load of distinct entries turns it off until the load ends). */
  caching = true;

  constructor(
    private readonly metrics: RedisSyncMetrics,
    private readonly logger: Logger,
  ) {}

  /** A full load starts: skip counts and the cache reset. */
  beginLoad(): void {
    this.skippedThisLoad = 0;
    this.skippedByReason.clear();
    this.caching = true;
    this.hits = 0;
    this.cache.clear();
  }

  /** The load's scan ended (`failed`: it broke off): deltas use the cache again; the summary of a load that skipped many. */
  endLoad(failed = false): void {
    this.caching = true;
    if (!failed && this.skippedThisLoad > LOGGED_PER_LOAD) {
      this.logger.warn({ skipped: this.skippedThisLoad, logged: LOGGED_PER_LOAD, by_reason: Object.fromEntries(this.skippedByReason) }, "invalid route entries in Redis skipped (only the first 100 logged)");
    }
  }

  /** Validates one entry; undefined (skipped, logged with its key, counted) when invalid. */
  parse(key: string, json: string, phase: "load" | "delta"): Route | undefined {
    if (!isRouteKey(key)) {
      const k = parseRouteKey(key);
      this.skip(phase, key, "invalid_key", [`invalid key: ${"error" in k ? k.error : "malformed"}`]);
      return undefined;
    }
    if (json.length > MAX_ENTRY_CHARS) {
      // Not even parsed: a multi-megabyte entry is never a route (and parsing it costs).
      this.skip(phase, key, "oversized", [`entry of ${json.length} characters, more than ${MAX_ENTRY_CHARS}`]);
      return undefined;
    }
    const cache = this.cache;
    const caching = this.caching;
    let route: Route | undefined;
    if (caching) {
      route = cache.get(json);
      if (route !== undefined) {
        this.hits++;
        return route;
      }
    }
    const r = parseRouteJson(key, json);
    if (!r.ok) {
      this.skip(phase, key, r.notJson ? "not_json" : "invalid_route", r.errors);
      return undefined;
    }
    route = r.route;
    if (caching) {
      if (cache.size >= PARSE_CACHE_SIZE) {
        // A full window with (almost) no repeats: the entries are distinct, and hashing each text
        // costs more than it saves; stop caching for the rest of this load.
        if (phase === "load" && this.hits < PARSE_CACHE_SIZE / 100) this.caching = false;
        this.hits = 0;
        cache.clear();
      }
      if (this.caching) cache.set(json, route);
    }
    return route;
  }

  /**
   * Counts a skipped entry and logs it at warn with its key (cut to 64 characters, with its length:
   * an entry written straight into Redis can have a key of megabytes). A load logs its first 100
   * skipped entries one by one and then a summary with the count by reason.
   */
  skip(phase: "load" | "delta", key: string, reason: SkipReason, errors: string[]): void {
    this.skippedInvalid++;
    this.metrics.invalid.inc({ phase });
    this.metrics.skipped.inc({ reason });
    let quiet = false;
    if (phase === "load") {
      this.skippedByReason.set(reason, (this.skippedByReason.get(reason) ?? 0) + 1);
      quiet = ++this.skippedThisLoad > LOGGED_PER_LOAD;
    }
    if (quiet && !this.logger.isLevelEnabled("debug")) return;
    const fields: Record<string, unknown> = { key: clip(key, 64), reason, errors: errors.slice(0, 5).map((e) => clip(e, 300)), phase };
    if (key.length > 64) fields.key_length = key.length;
    // Past the first 100 of a load, at debug: a Redis full of bad entries must not flood the log.
    if (quiet) this.logger.debug(fields, "invalid route entry in Redis skipped");
    else this.logger.warn(fields, "invalid route entry in Redis skipped");
  }
}

export function clip(s: string, max: number): string {
  return s.length <= max ? s : `${s.slice(0, max)}…`;
}
