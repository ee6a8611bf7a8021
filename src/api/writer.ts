/**
 * Conditional route writes for the API: one Lua script reads the current entry, checks the
 * caller's precondition (If-Match / If-None-Match on the entry's version, the tenant owning it, the
 * tenant's number blocks), then writes the routes hash, its change-stream entry and an audit
 * stream entry, all in one atomic step. Every edge tails the change stream, so a write here is
 * applied everywhere exactly as a `didgate routes set` is (same keys and fields as
 * RedisRouteWriter, whose validation and key names this reuses).
 *
 * An entry's version is the SHA-1 of its stored JSON text (Redis computes it with redis.sha1hex in
 * the script; Node with crypto), sent as the strong ETag `"<40 hex>"`.
 */
import { createHash } from "node:crypto";
import type { RedisClient } from "../redis/client.js";
import { RedisRouteWriter } from "../routing/sources/redis-writer.js";

/**
 * A tenant's number blocks kept in Redis: the hash <prefix>blocks, field = tenant, value = a JSON
 * list of keys and prefixes (["+1512555*", "+15125550100"]), checked in the same atomic step as
 * the write (in addition to the blocks from the config, which the caller checks).
 */
const IN_BLOCKS = `
local function in_blocks(bkey, tenant, key)
  if key == '*' then return false end
  local raw = redis.call('HGET', bkey, tenant)
  if not raw then return false end
  local ok, list = pcall(cjson.decode, raw)
  if not ok or type(list) ~= 'table' then return false end
  local isprefix = string.sub(key, -1) == '*'
  local digits
  if isprefix then digits = string.sub(key, 2, -2) else digits = string.sub(key, 2) end
  for _, b in ipairs(list) do
    if type(b) == 'string' and string.sub(b, 1, 1) == '+' then
      if string.sub(b, -1) == '*' then
        local bd = string.sub(b, 2, -2)
        if string.sub(digits, 1, #bd) == bd then return true end
      elseif not isprefix and key == b then
        return true
      end
    end
  end
  return false
end
`;

/** KEYS: routes hash, change stream, audit stream, blocks hash. See ApiRouteWriter.write. */
const WRITE_SCRIPT = IN_BLOCKS + `
local cur = redis.call('HGET', KEYS[1], ARGV[2])
local curtag = ''
if cur then curtag = redis.sha1hex(cur) end
-- The tenant first: another tenant's entry reveals nothing, not even its version.
local tenant = ARGV[5]
if tenant ~= '' then
  if cur then
    local ok, v = pcall(cjson.decode, cur)
    if not ok or type(v) ~= 'table' or v['tenant'] ~= tenant then return {'foreign', ''} end
  elseif ARGV[6] ~= '1' and not in_blocks(KEYS[4], tenant, ARGV[2]) then
    return {'outside', ''}
  end
end
local expect = ARGV[4]
if expect == '*' then
  if not cur then return {'precondition', curtag} end
elseif expect == '!' then
  if cur then return {'precondition', curtag} end
elseif expect ~= '' then
  if not cur or not string.find(',' .. expect .. ',', ',' .. curtag .. ',', 1, true) then return {'precondition', curtag} end
end
local op = ARGV[1]
local newtag = ''
local id
local result
if op == 'set' then
  if cur == ARGV[3] then return {'unchanged', curtag} end
  redis.call('HSET', KEYS[1], ARGV[2], ARGV[3])
  newtag = redis.sha1hex(ARGV[3])
  id = redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[7], '*', 'op', 'set', 'key', ARGV[2], 'route', ARGV[3])
  if cur then result = 'updated' else result = 'created' end
else
  if not cur then return {'absent', ''} end
  redis.call('HDEL', KEYS[1], ARGV[2])
  id = redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[7], '*', 'op', 'del', 'key', ARGV[2])
  result = 'deleted'
end
redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[8], '*', 'who', ARGV[9], 'token', ARGV[10], 'op', op, 'key', ARGV[2], 'before', curtag, 'after', newtag, 'change', id)
return {result, curtag, newtag, id}
`;

/**
 * Imports: many sets in one call (the precondition is "none"); KEYS as for WRITE_SCRIPT. ARGV: tenant, stream maxlen, audit
 * maxlen, who, token fingerprint, then key, JSON, may-create ("1"/"0") per entry. Answers one
 * result per entry: created, updated, unchanged, foreign or outside.
 */
const IMPORT_SCRIPT = IN_BLOCKS + `
local tenant, maxlen, amaxlen, who, fp = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local out = {}
for i = 6, #ARGV - 2, 3 do
  local key, json, maycreate = ARGV[i], ARGV[i + 1], ARGV[i + 2]
  local cur = redis.call('HGET', KEYS[1], key)
  local r
  if tenant ~= '' and cur then
    local ok, v = pcall(cjson.decode, cur)
    if not ok or type(v) ~= 'table' or v['tenant'] ~= tenant then r = 'foreign' end
  elseif tenant ~= '' and maycreate ~= '1' and not in_blocks(KEYS[4], tenant, key) then
    r = 'outside'
  end
  if not r then
    if cur == json then
      r = 'unchanged'
    else
      redis.call('HSET', KEYS[1], key, json)
      local id = redis.call('XADD', KEYS[2], 'MAXLEN', '~', maxlen, '*', 'op', 'set', 'key', key, 'route', json)
      local before = ''
      if cur then before = redis.sha1hex(cur); r = 'updated' else r = 'created' end
      redis.call('XADD', KEYS[3], 'MAXLEN', '~', amaxlen, '*', 'who', who, 'token', fp, 'op', 'set', 'key', key, 'before', before, 'after', redis.sha1hex(json), 'change', id)
    end
  end
  out[#out + 1] = r
end
return out
`;

