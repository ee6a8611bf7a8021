/**
 * query_sm, cancel_sm and replace_sm from an SMPP app account about a message it submitted, by the
 * message id didgate returned in submit_sm_resp (docs/sms.md "Query, cancel, replace").
 *
 * query answers from the message's status history (src/edge/sms-status.ts; with Redis any edge
 * answers for any message). cancel and replace act only on a message still waiting in the Redis
 * spool: before each send attempt the spool's worker claims the message (`<prefix>smsout:st:{<id>}`
 * set to "sending", SET NX); cancel sets the same key to "cancelled" with SET NX, so exactly one of
 * the two wins; replace stores the new text (`<prefix>smsout:rp:{<id>}`) only while the key is
 * absent (one Lua script), and the worker reads it right after its claim. A temporary failure
 * releases the claim (the message waits again). Without Redis a message is sent before its
 * submit_sm_resp, so there is nothing left to cancel or replace.
 *
 * replace_sm may also give new times (schedule_delivery_time, validity_period; empty keeps the
 * current ones) and a new registered_delivery: stored with the text, read at the claim.
 *
 * cancel_sm with an empty message_id cancels every queued message of the account from source_addr
 * to destination_addr (and of that service_type if given): each queued message is indexed in
 * `<prefix>smsout:q:<account>:<source>:<destination>` (a hash of id -> service_type, 72 h), from
 * before its submit_sm_resp until it leaves the spool.
 */
import { Cluster, type Redis } from "ioredis";
import { hasHashTag } from "../redis/endpoint.js";
import { Script } from "../redis/script.js";
import type { Logger } from "pino";
import { STATUS } from "../smpp/constants.js";
import { STATE, type MessageOps, type OpRequest, type QueryAnswer } from "../smpp/ops.js";
import type { MessageStatus, MessageStatusStore } from "./sms-status.js";
import { checkTimes, type MessageTimes } from "./sms-schedule.js";
import { errMessage } from "../util/errors.js";

export interface SharedRedis {
  redis: Redis | Cluster;
  prefix: string;
  ttlS?: number;
}

const TTL_S = 72 * 3600;

function stKey(sh: SharedRedis, id: string): string {
  return `${sh.prefix}smsout:st:{${id}}`;
}
function rpKey(sh: SharedRedis, id: string): string {
  return `${sh.prefix}smsout:rp:{${id}}`;
}
/** Set once a carrier accepted the message (its bind): an edge that re-reads the entry after a crash does not send it again. */
export function jobKey(sh: SharedRedis, id: string): string {
  return `${sh.prefix}smsout:job:${id}`;
}

/**
 * Whether keys under the prefix can be written by one script: always on one server; on a Cluster
 * only when the prefix holds a hash tag (then every key under it is in one slot). Otherwise each
 * write goes on its own, as its key's slot allows.
 */
export function oneSlot(sh: SharedRedis): boolean {
  return !(sh.redis instanceof Cluster) || hasHashTag(sh.prefix);
}

/** The queued messages of an account from one address to another (cancel by address). */
export function queueKey(sh: SharedRedis, account: string, source: string, destination: string): string {
  return `${sh.prefix}smsout:q:${encodeURIComponent(account)}:${encodeURIComponent(source)}:${encodeURIComponent(destination)}`;
}

/** The messages queued for a bind (the first of their route), scored by enqueue time (epoch ms): the queue gauges. */
export function bindQueueKey(sh: SharedRedis, bind: string): string {
  return `${sh.prefix}smsout:bq:${encodeURIComponent(bind)}`;
}

/** What replace_sm changed: the text, the times, registered_delivery. */
export interface Replacement extends MessageTimes {
  text?: string;
  registered_delivery?: number;
}

/** The message as submitted, for the cancel-by-address index. */
export interface Queued {
  id: string;
  account: string;
  smpp?: { source: { addr: string }; destination: { addr: string } };
  service_type?: string;
}

/**
 * Claim a spooled message for a send attempt: "cancelled" when the app cancelled it (do not send),
 * else "send" with what the app replaced, if anything. Redis errors: send (at least once).
 */
