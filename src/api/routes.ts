/**
 * The routes API: GET/PUT/DELETE /v1/routes/{key}, GET /v1/routes (paged by key), POST
 * /v1/routes/import (NDJSON or CSV, streamed) and GET /v1/lookup.
 *
 * Reads by key come from Redis when it is configured (the version a client gets is the one an
 * If-Match is checked against), else from the in-memory table; listings and lookups always from
 * the in-memory table. Writes go through Redis (ApiRouteWriter), which every edge tails; without
 * Redis they answer 503. A tenant token sees only entries whose `tenant` is its tenant, writes only
 * those, and creates keys only inside its number blocks.
 */
import type { Readable } from "node:stream";
import type { FastifyInstance, FastifyRequest } from "fastify";
import type { Logger } from "pino";
import { parseRoute, type Route } from "../routing/route.js";
import type { LookupJson } from "../routing/explain.js";
import { parseRouteKey, type RouteStore } from "../routing/table.js";
import { keyInBlocks, type Principal } from "./auth.js";
import { ApiError } from "./errors.js";
import { csvHeader, csvRecord, ndjsonRecord, records, RecordTooLong, type ImportRecord } from "./import.js";
import { KeyIndex } from "./listing.js";
import { ERROR_SCHEMA } from "./server.js";
import { etagOf, type ApiRouteWriter, type ImportItem, type WriteOutcome, type WriteRequest } from "./writer.js";
import { errMessage } from "../util/errors.js";

export interface RoutesApiOptions {
  store: RouteStore<Route>;
  /** undefined: no Redis; writes answer 503 with `readOnlyReason`. */
  writer: ApiRouteWriter | undefined;
  readOnlyReason: string;
  lookup(number: string, caller: string | undefined, atMs: number): { ok: true; json: LookupJson } | { ok: false; error: string };
  logger: Logger;
  now: () => number;
  importMaxBytes: number;
  importTimeoutMs: number;
  /** Listing page-size ceiling (default 1000). */
  maxPageSize?: number;
}

const IMPORT_BATCH = 250;
const IMPORT_PIPELINES = 4;
const IMPORT_MAX_RECORDS = 2_000_000;
const IMPORT_MAX_ERRORS = 1000;
const IMPORT_TYPES = ["application/x-ndjson", "application/ndjson", "application/jsonl", "text/csv"];

const keyParam = {
  type: "object",
  properties: { key: { type: "string", description: 'Route key, URL-encoded: "%2B15125550100", "%2B1512555%2A" or "%2A"' } },
  required: ["key"],
} as const;
const entrySchema = { type: "object", additionalProperties: true, description: "A route entry (state, tenant, voice, sms), as in the routes file" } as const;
const routeAnswer = {
  type: "object",
  properties: { key: { type: "string" }, route: entrySchema, etag: { type: "string" }, result: { type: "string" } },
} as const;
const errors = (...codes: number[]) => Object.fromEntries(codes.map((c) => [c, ERROR_SCHEMA]));

function checkKey(raw: string): string {
  const k = parseRouteKey(raw);
  if ("error" in k) throw new ApiError(400, "invalid_key", `route key ${JSON.stringify(raw.slice(0, 40))}: ${k.error} (URL-encode "+" as %2B and "*" as %2A)`);
  return raw;
}

/** If-Match / If-None-Match to the write script's precondition ("" none, "*", "!" or tags). */
function precondition(req: FastifyRequest): string {
  const im = req.headers["if-match"];
  const inm = req.headers["if-none-match"];
  if (typeof inm === "string" && inm.trim() !== "") {
    if (inm.trim() !== "*") throw new ApiError(400, "bad_request", "only If-None-Match: * (create only) is supported on writes");
    if (typeof im === "string") throw new ApiError(400, "bad_request", "If-Match and If-None-Match together");
    return "!";
  }
  if (typeof im !== "string" || im.trim() === "") return "";
  if (im.trim() === "*") return "*";
  // RFC 9110 13.1.1: If-Match compares strongly; a weak tag never matches.
  const tags: string[] = [];
  for (const part of im.split(",")) {
    const m = /^\s*"([0-9a-f]{40})"\s*$/.exec(part);
    if (m) tags.push(m[1]!);
  }
  return tags.length > 0 ? tags.slice(0, 16).join(",") : "never";
}