export function etagOf(json: string): string {
  return createHash("sha1").update(json, "utf8").digest("hex");
}

export type WriteOutcome =
  | { result: "created" | "updated" | "deleted"; before: string; after: string; changeId: string }
  | { result: "unchanged"; before: string }
  /** The precondition failed; `current` is the entry's version ("" when absent). */
  | { result: "precondition"; current: string }
  /** A tenant write to an entry of another tenant (or of none). */
  | { result: "foreign" }
  /** A tenant creating a key outside its number blocks. */
  | { result: "outside" }
  /** A delete of an absent key. */
  | { result: "absent" };

export interface WriteRequest {
  op: "set" | "del";
  key: string;
  /** Canonical entry JSON (set). */
  json?: string;
  /** "" none; "*" must exist; "!" must not exist; else comma-separated versions (40 hex each). */
  expect: string;
  /** The tenant of a tenant token ("" for admin): the entry must be theirs. */
  tenant: string;
  /** A tenant may create this key (it lies in one of its blocks). */
  mayCreate: boolean;
  who: string;
  fingerprint: string;
}

export interface ApiWriterOptions {
  prefix: string;
  streamMaxlen: number;
  auditMaxlen: number;
}

type ScriptClient = { didgateApiWrite(...args: string[]): Promise<unknown>; didgateApiImport(...args: string[]): Promise<unknown> };

export interface ImportItem {
  key: string;
  json: string;
  mayCreate: boolean;
}

export type ImportOutcome = "created" | "updated" | "unchanged" | "foreign" | "outside";

export class ApiRouteWriter {
  readonly routes: RedisRouteWriter;
  readonly auditKey: string;
  /** HASH tenant → JSON list of number blocks (in addition to api.blocks in the config). */
  readonly blocksKey: string;

  constructor(
    readonly client: RedisClient,
    private readonly opts: ApiWriterOptions,
  ) {
    this.routes = new RedisRouteWriter(client, { prefix: opts.prefix, streamMaxlen: opts.streamMaxlen });
    this.auditKey = `${opts.prefix}audit`;
    this.blocksKey = `${opts.prefix}blocks`;
    // ioredis sends EVALSHA and loads the script on NOSCRIPT (also inside pipelines and on Cluster).
    if (!(client as unknown as Partial<ScriptClient>).didgateApiWrite) client.defineCommand("didgateApiWrite", { numberOfKeys: 4, lua: WRITE_SCRIPT });
    if (!(client as unknown as Partial<ScriptClient>).didgateApiImport) client.defineCommand("didgateApiImport", { numberOfKeys: 4, lua: IMPORT_SCRIPT });
  }

  private args(r: WriteRequest): string[] {
    const k = this.routes.keys;
    return [k.routes, k.changes, this.auditKey, this.blocksKey, r.op, r.key, r.json ?? "", r.expect, r.tenant, r.mayCreate ? "1" : "0", String(this.opts.streamMaxlen), String(this.opts.auditMaxlen), r.who, r.fingerprint];
  }

  async write(r: WriteRequest): Promise<WriteOutcome> {
    const reply = await (this.client as unknown as ScriptClient).didgateApiWrite(...this.args(r));
    return outcomeOf(reply);
  }

  /**
   * Sets many entries in one atomic script call (a few hundred at a time keeps Redis free for
   * others between calls): one outcome per item, in order; a key given twice ends with its last.
   */
  async importMany(items: readonly ImportItem[], who: { tenant: string; who: string; fingerprint: string }): Promise<ImportOutcome[]> {
    if (items.length === 0) return [];
    const k = this.routes.keys;
    const args = [k.routes, k.changes, this.auditKey, this.blocksKey, who.tenant, String(this.opts.streamMaxlen), String(this.opts.auditMaxlen), who.who, who.fingerprint];
    for (const it of items) args.push(it.key, it.json, it.mayCreate ? "1" : "0");
    const reply = await (this.client as unknown as ScriptClient).didgateApiImport(...args);
    if (!Array.isArray(reply) || reply.length !== items.length) throw new Error("unexpected reply from the route import script");
    return reply.map((r) => String(r) as ImportOutcome);
  }

  /** The stored JSON text of a key, or undefined. */
  async get(key: string): Promise<string | undefined> {
    const v = await this.client.hget(this.routes.keys.routes, key);
    return v ?? undefined;
  }
}

function outcomeOf(reply: unknown): WriteOutcome {
  if (!Array.isArray(reply) || reply.length === 0) throw new Error("unexpected reply from the route write script");
  const r = String(reply[0]);
  switch (r) {
    case "created":
    case "updated":
    case "deleted":
      return { result: r, before: String(reply[1] ?? ""), after: String(reply[2] ?? ""), changeId: String(reply[3] ?? "") };
    case "unchanged":
      return { result: r, before: String(reply[1] ?? "") };
    case "precondition":
      return { result: r, current: String(reply[1] ?? "") };
    case "foreign":
    case "outside":
    case "absent":
      return { result: r };
    default:
      throw new Error(`unexpected reply ${JSON.stringify(r)} from the route write script`);
  }
}