export async function claimSend(sh: SharedRedis, id: string): Promise<{ kind: "send" | "cancelled"; replaced?: Replacement }> {
  try {
    const r = (await sh.redis.eval(CLAIM, 2, stKey(sh, id), rpKey(sh, id), String(sh.ttlS ?? TTL_S))) as [number, string | null | undefined];
    if (r[0] === 0) return { kind: "cancelled" };
    const rp = r[1];
    if (typeof rp === "string") return { kind: "send", replaced: readReplacement(rp) };
  } catch {
    // Redis cannot tell: send
  }
  return { kind: "send" };
}

/** The stored replacement, keeping only fields of the right type. */
function readReplacement(json: string): Replacement {
  const j = JSON.parse(json) as Record<string, unknown>;
  const r: Replacement = {};
  if (typeof j.text === "string") r.text = j.text;
  if (typeof j.not_before === "string") r.not_before = j.not_before;
  if (typeof j.expires_at === "string") r.expires_at = j.expires_at;
  if (typeof j.registered_delivery === "number") r.registered_delivery = j.registered_delivery;
  return r;
}

/** What indexQueued() writes, as calls for a script that makes them with other writes (the spool's enqueue). */
export function indexCalls(sh: SharedRedis, m: Queued): (string | number)[][] {
  if (m.smpp === undefined) return [];
  const k = queueKey(sh, m.account, m.smpp.source.addr, m.smpp.destination.addr);
  return [
    ["HSET", k, m.id, m.service_type ?? ""],
    ["EXPIRE", k, sh.ttlS ?? TTL_S],
  ];
}

/** The in-flight markers of messages sent on one bind from one address to another (`<prefix>smsout:if:<bind>:<from>:<to>`, a hash of id -> marker). */
export function inFlightKey(sh: SharedRedis, bind: string, from: string, to: string): string {
  return `${sh.prefix}smsout:if:${encodeURIComponent(bind)}:${encodeURIComponent(from)}:${encodeURIComponent(to)}`;
}

/** What checkSend() looks at besides the claim. */
export interface CheckOptions {
  /** The opt-out set of the sender and the recipient: a member ends the message opted out. */
  optout?: { key: string; member: string };
  /** Opted out as known from elsewhere (opt-outs kept in this process). */
  optedOut?: boolean;
  /** The in-flight marker hashes of the message's route (inFlightKey per bind, in route order), the time now and the hold (ms). */
  doubt?: { keys: string[]; nowMs: number; holdMs: number };
}

export type CheckResult =
  | { kind: "sent"; bind: string }
  | { kind: "cancelled" | "opted_out" }
  /** Its submit went out before a crash (at, epoch ms; on the route's bind number `bind`, from 1) and its answer was never stored: held since `heldSince`. */
  | { kind: "in_doubt"; bind: number; at: number; heldSince: number }
  /** `possibleDuplicate`: it was in doubt, the hold ended without a receipt: route index and time of that submit. */
  | { kind: "send"; replaced?: Replacement; possibleDuplicate?: { bind: number; at: number } };

/**
 * Before a send attempt, in one round trip: "sent" when a carrier already accepted the message
 * (jobKey: sent before a crash or by an edge that reclaimed it, or a receipt matched its in-flight
 * marker), "in_doubt" while the hold of an in-flight marker left by a crash lasts, else, with
 * `claim` (an app's message, which may be cancelled or replaced), claimSend(); "opted_out" when
 * the recipient is in the opt-out set. Redis errors: send (at least once).
 */
export async function checkSend(sh: SharedRedis, id: string, claim: boolean, o: CheckOptions = {}): Promise<CheckResult> {
  if (!oneSlot(sh)) {
    let bind: string | null = null;
    try {
      bind = await sh.redis.get(jobKey(sh, id));
    } catch {
      // Redis cannot tell: send
    }
    if (bind !== null) return { kind: "sent", bind };
    if (o.optedOut === true) return { kind: "opted_out" };
    if (o.optout !== undefined) {
      try {
        if ((await sh.redis.sismember(o.optout.key, o.optout.member)) === 1) return { kind: "opted_out" };
      } catch {
        // Redis cannot tell: send (the opt-out was checked when it was queued)
      }
    }
    return claim ? claimSend(sh, id) : { kind: "send" };
  }
  try {
    const keys = [jobKey(sh, id), stKey(sh, id), rpKey(sh, id), o.optout?.key ?? stKey(sh, id), ...(o.doubt?.keys ?? [])];
    const r = (await CHECK_CLAIM.batched(sh.redis, keys, [sh.ttlS ?? TTL_S, claim ? 1 : 0, o.optout?.member ?? "", id, o.doubt?.nowMs ?? 0, o.doubt?.holdMs ?? 0, o.optedOut === true ? 1 : 0])) as [number, unknown, unknown];
    if (r[0] === 2) return { kind: "sent", bind: String(r[1]) };
    if (r[0] === 0) return { kind: "cancelled" };
    if (r[0] === 3) return { kind: "opted_out" };
    if (r[0] === 4) return { kind: "in_doubt", bind: Number(r[1]), at: Number(r[2]), heldSince: Number((r as unknown[])[3]) };
    const out: CheckResult & { kind: "send" } = { kind: "send" };
    if (typeof r[1] === "string") out.replaced = readReplacement(r[1]);
    if (typeof r[2] === "string") {
      const [b, at] = r[2].split(":");
      out.possibleDuplicate = { bind: Number(b), at: Number(at) };
    }
    return out;
  } catch {
    // Redis cannot tell: send
  }
  return { kind: "send" };
}

