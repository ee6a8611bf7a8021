/**
 * Registrar users on the API listener: GET, PUT and DELETE /v1/users/{user} (docs/registrar.md,
 * "Users in Redis"). Users of the config file are shown but read-only; the others live in Redis
 * (routes.redis) as digest HA1s, never as passwords, and no answer carries either. A tenant token
 * sees and changes its tenant's users only (another tenant's user is "not found").
 */
import type { FastifyInstance } from "fastify";
import type { Logger } from "pino";
import { ApiError } from "./errors.js";
import { ERROR_SCHEMA } from "./server.js";
import { errMessage } from "../util/errors.js";
import { USER_NAME as USER } from "../registrar/users.js";

export interface UserView {
  user: string;
  tenant: string;
  caller_id?: string;
  source: "config" | "api";
  updated_at?: string;
}

/** What the API needs of the registrar (src/edge/registrar.ts). */
export interface UsersApiRegistrar {
  readonly userStore: unknown;
  userView(name: string): UserView | undefined;
  /** Every user name (config and Redis), each once. */
  userNames(): Iterable<string>;
  putUser(u: { user: string; tenant: string; password: string; caller_id?: string | undefined }): Promise<{ replaced: boolean } | { taken: string }>;
  deleteUser(name: string): Promise<boolean>;
  syncUsers(): Promise<void>;
}

const E164 = /^\+[1-9]\d{1,14}$/;
const errors = (...codes: number[]) => Object.fromEntries(codes.map((c) => [c, ERROR_SCHEMA]));
const userSchema = {
  type: "object",
  properties: { user: { type: "string" }, tenant: { type: "string" }, caller_id: { type: "string" }, source: { type: "string", enum: ["config", "api"] }, updated_at: { type: "string" } },
} as const;
const params = { type: "object", required: ["user"], properties: { user: { type: "string", minLength: 1, maxLength: 64 } } } as const;

function storeDown(err: unknown): ApiError {
  return new ApiError(503, "redis_unavailable", `the user store did not answer: ${errMessage(err)}`, { retryAfterS: 1 });
}

