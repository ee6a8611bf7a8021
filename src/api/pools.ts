/**
 * Masking pools on the API listener: GET /v1/pools, GET|PUT|DELETE /v1/pools/{name}. Pools from
 * the config file (masking.pools) are read-only here: the file is their source. A tenant token
 * sees and changes only its tenant's pools, with numbers inside its number blocks. With Redis,
 * a change reaches every edge within a couple of seconds (the edges poll a version key).
 */
import type { FastifyInstance } from "fastify";
import type { SessionStore } from "../masking/sessions.js";
import { errMessage } from "../util/errors.js";
import { checkPoolAgainst, checkPoolInput, POOL_NAME, type PoolRefusal } from "../masking/pools.js";
import { keyInBlocks } from "./auth.js";
import { ApiError } from "./errors.js";
import { ERROR_SCHEMA } from "./server.js";

export interface PoolsApiOptions {
  store: SessionStore;
  /** Names of the pools of the config file (not changed through the API). */
  configPools: ReadonlySet<string>;
  /** Most pools in all (config and API). */
  maxPools: number;
  /** Most numbers in one pool. */
  maxNumbers: number;
}

const errors = (...codes: number[]) => Object.fromEntries(codes.map((c) => [c, ERROR_SCHEMA]));
const nameParams = { type: "object", properties: { name: { type: "string" } }, required: ["name"] } as const;
const poolSchema = {
  type: "object",
  properties: {
    name: { type: "string" },
    tenant: { type: "string" },
    numbers: { type: "array", items: { type: "string" } },
    source: { type: "string", enum: ["config", "api"] },
  },
} as const;

export function registerPoolsApi(app: FastifyInstance, o: PoolsApiOptions): void {
  const storeDown = (err: unknown) => new ApiError(503, "redis_unavailable", `the pool store did not answer: ${errMessage(err)}`, { retryAfterS: 1 });
  const source = (name: string) => (o.configPools.has(name) ? "config" : "api");
  const visible = (tenant: string | undefined, poolTenant: string) => tenant === undefined || tenant === poolTenant;
  const fresh = async () => {
    try {
      await o.store.refreshPools();
    } catch (err) {
      throw storeDown(err);
    }
  };
  const find = (name: string, tenant: string | undefined) => {
    const p = POOL_NAME.test(name) ? o.store.poolInfo(name) : undefined;
    if (p === undefined || !visible(tenant, p.tenant)) throw new ApiError(404, "not_found", `no masking pool ${JSON.stringify(name.slice(0, 64))}`);
    return p;
  };

  app.get(
    "/v1/pools",
    {
      schema: {
        summary: "List the masking pools (a tenant token: its own)",
        tags: ["masking"],
        response: { 200: { type: "object", properties: { pools: { type: "array", items: { type: "object", properties: { name: { type: "string" }, tenant: { type: "string" }, numbers: { type: "integer" }, source: { type: "string" } } } } } }, ...errors(401, 429, 503) },
      },
    },
    async (req) => {
      await fresh();
      const t = req.principal.tenant;
      const pools = o.store.poolList().filter((p) => visible(t, p.tenant)).sort((a, b) => a.name.localeCompare(b.name));
      return { pools: pools.map((p) => ({ name: p.name, tenant: p.tenant, numbers: p.numbers.length, source: source(p.name) })) };
    },
  );

  app.get<{ Params: { name: string } }>(
    "/v1/pools/:name",
    { schema: { summary: "Read a masking pool and its numbers", tags: ["masking"], params: nameParams, response: { 200: poolSchema, ...errors(401, 404, 429, 503) } } },
    async (req) => {
      await fresh();
      const p = find(req.params.name, req.principal.tenant);
      return { name: p.name, tenant: p.tenant, numbers: [...p.numbers].sort(), source: source(p.name) };
    },
  );

  app.put<{ Params: { name: string }; Body: { tenant?: string; numbers: string[] } }>(
    "/v1/pools/:name",
    {
      schema: {
        summary: "Create or replace a masking pool (not one of the config file)",
        tags: ["masking"],
        params: nameParams,
        body: {
          type: "object",
          required: ["numbers"],
          additionalProperties: false,
          properties: {
            tenant: { type: "string", minLength: 1, maxLength: 128, description: "The pool's tenant (an admin token must give it; a tenant token may only give its own)" },
            numbers: { type: "array", minItems: 1, items: { type: "string" }, description: "E.164 numbers of the pool" },
          },
        },
        response: { 200: poolSchema, ...errors(400, 401, 403, 409, 422, 429, 503) },
      },
    },
    async (req) => {
      const { name } = req.params;
      const p = req.principal;
      const numbers = [...new Set(req.body.numbers)];
      const refuse = (r: PoolRefusal | undefined) => {
        if (r !== undefined) throw new ApiError(r.status, r.code, r.message);
      };
      refuse(checkPoolInput({ name, numbers, configPools: o.configPools, maxNumbers: o.maxNumbers }));
      const tenant = p.tenant ?? req.body.tenant;
      if (tenant === undefined) throw new ApiError(422, "missing_tenant", "tenant: an admin token must say whose pool this is");
      if (p.tenant !== undefined && req.body.tenant !== undefined && req.body.tenant !== p.tenant) throw new ApiError(403, "forbidden", `a token of tenant ${JSON.stringify(p.tenant)} creates pools of that tenant only`);
      if (p.tenant !== undefined) {
        const outside = numbers.find((n) => !keyInBlocks(n, p.blocks));
        if (outside !== undefined) throw new ApiError(403, "outside_blocks", `${outside} is outside the number blocks of tenant ${JSON.stringify(p.tenant)}`);
      }
      // The check is made against the pools as last loaded, and the write goes through only if no
      // pool changed since (on any edge); otherwise the pools are loaded again and checked again:
      // two requests checked against the same pools cannot both take one name or one number.
      for (let attempt = 0; attempt < 5; attempt++) {
        await fresh();
        const seen = o.store.poolsVersionSeen();
        refuse(checkPoolAgainst({ name, tenant, numbers, pools: o.store.poolList(), configPools: o.configPools, maxPools: o.maxPools, maxNumbers: o.maxNumbers, visible: (t) => visible(p.tenant, t) }));
        let written: boolean;
        try {
          written = await o.store.setPool(name, tenant, numbers, seen);
        } catch (err) {
          throw storeDown(err);
        }
        if (written) return { name, tenant, numbers: [...numbers].sort(), source: "api" };
      }
      throw new ApiError(503, "busy", "the pools kept changing while this change was checked: try again", { retryAfterS: 1 });
    },
  );

  app.delete<{ Params: { name: string } }>(
    "/v1/pools/:name",
    { schema: { summary: "Delete a masking pool that has no live session", tags: ["masking"], params: nameParams, response: { 204: { type: "null" }, ...errors(401, 404, 409, 429, 503) } } },
    async (req, reply) => {
      await fresh();
      const pool = find(req.params.name, req.principal.tenant);
      if (o.configPools.has(pool.name)) throw new ApiError(409, "pool_in_config", `pool ${pool.name} is defined in the config file (masking.pools): remove it there`);
      let r;
      try {
        r = await o.store.deletePool(pool.name);
      } catch (err) {
        throw storeDown(err);
      }
      if (r === "in_use") throw new ApiError(409, "pool_in_use", `pool ${pool.name} has live sessions: delete them or let them expire first`);
      if (r === "unknown") throw new ApiError(404, "not_found", `no masking pool ${JSON.stringify(pool.name)}`);
      void reply.code(204);
      return null;
    },
  );
}