/** Index a message about to be queued (before the app gets its answer), for cancel by address. */
export async function indexQueued(sh: SharedRedis, m: Queued): Promise<void> {
  if (m.smpp === undefined) return;
  const k = queueKey(sh, m.account, m.smpp.source.addr, m.smpp.destination.addr);
  try {
    await sh.redis.multi().hset(k, m.id, m.service_type ?? "").expire(k, sh.ttlS ?? TTL_S).exec();
  } catch {
    // not cancellable by address; by id it still is
  }
}

/** The message left the spool (sent, refused, expired, cancelled, or never queued); with `bind`, its bind's queue too. */
export async function unindexQueued(sh: SharedRedis, m: Queued, bind?: string): Promise<void> {
  if (m.smpp === undefined && bind === undefined) return;
  try {
    if (bind === undefined) await sh.redis.hdel(queueKey(sh, m.account, m.smpp!.source.addr, m.smpp!.destination.addr), m.id);
    else if (m.smpp === undefined) await sh.redis.zrem(bindQueueKey(sh, bind), m.id);
    // two commands, not a MULTI: on a Cluster without hash tag the keys are in different slots
    else await Promise.all([sh.redis.hdel(queueKey(sh, m.account, m.smpp.source.addr, m.smpp.destination.addr), m.id), sh.redis.zrem(bindQueueKey(sh, bind), m.id)]);
  } catch {
    // the entry expires with the index, and cancel skips messages that are no longer queued
  }
}

/** The attempt did not reach a carrier: the message waits again (cancel and replace possible). */
export async function releaseSend(sh: SharedRedis, id: string): Promise<void> {
  try {
    await sh.redis.eval(RELEASE, 1, stKey(sh, id));
  } catch {
    // the claim expires with its TTL
  }
}

// one round trip per attempt: claim (unless cancelled), and the replacement text if any
const CLAIM = `if not redis.call('SET', KEYS[1], 'sending', 'EX', ARGV[1], 'NX') and redis.call('GET', KEYS[1]) == 'cancelled' then return {0} end return {1, redis.call('GET', KEYS[2])}`;
// KEYS jobKey, stKey, rpKey, opt-out set (or stKey), in-flight marker hashes of the route's binds.
// ARGV TTL s, claim (1/0), opt-out member or "", id, now ms, hold ms, opted out as known elsewhere (1/0).
// {2, bind} sent already (or a receipt matched its marker: "!bind"; its markers are removed), {4, route index, at, held
// since} in doubt and held (the hold counts from the first look after the crash, noted in the marker), {0} cancelled, {3} opted out, {1, replacement, "index:at" when its hold ended}.
const CHECK_CLAIM = new Script(`local b = redis.call('GET', KEYS[1])
if b then
  for i = 5, #KEYS do redis.call('HDEL', KEYS[i], ARGV[4]) end
  return {2, b}
end
local dup = false
for i = 5, #KEYS do
  local m = redis.call('HGET', KEYS[i], ARGV[4])
  if m then
    if string.sub(m, 1, 1) == '!' then
      for k = 5, #KEYS do redis.call('HDEL', KEYS[k], ARGV[4]) end
      return {2, string.sub(m, 2)}
    end
    local j = cjson.decode(m)
    local at = tonumber(j.at) or 0
    local held = tonumber(j.h)
    if not held then
      held = tonumber(ARGV[5])
      redis.call('HSET', KEYS[i], ARGV[4], '{"h":' .. ARGV[5] .. ',' .. string.sub(m, 2))
    end
    if held + tonumber(ARGV[6]) > tonumber(ARGV[5]) then return {4, i - 4, string.format('%d', at), string.format('%d', held)} end
    redis.call('HDEL', KEYS[i], ARGV[4])
    dup = (i - 4) .. ':' .. string.format('%d', at)
  end
end
if ARGV[2] == '1' and not redis.call('SET', KEYS[2], 'sending', 'EX', ARGV[1], 'NX') and redis.call('GET', KEYS[2]) == 'cancelled' then return {0} end
if ARGV[7] == '1' or (ARGV[3] ~= '' and redis.call('SISMEMBER', KEYS[4], ARGV[3]) == 1) then return {3} end
local rp = false
if ARGV[2] == '1' then rp = redis.call('GET', KEYS[3]) end
return {1, rp, dup}`);
const RELEASE = `if redis.call('GET', KEYS[1]) == 'sending' then redis.call('DEL', KEYS[1]) end return 1`;
// a field the new replacement leaves out keeps the value of an earlier replacement (empty times keep theirs)
const REPLACE = `if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
local n = cjson.decode(ARGV[1])
local old = redis.call('GET', KEYS[2])
if old then for k, v in pairs(cjson.decode(old)) do if n[k] == nil then n[k] = v end end end
redis.call('SET', KEYS[2], cjson.encode(n), 'EX', ARGV[2]) return 1`;