export function registerRoutesApi(app: FastifyInstance, o: RoutesApiOptions): KeyIndex {
  const index = new KeyIndex(o.store, o.now);
  const maxPage = o.maxPageSize ?? 1000;
  const log = o.logger.child({ component: "api" });

  const writer = (): ApiRouteWriter => {
    if (!o.writer) throw new ApiError(503, "read_only", o.readOnlyReason);
    return o.writer;
  };
  const redisDown = (err: unknown): never => {
    if (err instanceof ApiError) throw err;
    throw new ApiError(503, "redis_unavailable", `Redis did not take the write: ${errMessage(err)}`, { retryAfterS: 1 });
  };
  const audit = (p: Principal, op: string, key: string, out: WriteOutcome) => {
    if (out.result !== "created" && out.result !== "updated" && out.result !== "deleted") return;
    log.info({ audit: { who: p.who, token: p.fingerprint, op, key, before: out.before || null, after: out.after || null, change: out.changeId } }, "route changed through the API");
  };
  const visible = (p: Principal, tenant: unknown) => p.tenant === undefined || tenant === p.tenant;

  /** The entry a tenant token asks to write: its tenant filled in, another tenant refused. */
  const entryFor = (p: Principal, key: string, body: unknown): { value: Record<string, unknown>; json: string } => {
    if (typeof body !== "object" || body === null || Array.isArray(body)) throw new ApiError(422, "invalid_route", `route ${JSON.stringify(key)}: entry must be a JSON object`);
    let value = body as Record<string, unknown>;
    if (p.tenant !== undefined) {
      if (value.tenant === undefined) value = { ...value, tenant: p.tenant };
      else if (value.tenant !== p.tenant) throw new ApiError(403, "forbidden", `a token of tenant ${JSON.stringify(p.tenant)} cannot write entries of tenant ${JSON.stringify(value.tenant)}`);
    }
    const r = parseRoute(key, value);
    if (!r.ok) throw new ApiError(422, "invalid_route", r.errors[0]!, { errors: r.errors });
    return { value, json: JSON.stringify(value) };
  };

  const writeRequest = (p: Principal, op: "set" | "del", key: string, expect: string, json?: string): WriteRequest => ({
    op,
    key,
    ...(json !== undefined ? { json } : {}),
    expect,
    tenant: p.tenant ?? "",
    mayCreate: p.tenant === undefined || keyInBlocks(key, p.blocks),
    who: p.who,
    fingerprint: p.fingerprint,
  });

  const refusal = (p: Principal, key: string, out: WriteOutcome): ApiError | undefined => {
    switch (out.result) {
      case "precondition":
        return new ApiError(412, "precondition_failed", out.current ? `route ${key} has changed: its version is now "${out.current}"` : `route ${key} does not exist`);
      case "foreign":
        return new ApiError(403, "forbidden", `route ${key} belongs to another tenant than ${JSON.stringify(p.tenant)}`);
      case "outside":
        return new ApiError(403, "outside_blocks", `route ${key} is outside the number blocks of tenant ${JSON.stringify(p.tenant)} (config: ${p.blocks.length ? p.blocks.join(", ") : "none"}; and not in the tenant's blocks in Redis)`);
      case "absent":
        return new ApiError(404, "not_found", `no route ${key}`);
      default:
        return undefined;
    }
  };

  // ---- GET /v1/routes/{key} ----
  app.get<{ Params: { key: string } }>(
    "/v1/routes/:key",
    { schema: { summary: "Read one route entry", tags: ["routes"], params: keyParam, response: { 200: routeAnswer, ...errors(400, 401, 404, 429) } } },
    async (req, reply) => {
      const key = checkKey(req.params.key);
      let json: string | undefined;
      let fromRedis = false;
      if (o.writer) {
        try {
          json = await o.writer.get(key);
          fromRedis = true;
        } catch {
          // Redis unreachable: answer from the table this edge routes by.
        }
      }
      let value: unknown;
      if (!fromRedis) {
        const r = o.store.current.get(key);
        if (r !== undefined) {
          value = r.source;
          json = JSON.stringify(r.source);
        }
      } else if (json !== undefined) {
        try {
          value = JSON.parse(json);
        } catch {
          value = null;
        }
      }
      const tenant = value !== null && typeof value === "object" ? (value as Record<string, unknown>).tenant : undefined;
      if (json === undefined || !visible(req.principal, tenant)) throw new ApiError(404, "not_found", `no route ${key}`);
      const etag = etagOf(json);
      void reply.header("etag", `"${etag}"`);
      if (!fromRedis && o.writer) void reply.header("warning", '110 - "Redis unreachable: answered from this edge\'s table"');
      return { key, route: value, etag };
    },
  );

  // ---- PUT /v1/routes/{key} ----
  app.put<{ Params: { key: string }; Body: unknown }>(
    "/v1/routes/:key",
    {
      schema: {
        summary: "Create or replace one route entry",
        description: "Written to Redis (the routes hash and the change stream, atomically), so every edge applies it. If-Match with the ETag makes the write conditional (412 when the entry changed); If-None-Match: * creates only.",
        tags: ["routes"],
        params: keyParam,
        body: entrySchema,
        headers: { type: "object", properties: { "if-match": { type: "string" }, "if-none-match": { type: "string" } } },
        response: { 200: routeAnswer, 201: routeAnswer, ...errors(400, 401, 403, 412, 422, 429, 503) },
      },
    },
    async (req, reply) => {
      const key = checkKey(req.params.key);
      const p = req.principal;
      const expect = precondition(req);
      const { value, json } = entryFor(p, key, req.body);
      const w = writer();
      const out = await w.write(writeRequest(p, "set", key, expect, json)).catch(redisDown);
      const no = refusal(p, key, out);
      if (no) throw no;
      audit(p, "set", key, out);
      const etag = etagOf(json);
      void reply.header("etag", `"${etag}"`);
      return reply.code(out.result === "created" ? 201 : 200).send({ key, route: value, etag, result: out.result });
    },
  );

  // ---- DELETE /v1/routes/{key} ----
  app.delete<{ Params: { key: string } }>(
    "/v1/routes/:key",
    {
      schema: {
        summary: "Delete one route entry",
        tags: ["routes"],
        params: keyParam,
        headers: { type: "object", properties: { "if-match": { type: "string" } } },
        response: { 200: { type: "object", properties: { key: { type: "string" }, result: { type: "string" }, etag: { type: "string" } } }, ...errors(400, 401, 403, 404, 412, 429, 503) },
      },
    },
    async (req) => {
      const key = checkKey(req.params.key);
      const p = req.principal;
      const expect = precondition(req);
      if (expect === "!") throw new ApiError(400, "bad_request", "If-None-Match is not meaningful on DELETE");
      const out = await writer().write(writeRequest(p, "del", key, expect)).catch(redisDown);
      // A tenant learns nothing about keys that are not its own.
      if (out.result === "foreign" || out.result === "outside") throw new ApiError(404, "not_found", `no route ${key}`);
      const no = refusal(p, key, out);
      if (no) throw no;
      audit(p, "del", key, out);
      return { key, result: "deleted", etag: out.result === "deleted" ? out.before : "" };
    },
  );

  // ---- GET /v1/routes ----
  app.get<{ Querystring: { prefix?: string; cursor?: string; limit?: string } }>(
    "/v1/routes",
    {
      schema: {
        summary: "List route entries in key order",
        description: 'prefix is a string prefix of the key ("+1512" lists "+1512*", "+15125550100", …; URL-encode "+" as %2B). Pages are stable: pass next_cursor as cursor. A page may hold fewer than limit items and still have a next_cursor.',
        tags: ["routes"],
        querystring: {
          type: "object",
          properties: { prefix: { type: "string", maxLength: 17 }, cursor: { type: "string", maxLength: 64 }, limit: { type: "string", pattern: "^[0-9]{1,5}$" } },
        },
        response: {
          200: {
            type: "object",
            properties: {
              items: { type: "array", items: { type: "object", properties: { key: { type: "string" }, route: entrySchema } } },
              next_cursor: { type: ["string", "null"] },
            },
          },
          ...errors(400, 401, 429),
        },
      },
    },
    async (req) => {
      let prefix = req.query.prefix ?? "";
      // A "+" left unencoded in a query string arrives as a space.
      if (prefix.startsWith(" ")) prefix = "+" + prefix.slice(1);
      if (/^\d/.test(prefix)) prefix = "+" + prefix;
      if (!/^(\*|\+\d{0,15}\*?)?$/.test(prefix)) throw new ApiError(400, "bad_request", `prefix ${JSON.stringify(prefix)}: must be the start of a route key, like "+1512" (URL-encoded %2B1512)`);
      const limit = req.query.limit === undefined ? 100 : Number(req.query.limit);
      if (!(limit >= 1 && limit <= maxPage)) throw new ApiError(400, "bad_request", `limit must be from 1 to ${maxPage}`);
      let after: string | undefined;
      if (req.query.cursor) {
        after = Buffer.from(req.query.cursor, "base64url").toString("utf8");
        if ("error" in parseRouteKey(after)) throw new ApiError(400, "invalid_cursor", "cursor is not one this API gave out");
      }
      const p = req.principal;
      const page = index.page(prefix, after, limit, (r) => visible(p, r.tenant));
      return {
        items: page.items.map(([key, r]) => ({ key, route: r.source })),
        next_cursor: page.next === undefined ? null : Buffer.from(page.next, "utf8").toString("base64url"),
      };
    },
  );

  // ---- POST /v1/routes/import ----
  void app.register(async (scope) => {
    // The body is read as a stream by the handler, not buffered by fastify.
    scope.addContentTypeParser(IMPORT_TYPES, (_req, payload, done) => done(null, payload));
    scope.post(
      "/v1/routes/import",
      {
        handlerTimeout: o.importTimeoutMs,
        // The body is a stream, checked line by line by the handler.
        validatorCompiler: () => () => true,
        schema: {
          summary: "Import route entries (NDJSON or CSV), streamed",
          description:
            'NDJSON (Content-Type: application/x-ndjson): one {"key": "+1…", "route": {…}} per line. CSV (text/csv): a header row with key and either json or the flat columns state, tenant, targets, failover_on, ring_timeout_s, webhook, smpp. Good entries are written even when others are bad; every bad line is reported (up to 1000). Later lines win for a key given twice.',
          tags: ["routes"],
          consumes: IMPORT_TYPES,
          body: { type: "string", description: "NDJSON or CSV text" },
          response: {
            200: {
              type: "object",
              properties: {
                lines: { type: "integer" },
                created: { type: "integer" },
                updated: { type: "integer" },
                unchanged: { type: "integer" },
                failed: { type: "integer" },
                errors: { type: "array", items: { type: "object", properties: { line: { type: "integer" }, key: { type: "string" }, message: { type: "string" } } } },
                errors_truncated: { type: "boolean" },
              },
            },
            ...errors(400, 401, 413, 415, 429, 503),
          },
        },
      },
      async (req, reply) => {
        const w = writer();
        const p = req.principal;
        const csv = (req.headers["content-type"] ?? "").toLowerCase().startsWith("text/csv");
        const body = req.body as Readable;
        const maxBytes = o.importMaxBytes;
        let bytes = 0;
        async function* limited(): AsyncGenerator<Buffer> {
          for await (const chunk of body as AsyncIterable<Buffer>) {
            bytes += chunk.length;
            if (bytes > maxBytes) throw new ApiError(413, "payload_too_large", `the import body is larger than ${maxBytes} bytes (api.import_max_bytes)`);
            yield chunk;
          }
        }
        const res = { lines: 0, created: 0, updated: 0, unchanged: 0, failed: 0, errors: [] as { line: number; key?: string; message: string }[], errors_truncated: false };
        const fail = (line: number, key: string | undefined, message: string) => {
          res.failed++;
          if (res.errors.length < IMPORT_MAX_ERRORS) res.errors.push(key !== undefined ? { line, key, message } : { line, message });
          else res.errors_truncated = true;
        };
        let batch: ImportItem[] = [];
        let batchLines: ImportRecord[] = [];
        // Several calls in flight: they go out on one connection in order, so Redis applies them
        // in line order (a key given twice ends with its last line).
        const inFlight: Promise<void>[] = [];
        const flush = async (all: boolean) => {
          if (batch.length > 0) {
            const lines = batchLines;
            const sent = w.importMany(batch, { tenant: p.tenant ?? "", who: p.who, fingerprint: p.fingerprint }).then((outs) => {
              outs.forEach((out, i) => {
                const rec = lines[i]!;
                if (out === "created") res.created++;
                else if (out === "updated") res.updated++;
                else if (out === "unchanged") res.unchanged++;
                else fail(rec.line, rec.key, refusal(p, rec.key!, { result: out })?.message ?? out);
              });
            });
            sent.catch(() => undefined); // awaited below; never an unhandled rejection meanwhile
            inFlight.push(sent);
            batch = [];
            batchLines = [];
          }
          while (inFlight.length > (all ? 0 : IMPORT_PIPELINES - 1)) await inFlight.shift()!.catch(redisDown);
        };
        let cols: Map<string, number> | undefined;
        try {
          for await (const { line, text } of records(limited(), csv)) {
            let rec: ImportRecord | undefined;
            if (csv && cols === undefined) {
              if (text.trim() === "") continue;
              const h = csvHeader(text);
              if ("error" in h) throw new ApiError(400, "bad_request", `line ${line}: ${h.error}`);
              cols = h.cols;
              continue;
            }
            rec = csv ? csvRecord(line, text, cols!) : ndjsonRecord(line, text);
            if (rec === undefined) continue;
            if (++res.lines > IMPORT_MAX_RECORDS) throw new ApiError(413, "payload_too_large", `more than ${IMPORT_MAX_RECORDS} entries in one import`);
            if (rec.error !== undefined) {
              fail(line, rec.key, rec.error);
              continue;
            }
            const key = rec.key!;
            const k = parseRouteKey(key);
            if ("error" in k) {
              fail(line, key, `route ${JSON.stringify(key)}: invalid key: ${k.error}`);
              continue;
            }
            let json: string;
            try {
              json = entryFor(p, key, rec.value).json;
            } catch (err) {
              fail(line, key, errMessage(err));
              continue;
            }
            batch.push({ key, json, mayCreate: p.tenant === undefined || keyInBlocks(key, p.blocks) });
            batchLines.push(rec);
            if (batch.length >= IMPORT_BATCH) await flush(false);
          }
          await flush(true);
        } catch (err) {
          // The rest of the body is not read: close the connection after answering.
          void reply.header("connection", "close");
          if (err instanceof RecordTooLong) throw new ApiError(413, "payload_too_large", err.message);
          throw err;
        }
        res.errors.sort((x, y) => x.line - y.line);
        if (res.created + res.updated > 0 || res.failed > 0) {
          log.info(
            { audit: { who: p.who, token: p.fingerprint, op: "import", lines: res.lines, created: res.created, updated: res.updated, unchanged: res.unchanged, failed: res.failed } },
            "routes imported through the API",
          );
        }
        return res;
      },
    );
  });

  // ---- GET /v1/lookup ----
  app.get<{ Querystring: { number: string; caller?: string; at?: string } }>(
    "/v1/lookup",
    {
      schema: {
        summary: "The routing decision for a number (as GET /v1/lookup on the admin listener)",
        tags: ["routes"],
        querystring: {
          type: "object",
          properties: { number: { type: "string", minLength: 1, maxLength: 40 }, caller: { type: "string", maxLength: 40 }, at: { type: "string", maxLength: 40, description: "ISO 8601 time" } },
          required: ["number"],
        },
        response: { 200: { type: "object", additionalProperties: true }, ...errors(400, 401, 403, 429) },
      },
    },
    async (req) => {
      let atMs = o.now();
      if (req.query.at) {
        atMs = Date.parse(req.query.at);
        if (!Number.isFinite(atMs)) throw new ApiError(400, "bad_request", `at ${JSON.stringify(req.query.at)} is not an ISO 8601 time`);
      }
      const plus = (s: string) => (s.startsWith(" ") ? "+" + s.slice(1) : s);
      const r = o.lookup(plus(req.query.number), req.query.caller === undefined ? undefined : plus(req.query.caller), atMs);
      if (!r.ok) throw new ApiError(400, "invalid_number", r.error);
      const p = req.principal;
      if (p.tenant !== undefined && r.json.outcome !== "not_found" && r.json.tenant !== p.tenant) {
        throw new ApiError(403, "forbidden", `the number is routed by an entry of another tenant than ${JSON.stringify(p.tenant)}`);
      }
      return r.json;
    },
  );

  return index;
}
