/**
 * Masking sessions on the API listener: POST /v1/sessions, GET and DELETE /v1/sessions/{id}.
 * A tenant token creates sessions only on its tenant's pools and sees only its sessions.
 */
import type { FastifyInstance } from "fastify";
import type { MaskingMetrics } from "../masking/metrics.js";
import type { MaskSession, SessionStore } from "../masking/sessions.js";
import { ApiError } from "./errors.js";
import { ERROR_SCHEMA } from "./server.js";
import { errMessage } from "../util/errors.js";

export interface SessionsApiOptions {
  store: SessionStore;
  /** Pool name -> tenant (config and Redis). */
  poolTenant(name: string): string | undefined;
  maxTtlS: number;
  metrics?: MaskingMetrics;
}

const E164 = /^\+[1-9]\d{1,14}$/;
const errors = (...codes: number[]) => Object.fromEntries(codes.map((c) => [c, ERROR_SCHEMA]));
const sessionSchema = {
  type: "object",
  properties: {
    id: { type: "string" },
    proxy: { type: "string" },
    expires_at: { type: "string" },
    a: { type: "string" },
    b: { type: "string" },
    pool: { type: "string" },
    tenant: { type: "string" },
  },
} as const;

function answer(s: MaskSession): Record<string, string> {
  return { id: s.id, proxy: s.proxy, expires_at: new Date(s.expiresAt).toISOString(), a: s.a, b: s.b, pool: s.pool, tenant: s.tenant };
}

export function registerSessionsApi(app: FastifyInstance, o: SessionsApiOptions): void {
  app.post<{ Body: { a: string; b: string; ttl_s?: number; pool: string } }>(
    "/v1/sessions",
    {
      schema: {
        summary: "Create a masking session: a and b reach each other through a proxy number of the pool",
        tags: ["masking"],
        body: {
          type: "object",
          required: ["a", "b", "pool"],
          additionalProperties: false,
          properties: {
            a: { type: "string", description: "E.164 number of one party" },
            b: { type: "string", description: "E.164 number of the other party" },
            ttl_s: { type: "integer", minimum: 1, description: "Lifetime in seconds (default 3600)" },
            pool: { type: "string", description: "Pool the proxy number comes from" },
          },
        },
        response: { 201: sessionSchema, ...errors(400, 401, 403, 404, 409, 422, 429, 503) },
      },
    },
    async (req, reply) => {
      const { a, b, pool } = req.body;
      const ttl = req.body.ttl_s ?? 3600;
      if (!E164.test(a)) throw new ApiError(422, "invalid_number", `a: ${JSON.stringify(a.slice(0, 32))} is not an E.164 number like "+15125550100"`);
      if (!E164.test(b)) throw new ApiError(422, "invalid_number", `b: ${JSON.stringify(b.slice(0, 32))} is not an E.164 number like "+15125550100"`);
      if (ttl > o.maxTtlS) throw new ApiError(422, "invalid_ttl", `ttl_s must be at most ${o.maxTtlS} (masking.max_ttl_s)`);
      const tenant = o.poolTenant(pool);
      if (tenant === undefined) throw new ApiError(404, "unknown_pool", `no masking pool ${JSON.stringify(pool.slice(0, 64))}`);
      const p = req.principal;
      if (p.tenant !== undefined && p.tenant !== tenant) throw new ApiError(403, "forbidden", `pool ${pool} belongs to another tenant than ${JSON.stringify(p.tenant)}`);
      let r;
      try {
        r = await o.store.create(pool, a, b, ttl * 1000);
      } catch (err) {
        throw new ApiError(503, "redis_unavailable", `the session store did not answer: ${errMessage(err)}`, { retryAfterS: 1 });
      }
      if (!r.ok) {
        o.metrics?.allocations.inc({ pool, result: r.code });
        if (r.code === "same_party") throw new ApiError(422, "same_party", "a and b are the same number");
        if (r.code === "party_is_proxy") throw new ApiError(422, "party_is_proxy", "a or b is a number of a masking pool");
        if (r.code === "unknown_pool") throw new ApiError(404, "unknown_pool", `no masking pool ${JSON.stringify(pool)}`);
        throw new ApiError(409, "pool_exhausted", `every number of pool ${pool} already has a session with ${a} or ${b}`);
      }
      o.metrics?.allocations.inc({ pool, result: "created" });
      void reply.code(201);
      return answer(r.session);
    },
  );

  const find = async (id: string, tenant: string | undefined): Promise<MaskSession> => {
    if (!/^ses_[A-Za-z0-9_-]{1,64}$/.test(id)) throw new ApiError(404, "not_found", "no such session");
    let s: MaskSession | null;
    try {
      s = await o.store.get(id);
    } catch (err) {
      throw new ApiError(503, "redis_unavailable", `the session store did not answer: ${errMessage(err)}`, { retryAfterS: 1 });
    }
    if (s === null || (tenant !== undefined && s.tenant !== tenant)) throw new ApiError(404, "not_found", "no such session");
    return s;
  };

  app.get<{ Params: { id: string } }>(
    "/v1/sessions/:id",
    { schema: { summary: "Read a masking session", tags: ["masking"], params: { type: "object", properties: { id: { type: "string" } }, required: ["id"] }, response: { 200: sessionSchema, ...errors(401, 404, 429, 503) } } },
    async (req) => answer(await find(req.params.id, req.principal.tenant)),
  );

  app.delete<{ Params: { id: string } }>(
    "/v1/sessions/:id",
    { schema: { summary: "End a masking session now", tags: ["masking"], params: { type: "object", properties: { id: { type: "string" } }, required: ["id"] }, response: { 204: { type: "null" }, ...errors(401, 404, 429, 503) } } },
    async (req, reply) => {
      const s = await find(req.params.id, req.principal.tenant);
      await o.store.delete(s.id);
      void reply.code(204);
      return null;
    },
  );
}