/** Most messages one cancel_sm by address cancels (bounded work per PDU; the app sends it again for more). */
const MAX_CANCEL = 10_000;

/** message_state of a status history's current status (SMPP 3.4 5.2.28). */
export function stateOf(status: string): { state: number; final: boolean } {
  switch (status) {
    case "queued":
    case "sent":
      return { state: STATE.ENROUTE, final: false };
    case "delivered":
      return { state: STATE.DELIVERED, final: true };
    case "expired":
      return { state: STATE.EXPIRED, final: true };
    case "deleted":
      return { state: STATE.DELETED, final: true };
    case "undeliverable":
    case "failed":
      return { state: STATE.UNDELIVERABLE, final: true };
    case "accepted":
      return { state: STATE.ACCEPTED, final: true };
    case "rejected":
      return { state: STATE.REJECTED, final: true };
    default:
      return { state: STATE.UNKNOWN, final: true };
  }
}

export interface SmsMessageOpsOptions {
  statuses: MessageStatusStore;
  /** Redis (spool mode); without it nothing waits, so cancel and replace always fail. */
  shared?: SharedRedis;
  logger: Logger;
  /** A message was cancelled (metrics, record). */
  onCancelled?: (s: MessageStatus) => void;
  now?: () => number;
  /** The spool's maximum age (ms, webhooks.max_age_s): no schedule beyond it. Default 24 h. */
  maxAgeMs?: number;
}

export class SmsMessageOps implements MessageOps {
  constructor(private readonly o: SmsMessageOpsOptions) {}

  /** The message, when `account` submitted it. */
  private async own(account: string, messageId: string): Promise<MessageStatus | null> {
    if (messageId === "" || messageId.length > 64) return null;
    const s = await this.o.statuses.get(`msg_${messageId}`);
    return s !== null && s.account === account ? s : null;
  }

  async query(account: string, messageId: string): Promise<QueryAnswer> {
    const s = await this.own(account, messageId);
    if (s === null) return { status: STATUS.ESME_RQUERYFAIL };
    const { state, final } = stateOf(s.status);
    const last = s.history[s.history.length - 1];
    const err = last?.error_code;
    const code = typeof err === "string" || typeof err === "number" ? Number.parseInt(String(err), 10) : 0;
    return {
      status: STATUS.ESME_ROK,
      message_state: state,
      final_date: final && last !== undefined ? new Date(last.at) : null,
      error_code: Number.isFinite(code) ? code & 0xff : 0,
    };
  }

