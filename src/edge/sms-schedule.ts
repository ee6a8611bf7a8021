/**
 * schedule_delivery_time and validity_period of an app's outbound message (submit_sm, replace_sm):
 * what they mean for didgate (docs/sms.md "Schedule and validity").
 *
 * A scheduled message waits in the Redis spool until its time (without Redis the carrier gets the
 * message before the app gets its answer, so nothing can wait: a schedule in the future is
 * refused). A message whose validity ends before it was handed to a carrier ends `expired`. A
 * schedule is refused beyond the spool's maximum age (webhooks.max_age_s from acceptance), when
 * delivery would give the message up anyway.
 */
import { parseSmppTime } from "../smpp/time.js";

/** The times of a message, as stored with it (ISO 8601, UTC). */
export interface MessageTimes {
  /** Not handed to a carrier before this time. */
  not_before?: string;
  /** Not handed to a carrier at or after this time: the message ends expired. */
  expires_at?: string;
}

export type TimesCheck = { ok: true; times: MessageTimes } | { ok: false; outcome: "invalid_schedule" | "invalid_expiry"; why: string };

export interface TimesContext {
  /** Base of relative times: when the PDU was received. */
  baseMs: number;
  nowMs: number;
  /** Whether the message can wait (the Redis spool). */
  canWait: boolean;
  /** The latest schedule the spool keeps the message for. */
  deadlineMs: number;
}

/** Read the two SMPP times (empty: not given). Never throws. */
export function checkTimes(schedule: string | undefined, validity: string | undefined, c: TimesContext): TimesCheck {
  const s = parseSmppTime(schedule ?? "", c.baseMs);
  if (!s.ok) return { ok: false, outcome: "invalid_schedule", why: `schedule_delivery_time: ${s.reason}` };
  const v = parseSmppTime(validity ?? "", c.baseMs);
  if (!v.ok) return { ok: false, outcome: "invalid_expiry", why: `validity_period: ${v.reason}` };
  if (v.at !== null && v.at <= c.nowMs) return { ok: false, outcome: "invalid_expiry", why: "validity_period already past" };
  const times: MessageTimes = {};
  if (s.at !== null && s.at > c.nowMs) {
    if (!c.canWait) return { ok: false, outcome: "invalid_schedule", why: "a scheduled message needs the Redis spool" };
    if (s.at >= c.deadlineMs) return { ok: false, outcome: "invalid_schedule", why: "schedule beyond the spool's maximum age" };
    if (v.at !== null && v.at <= s.at) return { ok: false, outcome: "invalid_expiry", why: "validity_period ends before schedule_delivery_time" };
    times.not_before = new Date(s.at).toISOString();
  }
  if (v.at !== null) times.expires_at = new Date(v.at).toISOString();
  return { ok: true, times };
}

export type Due = { kind: "send" } | { kind: "wait"; ms: number } | { kind: "expired" };

/** Whether a message may go to a carrier now. */
export function dueNow(t: MessageTimes, nowMs: number): Due {
  if (t.expires_at !== undefined && nowMs >= Date.parse(t.expires_at)) return { kind: "expired" };
  if (t.not_before !== undefined) {
    const ms = Date.parse(t.not_before) - nowMs;
    if (ms > 0) return { kind: "wait", ms };
  }
  return { kind: "send" };
}