export function registerUsersApi(app: FastifyInstance, r: UsersApiRegistrar, logger?: Logger): void {
  const visible = (tenant: string | undefined, name: string): UserView => {
    const u = r.userView(name);
    if (u === undefined || (tenant !== undefined && u.tenant !== tenant)) throw new ApiError(404, "not_found", `no registrar user ${JSON.stringify(name.slice(0, 64))}`);
    return u;
  };
  const writable = (): void => {
    if (r.userStore === undefined) throw new ApiError(409, "read_only", "registrar users can be changed through the API only with a Redis route source (routes.redis): change sip.registrar.users in the config file");
  };

  app.get<{ Querystring: { tenant?: string; after?: string; limit?: string } }>(
    "/v1/users",
    {
      schema: {
        summary: "Registrar users by name (no passwords or hashes); a tenant token sees its own",
        tags: ["registrar"],
        querystring: {
          type: "object",
          additionalProperties: false,
          properties: {
            tenant: { type: "string", minLength: 1, maxLength: 128, description: "Only this tenant's users (an admin token); a tenant token sees its own only" },
            after: { type: "string", maxLength: 64, description: "Users whose name sorts after this one (the previous page's next)" },
            limit: { type: "string", pattern: "^[0-9]{1,4}$", description: "Users per page, 1-1000 (default 100)" },
          },
        },
        response: { 200: { type: "object", properties: { users: { type: "array", items: userSchema }, next: { type: "string" } } }, ...errors(400, 401, 429) },
      },
    },
    async (req) => {
      const own = req.principal.tenant;
      const q = req.query;
      if (own !== undefined && q.tenant !== undefined && q.tenant !== own) return { users: [] };
      const tenant = own ?? q.tenant;
      const after = q.after ?? "";
      const limit = q.limit === undefined ? 100 : Number(q.limit);
      if (limit < 1 || limit > 1000) throw new ApiError(400, "bad_request", "limit must be 1 to 1000");
      const names = [...new Set(r.userNames())].filter((n) => n > after).sort();
      const users: UserView[] = [];
      let i = 0;
      for (; i < names.length && users.length < limit; i++) {
        const u = r.userView(names[i]!);
        if (u !== undefined && (tenant === undefined || u.tenant === tenant)) users.push(u);
      }
      return i < names.length ? { users, next: users[users.length - 1]?.user ?? names[i - 1]! } : { users };
    },
  );

  app.get<{ Params: { user: string } }>(
    "/v1/users/:user",
    { schema: { summary: "A registrar user (no password or hash)", tags: ["registrar"], params, response: { 200: userSchema, ...errors(401, 404, 429) } } },
    async (req) => visible(req.principal.tenant, req.params.user),
  );

  app.put<{ Params: { user: string }; Body: { tenant?: string; password: string; caller_id?: string } }>(
    "/v1/users/:user",
    {
      schema: {
        summary: "Create or replace a registrar user kept in Redis (not one of the config file)",
        tags: ["registrar"],
        params,
        body: {
          type: "object",
          required: ["password"],
          additionalProperties: false,
          properties: {
            tenant: { type: "string", minLength: 1, maxLength: 128, description: "The user's tenant (an admin token must give it; a tenant token may only give its own)" },
            password: { type: "string", minLength: 8, maxLength: 256, description: "Digest password (stored only as HA1 for MD5 and SHA-256 of the registrar realm)" },
            caller_id: { type: "string", description: "E.164 number shown on the user's calls when the phone asserts none" },
          },
        },
        response: { 200: userSchema, ...errors(400, 401, 403, 404, 409, 422, 429, 503) },
      },
    },
    async (req) => {
      const name = req.params.user;
      const p = req.principal;
      if (!USER.test(name)) throw new ApiError(422, "invalid_user", "a user name is 1-64 letters, digits and _.!~*'()&=+$,;?/- (a SIP user part)");
      writable();
      const tenant = p.tenant ?? req.body.tenant;
      if (tenant === undefined) throw new ApiError(422, "missing_tenant", "tenant: an admin token must say whose user this is");
      if (p.tenant !== undefined && req.body.tenant !== undefined && req.body.tenant !== p.tenant) throw new ApiError(403, "forbidden", `a token of tenant ${JSON.stringify(p.tenant)} creates users of that tenant only`);
      const cid = req.body.caller_id;
      if (cid !== undefined && !E164.test(cid)) throw new ApiError(422, "invalid_number", `caller_id: ${JSON.stringify(cid.slice(0, 32))} is not an E.164 number like "+15125550100"`);
      await r.syncUsers();
      const old = r.userView(name);
      if (old?.source === "config") throw new ApiError(409, "user_in_config", `user ${name} is defined in the config file (sip.registrar.users): change it there`);
      // a name is one user of one tenant: another tenant's user keeps its name (and is not shown)
      if (old !== undefined && old.tenant !== tenant) throw new ApiError(409, "name_taken", p.tenant === undefined ? `user ${name} belongs to tenant ${JSON.stringify(old.tenant)}` : `user name ${name} is taken`);
      let done: Awaited<ReturnType<typeof r.putUser>>;
      try {
        done = await r.putUser({ user: name, tenant, password: req.body.password, caller_id: cid });
      } catch (err) {
        throw storeDown(err);
      }
      // another tenant created the name since the check above (the store's write checks it again)
      if ("taken" in done) throw new ApiError(409, "name_taken", p.tenant === undefined ? `user ${name} belongs to tenant ${JSON.stringify(done.taken)}` : `user name ${name} is taken`);
      logger?.info({ user: name, tenant, by: p.who, token: p.fingerprint, result: done.replaced ? "replaced" : "created" }, "registrar user changed through the API");
      return r.userView(name)!;
    },
  );

  app.delete<{ Params: { user: string } }>(
    "/v1/users/:user",
    { schema: { summary: "Delete a registrar user kept in Redis, and its registrations", tags: ["registrar"], params, response: { 204: { type: "null" }, ...errors(401, 404, 409, 429, 503) } } },
    async (req, reply) => {
      await r.syncUsers();
      const u = visible(req.principal.tenant, req.params.user);
      if (u.source === "config") throw new ApiError(409, "user_in_config", `user ${u.user} is defined in the config file (sip.registrar.users): remove it there`);
      writable();
      let had;
      try {
        had = await r.deleteUser(u.user);
      } catch (err) {
        throw storeDown(err);
      }
      if (!had) throw new ApiError(404, "not_found", `no registrar user ${JSON.stringify(u.user)}`);
      logger?.info({ user: u.user, tenant: u.tenant, by: req.principal.who, token: req.principal.fingerprint, result: "deleted" }, "registrar user changed through the API");
      void reply.code(204);
      return null;
    },
  );
}