  async cancel(account: string, req: OpRequest): Promise<number> {
    const sh = this.o.shared;
    if (sh === undefined) return STATUS.ESME_RCANCELFAIL;
    if (req.message_id !== "") return (await this.cancelOne(sh, account, await this.own(account, req.message_id))) ? STATUS.ESME_ROK : STATUS.ESME_RCANCELFAIL;
    // SMPP 3.4 4.9: no message_id, every queued message from source_addr to destination_addr
    if (req.destination_addr === undefined || req.destination_addr === "" || req.source_addr === undefined) return STATUS.ESME_RCANCELFAIL;
    const k = queueKey(sh, account, req.source_addr, req.destination_addr);
    let cancelled = 0;
    let seen = 0;
    let cursor = "0";
    do {
      const [next, flat] = await sh.redis.hscan(k, cursor, "COUNT", 500);
      cursor = next;
      for (let i = 0; i + 1 < flat.length && seen < MAX_CANCEL; i += 2) {
        const id = flat[i]!;
        if (req.service_type && flat[i + 1] !== req.service_type) continue;
        seen++;
        const s = await this.own(account, id.replace(/^msg_/, ""));
        const done = await this.cancelOne(sh, account, s);
        if (done) cancelled++;
        // cancelled now, or no longer queued: out of the index (a message cancelled by id leaves it when the worker sees it)
        if (done || s === null || s.status !== "queued") await sh.redis.hdel(k, id);
      }
    } while (cursor !== "0" && seen < MAX_CANCEL);
    this.o.logger.info({ account, cancelled, source: req.source_addr, destination: req.destination_addr }, "sms outbound: cancel by address");
    return cancelled > 0 ? STATUS.ESME_ROK : STATUS.ESME_RCANCELFAIL;
  }

  /** Cancel one message of the account if it is still queued; true when it was. */
  private async cancelOne(sh: SharedRedis, account: string, s: MessageStatus | null): Promise<boolean> {
    if (s === null || s.status !== "queued") return false;
    const ok = await sh.redis.set(stKey(sh, s.id), "cancelled", "EX", sh.ttlS ?? TTL_S, "NX");
    if (ok !== "OK") return false;
    try {
      await this.o.statuses.update(s.id, { status: "deleted", at: new Date(this.now()).toISOString(), reason: "cancelled by the app" });
    } catch (err) {
      this.o.logger.warn({ id: s.id, err: errMessage(err) }, "message status not stored");
    }
    this.o.logger.info({ id: s.id, account }, "sms outbound: cancelled by the app");
    this.o.onCancelled?.({ ...s, status: "deleted" });
    return true;
  }

  private now(): number {
    return (this.o.now ?? Date.now)();
  }

  async replace(account: string, req: OpRequest): Promise<number> {
    const sh = this.o.shared;
    const s = await this.own(account, req.message_id);
    if (s === null || sh === undefined || s.status !== "queued" || s.encoding === "binary") return STATUS.ESME_RREPLACEFAIL;
    // no predefined messages here: only sm_default_msg_id 0 (none) is valid
    if ((req.sm_default_msg_id ?? 0) !== 0) return STATUS.ESME_RINVDFTMSGID;
    const now = this.now();
    const times = checkTimes(req.schedule_delivery_time, req.validity_period, { baseMs: now, nowMs: now, canWait: true, deadlineMs: Date.parse(s.created_at) + (this.o.maxAgeMs ?? 86_400_000) });
    if (!times.ok) {
      this.o.logger.info({ id: s.id, account, why: times.why }, "sms outbound: replace refused");
      return times.outcome === "invalid_schedule" ? STATUS.ESME_RINVSCHED : STATUS.ESME_RINVEXPIRY;
    }
    // replace_sm has no data_coding: the octets are in the original's (UCS-2, else one octet a character)
    const sm = req.short_message ?? Buffer.alloc(0);
    const rp: Replacement = { text: s.encoding === "ucs2" ? decodeUcs2(sm) : sm.toString("latin1"), ...times.times };
    if (req.registered_delivery !== undefined) rp.registered_delivery = req.registered_delivery;
    const r = await sh.redis.eval(REPLACE, 2, stKey(sh, s.id), rpKey(sh, s.id), JSON.stringify(rp), String(sh.ttlS ?? TTL_S));
    if (r !== 1) return STATUS.ESME_RREPLACEFAIL;
    this.o.logger.info({ id: s.id, account, ...times.times }, "sms outbound: replaced by the app");
    return STATUS.ESME_ROK;
  }
}

function decodeUcs2(b: Buffer): string {
  const n = b.length & ~1;
  const c = Buffer.from(b.subarray(0, n));
  c.swap16();
  return c.toString("utf16le");
}
