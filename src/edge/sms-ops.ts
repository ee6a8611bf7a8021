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
 */
import type { Cluster, Redis } from "ioredis";
import type { Logger } from "pino";
import { STATUS } from "../smpp/constants.js";
import { STATE, type MessageOps, type QueryAnswer } from "../smpp/ops.js";
import type { MessageStatus, MessageStatusStore } from "./sms-status.js";
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

/**
 * Claim a spooled message for a send attempt: "cancelled" when the app cancelled it (do not send),
 * else "send" with the replacement text if the app replaced it. Redis errors: send (at least once).
 */
export async function claimSend(sh: SharedRedis, id: string): Promise<{ kind: "send" | "cancelled"; text?: string }> {
  try {
    const r = (await sh.redis.eval(CLAIM, 2, stKey(sh, id), rpKey(sh, id), String(sh.ttlS ?? TTL_S))) as [number, string | null | undefined];
    if (r[0] === 0) return { kind: "cancelled" };
    const rp = r[1];
    if (typeof rp === "string") {
      const j = JSON.parse(rp) as { text?: unknown };
      if (typeof j.text === "string") return { kind: "send", text: j.text };
    }
  } catch {
    // Redis cannot tell: send
  }
  return { kind: "send" };
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
const RELEASE = `if redis.call('GET', KEYS[1]) == 'sending' then redis.call('DEL', KEYS[1]) end return 1`;
const REPLACE = `if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end redis.call('SET', KEYS[2], ARGV[1], 'EX', ARGV[2]) return 1`;

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

  async cancel(account: string, messageId: string): Promise<number> {
    const sh = this.o.shared;
    const s = await this.own(account, messageId);
    if (s === null || sh === undefined || s.status !== "queued") return STATUS.ESME_RCANCELFAIL;
    const ok = await sh.redis.set(stKey(sh, s.id), "cancelled", "EX", sh.ttlS ?? TTL_S, "NX");
    if (ok !== "OK") return STATUS.ESME_RCANCELFAIL;
    try {
      await this.o.statuses.update(s.id, { status: "deleted", at: new Date((this.o.now ?? Date.now)()).toISOString(), reason: "cancelled by the app" });
    } catch (err) {
      this.o.logger.warn({ id: s.id, err: errMessage(err) }, "message status not stored");
    }
    this.o.logger.info({ id: s.id, account }, "sms outbound: cancelled by the app");
    this.o.onCancelled?.({ ...s, status: "deleted" });
    return STATUS.ESME_ROK;
  }

  async replace(account: string, messageId: string, shortMessage: Buffer): Promise<number> {
    const sh = this.o.shared;
    const s = await this.own(account, messageId);
    if (s === null || sh === undefined || s.status !== "queued" || s.encoding === "binary") return STATUS.ESME_RREPLACEFAIL;
    // replace_sm has no data_coding: the octets are in the original's (UCS-2, else one octet a character)
    const text = s.encoding === "ucs2" ? decodeUcs2(shortMessage) : shortMessage.toString("latin1");
    const r = await sh.redis.eval(REPLACE, 2, stKey(sh, s.id), rpKey(sh, s.id), JSON.stringify({ text }), String(sh.ttlS ?? TTL_S));
    if (r !== 1) return STATUS.ESME_RREPLACEFAIL;
    this.o.logger.info({ id: s.id, account }, "sms outbound: text replaced by the app");
    return STATUS.ESME_ROK;
  }
}

function decodeUcs2(b: Buffer): string {
  const n = b.length & ~1;
  const c = Buffer.from(b.subarray(0, n));
  c.swap16();
  return c.toString("utf16le");
}
